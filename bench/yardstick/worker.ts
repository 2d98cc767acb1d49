// One Node process "on" an emulated host (YARD_HOST) running one data layer
// (YARD_IMPL = original | regiond) through the SAME exported functions: the
// original module with pools and Redis clients on the WAN links from that
// host, or the port on that host's regiond socket. run.ts forks it and sends
// it workloads; it answers with measurements. Every read is checked by value.
import path from 'node:path';
import { percentiles, nowMs } from './stats.js';

type Rows = Array<Record<string, unknown>>;
interface DataLayer {
  readLocal(userRegion: string, sql: string, params?: unknown[]): Promise<Rows>;
  writePrimary(sql: string, params?: unknown[], cacheKeys?: string[]):
    Promise<{ rowCount: number | null; timestamp: number; token?: string }>;
  readConsistent(userRegion: string, sql: string, params: unknown[], since: unknown): Promise<Rows>;
  cachedRead(userRegion: string, key: string, sql: string, params?: unknown[], ttl?: number):
    Promise<{ rows: Rows; fromCache: boolean; servedBy?: string }>;
  close(): unknown;
}

const IMPL = process.env.YARD_IMPL as 'original' | 'regiond';
const HOST = process.env.YARD_HOST as string;
const REPO_ROOT = path.resolve(__dirname, '..', '..');

let dl: DataLayer;
let routeStats: { consistentLocal: number; consistentPrimary: number } | undefined;

async function load(): Promise<void> {
  if (IMPL === 'original') {
    const m = await import('./original/dataLayer.js');
    dl = m as unknown as DataLayer;
    routeStats = m.routeStats;
  } else if (IMPL === 'regiond') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const port = require(path.join(REPO_ROOT, 'bindings/node/data-layer'));
    port.configure({ socket: process.env.REGIOND_SOCKET });
    dl = port as DataLayer;
  } else {
    throw new Error(`YARD_IMPL must be original or regiond, not ${IMPL}`);
  }
}

const READ_SQL = 'select v::text as v from yard_items where id = $1';
const RAW_READ_SQL = 'select v::text as v from yard_raw where id = $1';
const RAW_WRITE_SQL = 'update yard_raw set v = $2 where id = $1';
const ITEM_WRITE_SQL = 'update yard_items set v = $2, updated_at = now() where id = $1';

function valueOf(rows: Rows): unknown { return rows[0]?.v; }

function randomId(n: number): number { return 1 + Math.floor(Math.random() * n); }

// Sequential readLocal by primary key, each answer checked against its id.
async function readLatency(a: { n: number; items: number }) {
  const lat: number[] = [];
  let wrong = 0;
  for (let i = 0; i < a.n; i++) {
    const id = randomId(a.items);
    const t0 = nowMs();
    const rows = await dl.readLocal(HOST, READ_SQL, [id]);
    lat.push(nowMs() - t0);
    if (typeof valueOf(rows) !== 'string') wrong++;
  }
  return { ...percentiles(lat), wrong, samples: lat };
}

// The dashboard: three cachedReads at once (Promise.all), as a page would.
async function dashboard(a: { keyPrefix: string; queries: string[] }) {
  const t0 = nowMs();
  const results = await Promise.all(a.queries.map((sql, i) => dl.cachedRead(HOST, `${a.keyPrefix}:${i}`, sql, [])));
  const ms = nowMs() - t0;
  return { ms, fromCache: results.filter((r) => r.fromCache).length, rows: results.map((r) => r.rows.length) };
}

// Read-after-write from this host: write a fresh value, then readConsistent
// with what the implementation gives for it (timestamp or token); check it.
async function readAfterWrite(a: { n: number; id: number }) {
  const lat: number[] = [];
  let local = 0; let stale = 0;
  for (let i = 0; i < a.n; i++) {
    const v = `${IMPL}-${HOST}-${process.pid}-${i}-${Math.random().toString(36).slice(2, 8)}`;
    const w = await dl.writePrimary(RAW_WRITE_SQL, [a.id, v], []);
    if (w.rowCount !== 1) throw new Error(`write of yard_raw ${a.id} changed ${w.rowCount} rows`);
    const since = IMPL === 'original' ? w.timestamp : w.token;
    const before = routeStats ? routeStats.consistentLocal : 0;
    const t0 = nowMs();
    const rows = await dl.readConsistent(HOST, RAW_READ_SQL, [a.id], since);
    lat.push(nowMs() - t0);
    if (valueOf(rows) !== v) stale++;
    if (routeStats) local += routeStats.consistentLocal - before;
    else if (String((rows as unknown as { servedBy?: string }).servedBy).startsWith(`${HOST}/`)) local++;
  }
  return { ...percentiles(lat), n: a.n, local, stale };
}

async function prime(a: { key: string; id: number; expect: string }) {
  // Twice: the second answer comes from the cache the first one filled.
  for (let i = 0; i < 2; i++) {
    const r = await dl.cachedRead(HOST, a.key, READ_SQL, [a.id]);
    if (valueOf(r.rows) !== a.expect) throw new Error(`prime ${a.key}: got ${String(valueOf(r.rows))}, expected ${a.expect}`);
  }
  return { ok: true };
}

async function write(a: { id: number; v: string; key: string }) {
  const start = nowMs();
  const w = await dl.writePrimary(ITEM_WRITE_SQL, [a.id, a.v], [a.key]);
  if (w.rowCount !== 1) throw new Error(`write of yard_items ${a.id} changed ${w.rowCount} rows`);
  return { start, ack: nowMs() };
}

// Polls cachedRead of the key until it returns the new value, or the cap.
async function pollCached(a: { key: string; id: number; expect: string; capMs: number; intervalMs: number }) {
  const deadline = nowMs() + a.capMs;
  let polls = 0; let staleAnswers = 0;
  for (;;) {
    const r = await dl.cachedRead(HOST, a.key, READ_SQL, [a.id]);
    const at = nowMs();
    polls++;
    if (valueOf(r.rows) === a.expect) return { at, polls, staleAnswers };
    staleAnswers++;
    if (at >= deadline) return { at: null, polls, staleAnswers };
    await new Promise((res) => setTimeout(res, a.intervalMs));
  }
}

// C concurrent loops of readLocal until `calls` calls were started (or, for
// a warm-up, for durationMs); every answer checked.
async function throughput(a: { concurrency: number; calls?: number; durationMs?: number; items: number }) {
  const lat: number[] = [];
  let wrong = 0;
  let started = 0;
  const cpu0 = process.cpuUsage();
  const t0 = nowMs();
  const end = a.durationMs === undefined ? Infinity : t0 + a.durationMs;
  const calls = a.calls ?? Infinity;
  async function loop() {
    while (started < calls && nowMs() < end) {
      started++;
      const id = randomId(a.items);
      const s = nowMs();
      const rows = await dl.readLocal(HOST, READ_SQL, [id]);
      lat.push(nowMs() - s);
      if (typeof valueOf(rows) !== 'string') wrong++;
    }
  }
  await Promise.all(Array.from({ length: a.concurrency }, loop));
  const elapsed = nowMs() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPer1000 = ((cpu.user + cpu.system) / 1000) / (lat.length / 1000);
  return {
    ...percentiles(lat), opsPerSec: (lat.length * 1000) / elapsed, cpuMsPer1000, wrong,
    // for a caller that merges rounds: the raw numbers
    samples: a.calls === undefined ? [] : lat, elapsedMs: elapsed, cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

let cpuAtReady: NodeJS.CpuUsage;
let maxRss = 0;
const rssSampler = setInterval(() => { maxRss = Math.max(maxRss, process.memoryUsage().rss); }, 100);
rssSampler.unref();

function usage() {
  const cpu = process.cpuUsage(cpuAtReady);
  maxRss = Math.max(maxRss, process.memoryUsage().rss);
  return {
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
    maxRssMiB: maxRss / 2 ** 20,
    // the kernel's high-water mark includes the start (tsx, imports)
    kernelMaxRssMiB: process.resourceUsage().maxRSS / 1024,
  };
}

const ops: Record<string, (a: never) => Promise<unknown>> = {
  readLatency, dashboard, readAfterWrite, prime, write, pollCached, throughput,
  usage: async () => usage(),
  exit: async () => { await dl.close(); setImmediate(() => process.exit(0)); return { ok: true }; },
};

process.on('message', async (msg: { id: number; op: string; args: never }) => {
  try {
    const fn = ops[msg.op];
    if (!fn) throw new Error(`unknown op ${msg.op}`);
    const result = await fn(msg.args);
    process.send!({ id: msg.id, result });
  } catch (err) {
    const e = err as Error & { code?: string };
    process.send!({ id: msg.id, error: `${IMPL}@${HOST} ${msg.op}: ${e.message}${e.code ? ` (${e.code})` : ''}` });
  }
});

load().then(() => {
  cpuAtReady = process.cpuUsage();
  maxRss = process.memoryUsage().rss;
  process.send!({ ready: true });
}, (err) => {
  process.send!({ ready: false, error: `${IMPL}@${HOST} could not load: ${(err as Error).message}` });
  setImmediate(() => process.exit(1));
});
