// Time and percentiles for the yardstick.
// nowMs is CLOCK_MONOTONIC (process.hrtime), the same clock in every process on
// this machine, so times taken in two worker processes can be subtracted.
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export interface Percentiles { count: number; p50: number; p99: number; max: number }

// Nearest-rank percentiles.
export function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]);
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1] : NaN };
}
