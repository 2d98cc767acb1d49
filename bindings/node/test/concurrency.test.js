'use strict';
// Many calls in flight from one process, and the proof that none of them holds
// a thread of libuv's pool.
const test = require('node:test');
const assert = require('node:assert/strict');
const { connectForTest, runNode } = require('./support/fixture');

test('1200 concurrent calls from one process all settle with their own values', async () => {
  const client = connectForTest();
  try {
    const n = 1200;
    const calls = [];
    for (let i = 0; i < n; i++) {
      const sql = 'select $1::int * 2 as doubled, $2::text as tag';
      const params = [i, `call-${i}`];
      // every tenth goes to the primary: answers come back out of order
      calls.push(i % 10 === 0 ? client.readPrimary(sql, params) : client.readLocal(sql, params));
    }
    const all = Promise.all(calls);
    all.catch(() => {}); // a failed assertion below must not leave unhandled rejections behind
    assert.equal(client.pending, n, 'all started, none settled synchronously');
    const results = await all;
    results.forEach((r, i) => {
      assert.deepEqual(r.rows, [{ doubled: String(i * 2), tag: `call-${i}` }], `call ${i}`);
      assert.equal(r.servedBy, i % 10 === 0 ? 'us-east-1/primary' : 'eu-west-1/replica', `call ${i}`);
    });
    assert.equal(client.pending, 0);
  } finally {
    client.close();
  }
});

test('calls in flight do not hold libuv pool threads (UV_THREADPOOL_SIZE=1)', async () => {
  // With a pool of one thread, a design that waits for an answer in the pool
  // makes readFile (which needs the pool) wait behind the first pg_sleep(2). With
  // the descriptor watched by the loop, readFile resolves first.
  const out = await runNode(`
    const fs = require('node:fs');
    const regiond = require(process.env.REGIOND_PACKAGE);
    const client = regiond.connect({ socket: process.env.REGIOND_TEST_SOCKET });
    const order = [];
    const calls = [];
    for (let i = 0; i < 4; i++) {
      calls.push(client.readLocal('select pg_sleep(2)').then(() => order.push('call ' + i),
                                                            (e) => order.push('call ' + i + ' failed: ' + e.message)));
    }
    const file = fs.promises.readFile(process.env.REGIOND_PACKAGE + '/package.json')
      .then(() => order.push('readFile'));
    Promise.all([...calls, file]).then(() => console.log(JSON.stringify(order)));
  `, { env: { UV_THREADPOOL_SIZE: '1' }, deadlineMs: 60000 });
  assert.equal(out.code, 0, out.stderr);
  const order = JSON.parse(out.stdout);
  assert.equal(order.length, 5);
  assert.equal(order[0], 'readFile', `order: ${order.join(', ')}`);
  assert.ok(order.slice(1).every((o) => /^call \d$/.test(o)), `order: ${order.join(', ')}`);
});
