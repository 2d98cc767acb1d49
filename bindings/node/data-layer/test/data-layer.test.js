'use strict';
// The ported data layer against a real daemon (the one bindings/node's
// `npm test` starts, $REGIOND_TEST_SOCKET, else the cluster's eu-west-1
// daemon): the original's call and return shapes, read-your-writes by value
// with the token, a timestamp read from the primary, invalidation by
// cacheKeys, health per region, pg-style error codes.
//   cd bindings/node && node --test data-layer/test/
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { connectForTest, makeTable, testSocket } = require('../../test/support/fixture');
const db = require('..');

let admin;
let table;

test.before(async () => {
  db.configure({ socket: testSocket() });
  admin = connectForTest();
  table = await makeTable(admin, 'dl');
  await admin.write(`insert into ${table} (k, v) values ('a', 'one'), ('b', 'two')`);
});

test.after(async () => {
  if (table) await admin.write(`drop table ${table}`);
  admin.close();
  db.close();
});

test('readLocal and readPrimary return rows arrays with where they came from, not enumerable', async () => {
  // The insert above must have reached the local replica: read it consistently first.
  const seen = await db.readConsistent('eu-west-1', `select v from ${table} where k = $1`, ['a'],
    (await admin.readPrimary('select 1')).token);
  assert.deepEqual([...seen], [{ v: 'one' }]);
  const local = await db.readLocal('eu-west-1', `select k, v from ${table} order by k`);
  assert.ok(Array.isArray(local));
  assert.deepEqual(local, [{ k: 'a', v: 'one' }, { k: 'b', v: 'two' }]);
  assert.equal(JSON.stringify(local), '[{"k":"a","v":"one"},{"k":"b","v":"two"}]');
  assert.match(local.servedBy, /\/(replica|primary)$/);
  assert.equal(local.fromCache, false);
  assert.match(local.token, /^\d+\/[0-9A-F]+\/[0-9A-F]+$/);
  const primary = await db.readPrimary(`select count(*) as n from ${table}`);
  assert.deepEqual([...primary], [{ n: '2' }]);
  assert.match(primary.servedBy, /\/primary$/);
});

test('writePrimary returns rowCount, a timestamp and the token readConsistent needs', async () => {
  const value = crypto.randomBytes(6).toString('hex');
  const before = Date.now();
  const w = await db.writePrimary(`update ${table} set v = $2 where k = $1`, ['a', value]);
  assert.equal(w.rowCount, 1);
  assert.ok(w.timestamp >= before);
  assert.ok(typeof w.token === 'string' && w.token.length > 0);
  const rows = await db.readConsistent('eu-west-1', `select v from ${table} where k = $1`, ['a'], w.token);
  assert.equal(rows[0].v, value, `read-your-writes with the token (served by ${rows.servedBy}: ${rows.routeReason})`);
});

test('readConsistent hands the token to the daemon: a malformed one is refused, not read stale', async () => {
  await assert.rejects(db.readConsistent('eu-west-1', 'select 1', [], 'not-a-token'),
    (err) => err instanceof Error && /token/i.test(err.message));
});

test('readConsistent with a number (an old writeTimestamp) reads the primary', async () => {
  const rows = await db.readConsistent('eu-west-1', `select v from ${table} where k = $1`, ['b'], Date.now());
  assert.equal(rows[0].v, 'two');
  assert.match(rows.servedBy, /\/primary$/);
});

test('cachedRead caches, and writePrimary with cacheKeys invalidates before it settles', async () => {
  const key = `dl:${table}:b`;
  const sql = `select v from ${table} where k = $1`;
  await db.readConsistent('eu-west-1', sql, ['b'], (await admin.readPrimary('select 1')).token);
  const first = await db.cachedRead('eu-west-1', key, sql, ['b'], 30);
  assert.deepEqual(first.rows, [{ v: 'two' }]);
  assert.equal(first.fromCache, false);
  const second = await db.cachedRead('eu-west-1', key, sql, ['b'], 30);
  assert.deepEqual(second.rows, [{ v: 'two' }]);
  assert.equal(second.fromCache, true);
  assert.match(second.servedBy, /^cache:/);
  await db.writePrimary(`update ${table} set v = 'three' where k = $1`, ['b'], [key]);
  const third = await db.cachedRead('eu-west-1', key, sql, ['b'], 30);
  assert.deepEqual(third.rows, [{ v: 'three' }], 'the invalidated value must not come back from the cache');
  assert.equal(third.fromCache, false);
});

test('getRegionHealth: one entry per region, the primary marked', async () => {
  const health = await db.getRegionHealth();
  const byRegion = Object.fromEntries(health.map((h) => [h.region, h]));
  assert.deepEqual(Object.keys(byRegion).sort(), ['ap-northeast-1', 'eu-west-1', 'us-east-1']);
  assert.equal(byRegion['us-east-1'].isPrimary, true);
  assert.equal(byRegion['us-east-1'].replicationLagMs, 0);
  assert.equal(byRegion['eu-west-1'].isPrimary, false);
  for (const h of health) {
    assert.equal(typeof h.dbHealthy, 'boolean');
    assert.equal(typeof h.cacheHealthy, 'boolean');
    assert.ok(Array.isArray(h.endpoints) && h.endpoints.length > 0);
  }
});

test('a database error keeps its SQLSTATE in err.code, as pg did', async () => {
  await assert.rejects(db.readLocal('eu-west-1', 'select * from no_such_table_here'), (err) => {
    assert.equal(err.code, '42P01');
    assert.equal(err.sqlstate, '42P01');
    return true;
  });
});
