// Command-line options of bench/yardstick.sh (passed through to run.ts).
export interface Options {
  impls: Array<'original' | 'regiond'>;
  reads: number;         // EU read latency: sequential readLocal calls
  dashRuns: number;      // dashboard: cold + warm pairs
  raw: number;           // read-after-write: operations per host
  staleTrials: number;   // stale time: EU writes, each polled from AP
  staleCapS: number;     // ... until this many seconds
  concurrency: number[]; // readLocal throughput: concurrent calls in one process
  tpCalls: number[];     // ... this many calls at each concurrency (the same work for both)
  items: number;         // rows in yard_items (set by yardstick.sh)
  rawIdBase: number;
  staleIdBase: number;
}

const USAGE = `bench/yardstick.sh [--impl original|regiond|both] [--reads 1000] [--dash-runs 10]
  [--raw 40] [--stale-trials 5] [--stale-cap-s 70] [--concurrency 1,16,256] [--tp-calls 2500,20000,40000]`;

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    impls: ['original', 'regiond'], reads: 1000, dashRuns: 10, raw: 40, staleTrials: 5, staleCapS: 70,
    concurrency: [1, 16, 256], tpCalls: [2500, 20000, 40000], items: Number(process.env.YARD_ITEMS ?? 10000),
    rawIdBase: 1, staleIdBase: 5000,
  };
  const num = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!v || !Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]; const v = argv[i + 1];
    switch (a) {
      case '--impl':
        if (v === 'both') o.impls = ['original', 'regiond'];
        else if (v === 'original' || v === 'regiond') o.impls = [v];
        else throw new Error(`--impl is original, regiond or both\n${USAGE}`);
        i++; break;
      case '--reads': o.reads = num(a, v); i++; break;
      case '--dash-runs': o.dashRuns = num(a, v); i++; break;
      case '--raw': o.raw = num(a, v); i++; break;
      case '--stale-trials': o.staleTrials = num(a, v); i++; break;
      case '--stale-cap-s': o.staleCapS = num(a, v); i++; break;
      case '--concurrency': o.concurrency = (v ?? '').split(',').map((x) => num(a, x)); i++; break;
      case '--tp-calls': o.tpCalls = (v ?? '').split(',').map((x) => num(a, x)); i++; break;
      default: throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  if (o.tpCalls.length !== o.concurrency.length) {
    throw new Error(`--tp-calls needs one count per --concurrency level (${o.concurrency.join(',')})\n${USAGE}`);
  }
  return o;
}
