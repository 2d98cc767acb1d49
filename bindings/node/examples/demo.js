#!/usr/bin/env node
// The Node section of scripts/demo.sh: the same daemon from JavaScript through
// the addon (one descriptor in libuv, no thread pool). Times each call in
// process. usage: node examples/demo.js --socket PATH
'use strict';
const regiond = require('..');

const socketArg = process.argv.indexOf('--socket');
const socket = socketArg > 0 ? process.argv[socketArg + 1] : undefined;

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const pad = (s, n) => String(s).padEnd(n);

async function timed(what, call) {
  const t0 = process.hrtime.bigint();
  const r = await call();
  return { r, ms: ms(t0) };
}

async function main() {
  const client = regiond.connect({ socket });
  try {
    await client.write('create table if not exists node_demo (id int primary key, city text not null)');
    const line = (verb, { r, ms: t }, extra = '') =>
      console.log(`${pad(verb, 24)}${pad(r.servedBy, 22)}${t.toFixed(1).padStart(8)} ms  ${extra}`);

    const city = `Lisbon-${process.pid}`;
    const w = await timed('write', () => client.write(
      'insert into node_demo (id, city) values (1, $1) on conflict (id) do update set city = excluded.city', [city]));
    line('write', w, `${w.r.affected} row, token ${w.r.token}`);
    const rc = await timed('readConsistent', () =>
      client.readConsistent(w.r.token, 'select city from node_demo where id = 1'));
    line('readConsistent(token)', rc, `${rc.r.rows[0].city === city ? 'fresh' : 'STALE'}: ${rc.r.routeReason}`);
    line('readLocal', await timed('readLocal', () => client.readLocal('select city from node_demo where id = 1')));
    line('readPrimary', await timed('readPrimary', () => client.readPrimary('select city from node_demo where id = 1')));
    const key = `node-demo:${process.pid}`;
    line('cachedRead (cold)', await timed('', () => client.cachedRead(key, 'select city from node_demo where id = 1')));
    line('cachedRead (warm)', await timed('', () => client.cachedRead(key, 'select city from node_demo where id = 1')));

    // Many calls in flight from one JavaScript thread: each is a start on the
    // ring, the answers come back through the one descriptor libuv watches.
    const n = 2000;
    const t0 = process.hrtime.bigint();
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => client.readLocal('select $1::int + 1 as next', [i])));
    const total = ms(t0);
    const correct = results.every((r, i) => r.rows[0].next === String(i + 1));
    console.log(`${n} concurrent readLocal from one process: ${total.toFixed(1)} ms ` +
                `(${Math.round(n / (total / 1000))} calls/s), every answer its own: ${correct ? 'yes' : 'NO'}`);
  } finally {
    client.close();
  }
}

main().catch((e) => {
  console.error(`node demo: ${e.message}${e.sqlstate ? ` (SQLSTATE ${e.sqlstate})` : ''}`);
  process.exit(1);
});
