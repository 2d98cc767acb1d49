'use strict';
// Deadlines, close(), and the process's life: exits when idle, survives a
// worker thread that goes away with a call in flight.
const test = require('node:test');
const assert = require('node:assert/strict');
const { regiond, connectForTest, runNode } = require('./support/fixture');

const { RegiondError } = regiond;

test('a call past timeoutMs rejects with "timed out"', async () => {
  const client = connectForTest({ timeoutMs: 200 });
  try {
    const call = client.readLocal('select pg_sleep(5)');
    assert.equal(client.pending, 1);
    await assert.rejects(call, (e) => e instanceof RegiondError && /timed out/.test(e.message));
    assert.equal(client.pending, 0);
    // the client still works afterwards
    const r = await client.readLocal('select 3 as three');
    assert.deepEqual(r.rows, [{ three: '3' }]);
  } finally {
    client.close();
  }
});

test('close() rejects the calls still pending, and every later call', async () => {
  const client = connectForTest();
  const first = await client.readLocal('select 1 as one');
  assert.deepEqual(first.rows, [{ one: '1' }]);
  // 30 s: they cannot finish before close() (close cancels them on the daemon)
  const calls = [1, 2, 3].map((i) => client.readLocal(`select pg_sleep(30), ${i}`));
  assert.equal(client.pending, 3);
  await new Promise((resolve) => setImmediate(resolve)); // a loop turn: the requests are out
  client.close();
  assert.equal(client.pending, 0);
  for (const call of calls) {
    await assert.rejects(call, (e) => e instanceof RegiondError && e.message === 'client closed');
  }
  await assert.rejects(client.readLocal('select 1'), (e) => e instanceof RegiondError && e.message === 'client closed');
  await assert.rejects(client.health(), (e) => e instanceof RegiondError && e.message === 'client closed');
  client.close(); // idempotent
});

test('a process with an idle client exits by itself (no process.exit, no close)', async () => {
  const out = await runNode(`
    const regiond = require(process.env.REGIOND_PACKAGE);
    const client = regiond.connect({ socket: process.env.REGIOND_TEST_SOCKET });
    client.readLocal('select 7 as seven').then((r) => console.log('got', r.rows[0].seven));
  `, { deadlineMs: 30000 });
  assert.equal(out.stderr, '');
  assert.equal(out.code, 0);
  assert.equal(out.stdout.trim(), 'got 7');
});

test('a process waits for its pending calls before exiting', async () => {
  // The libuv handle is ref'd while a call is pending: without it the process
  // would exit before the answer and print nothing.
  const out = await runNode(`
    const regiond = require(process.env.REGIOND_PACKAGE);
    const client = regiond.connect({ socket: process.env.REGIOND_TEST_SOCKET });
    client.readLocal('select pg_sleep(0.5), 8 as eight').then((r) => console.log('got', r.rows[0].eight));
  `, { deadlineMs: 30000 });
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout.trim(), 'got 8');
});

test('a worker thread that ends with a call in flight does not crash the process', async () => {
  const out = await runNode(`
    const { Worker } = require('node:worker_threads');
    const code = \`
      const { parentPort } = require('node:worker_threads');
      const regiond = require(process.env.REGIOND_PACKAGE);
      const client = regiond.connect({ socket: process.env.REGIOND_TEST_SOCKET });
      client.readLocal('select 5 as five').then((r) => {
        parentPort.postMessage(r.rows[0].five);
        client.readLocal('select pg_sleep(3)');  // still in flight at terminate()
        parentPort.postMessage('started');
      });
    \`;
    const worker = new Worker(code, { eval: true });
    worker.on('message', (m) => {
      console.log('worker', m);
      if (m === 'started') worker.terminate();
    });
    worker.on('exit', () => console.log('worker exited'));
  `, { deadlineMs: 30000 });
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout.trim(), 'worker 5\nworker started\nworker exited');
});
