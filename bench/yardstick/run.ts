// The yardstick's driver: forks one worker process per (implementation, host),
// sends each the same workloads through the same data-layer functions, and
// prints one Markdown table. Started by bench/yardstick.sh, which brings up the
// daemons and the schema and exports the cluster's environment.
import { fork, type ChildProcess, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { percentiles } from './stats.js';
import { parseArgs, type Options } from './options.js';

type Impl = 'original' | 'regiond';
const HOSTS = ['eu-west-1', 'ap-northeast-1'] as const;
type Host = (typeof HOSTS)[number];
const REGIONS = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];
const key = (r: string) => r.toUpperCase().replace(/-/g, '_');

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run bench/yardstick.sh, not this file`);
  return v;
}

// "FROM>TO:SERVICE 127.0.0.1:PORT TARGET DELAY" lines of scripts/cluster.sh's links file.
function links(): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(env('WAN_LINKS'), 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 2 && !f[0].startsWith('#')) m.set(f[0], f[1]);
  }
  return m;
}

class Worker {
  private next = 1;
  private waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;
  constructor(readonly impl: Impl, readonly host: Host, readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.once('message', (m: { ready: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error))));
      child.once('exit', (code) => reject(new Error(`${impl}@${host} exited with ${code} before it was ready`)));
    });
    child.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const w = this.waiting.get(m.id)!;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(m.error)); else w.resolve(m.result);
    });
  }
  call<T>(op: string, args: object = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args });
    });
  }
}

function startWorker(impl: Impl, host: Host, l: Map<string, string>): Worker {
  const wenv: NodeJS.ProcessEnv = {
    ...process.env, YARD_IMPL: impl, YARD_HOST: host,
    PGDATABASE: env('APP_DB'), PGUSER: env('APP_USER'), PGPASSFILE: env('APP_PASSFILE'),
  };
  for (const r of REGIONS) {
    wenv[`YARD_PG_${key(r)}`] = l.get(`${host}>${r}:pg`);
    wenv[`YARD_REDIS_${key(r)}`] = l.get(`${host}>${r}:redis`);
  }
  if (impl === 'regiond') wenv.REGIOND_SOCKET = env(`YARD_SOCKET_${key(host)}`);
  const child = fork(path.join(__dirname, 'worker.ts'), [], {
    cwd: __dirname, env: wenv, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Worker(impl, host, child);
}

// Cold means every cache tier empty: the three Redis (FLUSHALL, direct, not
// through the links) and regiond's hot caches (regionctl cache flush).
async function flushCaches(redisDirect: Redis[], impls: Impl[]): Promise<void> {
  await Promise.all(redisDirect.map((r) => r.flushall()));
  if (impls.includes('regiond')) {
    for (const h of HOSTS) {
      execFileSync(env('YARD_REGIONCTL'), ['--socket', env(`YARD_ADMIN_${key(h)}`), 'cache', 'flush'], { stdio: 'ignore' });
    }
  }
}

const DASHBOARD = [
  'select count(*)::text as items, sum(n)::text as total from yard_items',
  'select id::text as id, v from yard_items order by updated_at desc, id limit 10',
  'select (n % 10)::text as bucket, count(*)::text as c from yard_items group by 1 order by 1',
];

type Stat = { count: number; p50: number; p99: number; max: number };
type Cell = Partial<Record<Impl, string>>;
interface Row { measure: string; cells: Cell; better: 'lower' | 'higher' | 'none'; nums: Partial<Record<Impl, number>> }

const f1 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

async function main(): Promise<void> {
  const o: Options = parseArgs(process.argv.slice(2));
  const l = links();
  const redisDirect = REGIONS.map((r) => new Redis({ host: '127.0.0.1', port: Number(env(`REDIS_PORT_${key(r)}`)) }));
  const w: Record<Impl, Partial<Record<Host, Worker>>> = { original: {}, regiond: {} };
  const all: Worker[] = [];
  for (const impl of o.impls) {
    for (const h of HOSTS) { const x = startWorker(impl, h, l); w[impl][h] = x; all.push(x); }
  }
  await Promise.all(all.map((x) => x.ready));
  const eu = (i: Impl) => w[i]['eu-west-1']!;
  const ap = (i: Impl) => w[i]['ap-northeast-1']!;
  const rows: Row[] = [];
  const add = (measure: string, better: Row['better'], per: (i: Impl) => [string, number]) => {
    const r: Row = { measure, better, cells: {}, nums: {} };
    for (const i of o.impls) { const [s, n] = per(i); r.cells[i] = s; r.nums[i] = n; }
    rows.push(r);
  };
  const log = (s: string) => process.stderr.write(`yardstick: ${s}\n`);

  // Warm-up, the same for both: connections of pools, clients and daemons.
  log('warm-up');
  for (const i of o.impls) {
    for (const x of [eu(i), ap(i)]) await x.call('throughput', { concurrency: 20, durationMs: 500, items: o.items });
    await Promise.all([eu(i), ap(i)].map((x, n) => x.call('readAfterWrite', { n: 2, id: o.rawIdBase + 90 + n })));
  }

  // The two implementations take turns in ROUNDS rounds (the first of each
  // round alternating), so both see the same machine: this host is shared and
  // its load drifts over a run; sequential blocks would measure the drift.
  const ROUNDS = 10;
  const order = (round: number) => (round % 2 === 0 ? o.impls : [...o.impls].reverse());

  log(`EU read latency (${o.reads} sequential readLocal, in ${ROUNDS} alternating rounds)`);
  const lat: Partial<Record<Impl, Stat & { wrong: number }>> = {};
  {
    const samples: Partial<Record<Impl, number[]>> = {};
    const wrong: Partial<Record<Impl, number>> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const i of order(round)) {
        const r: { wrong: number; samples: number[] } =
          await eu(i).call('readLatency', { n: Math.ceil(o.reads / ROUNDS), items: o.items });
        (samples[i] ??= []).push(...r.samples);
        wrong[i] = (wrong[i] ?? 0) + r.wrong;
      }
    }
    for (const i of o.impls) lat[i] = { ...percentiles(samples[i]!), wrong: wrong[i]! };
  }
  add('EU read latency p50 (ms)', 'lower', (i) => [f1(lat[i]!.p50), lat[i]!.p50]);
  add('EU read latency p99 (ms)', 'lower', (i) => [f1(lat[i]!.p99), lat[i]!.p99]);

  log(`dashboard from ap-northeast-1 (${o.dashRuns} cold + warm pairs)`);
  const cold: Partial<Record<Impl, number[]>> = {}; const warm: Partial<Record<Impl, number[]>> = {};
  for (const i of o.impls) {
    cold[i] = []; warm[i] = [];
    for (let r = 0; r < o.dashRuns; r++) {
      await flushCaches(redisDirect, o.impls);
      const c = await ap(i).call<{ ms: number; fromCache: number }>('dashboard', { keyPrefix: `yard:dash:${i}`, queries: DASHBOARD });
      const h = await ap(i).call<{ ms: number; fromCache: number }>('dashboard', { keyPrefix: `yard:dash:${i}`, queries: DASHBOARD });
      if (c.fromCache !== 0 || h.fromCache !== 3) throw new Error(`${i} dashboard: cold run had ${c.fromCache} cached answers, warm run ${h.fromCache} (expected 0 and 3)`);
      cold[i]!.push(c.ms); warm[i]!.push(h.ms);
    }
  }
  for (const [name, d] of [['cold', cold], ['warm', warm]] as const) {
    const s = (i: Impl) => percentiles(d[i]!);
    add(`AP dashboard ${name} p50 / max (ms)`, 'lower', (i) => [`${f1(s(i).p50)} / ${f1(s(i).max)}`, s(i).p50]);
  }

  log(`read-after-write (${o.raw} per host, both hosts at once)`);
  const rawRes: Partial<Record<Host, Partial<Record<Impl, Stat & { n: number; local: number; stale: number }>>>> = {};
  for (const i of o.impls) {
    const res = await Promise.all(HOSTS.map((h, n) => w[i][h]!.call<Stat & { n: number; local: number; stale: number }>(
      'readAfterWrite', { n: o.raw, id: o.rawIdBase + (i === 'original' ? 0 : 10) + n })));
    HOSTS.forEach((h, n) => { (rawRes[h] ??= {})[i] = res[n]; });
  }
  for (const h of HOSTS) {
    const r = (i: Impl) => rawRes[h]![i]!;
    const short = h === 'eu-west-1' ? 'EU' : 'AP';
    add(`RaW ${short}: served locally`, 'higher', (i) => [`${((100 * r(i).local) / r(i).n).toFixed(0)} %`, r(i).local / r(i).n]);
    add(`RaW ${short}: read p50 / p99 (ms)`, 'lower', (i) => [`${f1(r(i).p50)} / ${f1(r(i).p99)}`, r(i).p50]);
    add(`RaW ${short}: stale answers`, 'lower', (i) => [`${r(i).stale} of ${r(i).n}`, r(i).stale]);
  }

  log(`stale time EU write -> AP cachedRead (${o.staleTrials} trials, cap ${o.staleCapS} s)`);
  const stale: Partial<Record<Impl, { times: number[]; writes: number[]; capped: number; staleAnswers: number }>> = {};
  for (const i of o.impls) {
    const s = { times: [] as number[], writes: [] as number[], capped: 0, staleAnswers: 0 };
    stale[i] = s;
    for (let t = 0; t < o.staleTrials; t++) {
      const id = o.staleIdBase + (i === 'original' ? 0 : 100) + t;
      const k = `yard:stale:${i}:${id}`;
      const old = `item-${id}`; const v = `new-${i}-${t}-${Date.now()}`;
      await ap(i).call('prime', { key: k, id, expect: old });
      const poll = ap(i).call<{ at: number | null; staleAnswers: number }>('pollCached',
        { key: k, id, expect: v, capMs: o.staleCapS * 1000, intervalMs: 5 });
      const wr = await eu(i).call<{ start: number; ack: number }>('write', { id, v, key: k });
      const p = await poll;
      s.staleAnswers += p.staleAnswers;
      if (p.at === null) { s.capped++; break; }   // one ttl-long stale is the finding; keep the run short
      s.times.push(p.at - wr.start);
      s.writes.push(wr.ack - wr.start);
    }
    log(`  ${i}: ${s.times.map(f1).join(', ')} ms${s.capped ? `, then not within ${o.staleCapS} s` : ''} (${s.staleAnswers} stale answers while polling; the writes took ${s.writes.map(f1).join(', ')} ms)`);
  }
  add(`EU write -> AP no longer stale p50 / max (ms)`, 'lower', (i) => {
    const s = stale[i]!; const p = percentiles(s.times);
    if (s.capped) return [`not within ${o.staleCapS} s (${s.times.length} of ${s.times.length + 1} trials were: ${s.times.map(f1).join(', ') || '-'} ms)`, Infinity];
    return [`${f1(p.p50)} / ${f1(p.max)}`, p.p50];
  });

  for (const [n, c] of o.concurrency.entries()) {
    const calls = o.tpCalls[n];
    log(`readLocal throughput at ${c} concurrent calls (${calls} calls each)`);
    const r: Partial<Record<Impl, Stat & { opsPerSec: number; cpuMsPer1000: number; wrong: number }>> = {};
    // 1 s not counted first: the pools reopen what they closed while idle (pg's 10 s idle timeout).
    for (const i of o.impls) await eu(i).call('throughput', { concurrency: c, durationMs: 1000, items: o.items });
    // Then alternating rounds (see ROUNDS), merged: all samples, total time, total CPU.
    const TP_ROUNDS = 4;
    const acc: Partial<Record<Impl, { samples: number[]; elapsedMs: number; cpuMs: number; wrong: number }>> = {};
    for (let round = 0; round < TP_ROUNDS; round++) {
      for (const i of order(round)) {
        const x: { samples: number[]; elapsedMs: number; cpuMs: number; wrong: number } =
          await eu(i).call('throughput', { concurrency: c, calls: Math.ceil(calls / TP_ROUNDS), items: o.items });
        const a = (acc[i] ??= { samples: [], elapsedMs: 0, cpuMs: 0, wrong: 0 });
        a.samples.push(...x.samples); a.elapsedMs += x.elapsedMs; a.cpuMs += x.cpuMs; a.wrong += x.wrong;
      }
    }
    for (const i of o.impls) {
      const a = acc[i]!;
      r[i] = {
        ...percentiles(a.samples), opsPerSec: (a.samples.length * 1000) / a.elapsedMs,
        cpuMsPer1000: a.cpuMs / (a.samples.length / 1000), wrong: a.wrong,
      };
    }
    for (const i of o.impls) if (r[i]!.wrong) throw new Error(`${i}: ${r[i]!.wrong} wrong answers at ${c} concurrent`);
    add(`readLocal ×${c}: ops/s`, 'higher', (i) => [r[i]!.opsPerSec.toFixed(0), r[i]!.opsPerSec]);
    add(`readLocal ×${c}: p99 (ms)`, 'lower', (i) => [f1(r[i]!.p99), r[i]!.p99]);
    add(`readLocal ×${c}: Node CPU per 1000 calls (ms)`, 'lower', (i) => [f1(r[i]!.cpuMsPer1000), r[i]!.cpuMsPer1000]);
  }

  const use: Partial<Record<Impl, Partial<Record<Host, { cpuMs: number; maxRssMiB: number; kernelMaxRssMiB: number }>>>> = {};
  for (const i of o.impls) for (const h of HOSTS) (use[i] ??= {})[h] = await w[i][h]!.call('usage');
  for (const h of HOSTS) {
    const short = h === 'eu-west-1' ? 'EU' : 'AP';
    add(`${short} Node process CPU, whole run (s)`, 'lower', (i) => [(use[i]![h]!.cpuMs / 1000).toFixed(2), use[i]![h]!.cpuMs]);
    add(`${short} Node process max RSS (MiB)`, 'lower', (i) => [use[i]![h]!.maxRssMiB.toFixed(0), use[i]![h]!.maxRssMiB]);
  }

  printTable(rows, o);
  await Promise.all(all.map((x) => x.call('exit').catch(() => undefined)));
  await Promise.all(redisDirect.map((r) => r.quit()));
}

function printTable(rows: Row[], o: Options): void {
  const names: Record<Impl, string> = { original: 'original (pg + ioredis)', regiond: 'regiond port' };
  const head = ['measure', ...o.impls.map((i) => names[i])];
  const both = o.impls.length === 2;
  if (both) head.push('regiond ahead');
  const out = [`| ${head.join(' | ')} |`, `| ${head.map((_, n) => (n ? '---:' : '---')).join(' | ')} |`];
  for (const r of rows) {
    const cells = [r.measure, ...o.impls.map((i) => r.cells[i] ?? '—')];
    if (both) {
      const a = r.nums.original!; const b = r.nums.regiond!;
      const ahead = r.better === 'lower' ? b < a : b > a;
      cells.push(a === b ? 'tie' : ahead ? 'yes' : '**no**');
    }
    out.push(`| ${cells.join(' | ')} |`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`yardstick: ${(err as Error).message}\n`);
  process.exit(1);
});
