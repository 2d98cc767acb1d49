'use strict';
// Each verb against the real daemon and cluster, and what its Result says.
const test = require('node:test');
const assert = require('node:assert/strict');
const { regiond, connectForTest, makeTable } = require('./support/fixture');

const { RegiondError, tokenCmp } = regiond;
const TOKEN = /^\d+\/[0-9A-F]+\/[0-9A-F]+$/;

let client;
let table;

test.before(async () => {
  client = connectForTest();
  table = await makeTable(client, 'node_verbs');
});

test.after(async () => {
  if (client) {
    if (table) await client.write(`drop table if exists ${table}`);
    client.close();
  }
});

test('readLocal: rows keyed by column name, served by the eu-west-1 replica', async () => {
  const r = await client.readLocal(`select 1 as one, null::text as nothing, 'x' as "Mixed Case", $1::text as p`, ['y']);
  assert.deepEqual(r.columns, ['one', 'nothing', 'Mixed Case', 'p']);
  assert.deepEqual(r.rows, [{ one: '1', nothing: null, 'Mixed Case': 'x', p: 'y' }]);
  assert.equal(r.rowCount, 1);
  assert.equal(r.servedBy, 'eu-west-1/replica');
  assert.match(r.token, TOKEN);
  assert.equal(r.affected, null);
  assert.equal(r.fromCache, false);
  assert.equal(typeof r.routeReason, 'string');
});

test('readPrimary: served by the primary in us-east-1', async () => {
  const r = await client.readPrimary('select pg_is_in_recovery() as standby');
  assert.equal(r.servedBy, 'us-east-1/primary');
  assert.deepEqual(r.rows, [{ standby: 'f' }]);
  assert.match(r.token, TOKEN);
});

test('write: affected rows and a token; readConsistent with that token sees the write', async () => {
  const before = await client.readLocal('select 1');
  const w = await client.write(`insert into ${table} (k, v) values ($1, $2), ($3, $4)`, ['a', 'va', 'b', 'vb']);
  assert.equal(w.affected, 2);
  assert.equal(w.servedBy, 'us-east-1/primary');
  assert.match(w.token, TOKEN);
  assert.equal(tokenCmp(w.token, before.token), 1, 'a write is newer than a read before it');
  assert.equal(tokenCmp(w.token, w.token), 0);
  assert.equal(tokenCmp('', w.token), -1);
  assert.equal(tokenCmp('garbage', w.token), -2);

  const update = await client.write(`update ${table} set v = $1 where k = $2`, ['va2', 'a']);
  assert.equal(update.affected, 1);
  const r = await client.readConsistent(update.token, `select v from ${table} where k = $1`, ['a']);
  assert.deepEqual(r.rows, [{ v: 'va2' }]);
  assert.ok(tokenCmp(r.token, update.token) >= 0, `read token ${r.token} older than the write's ${update.token}`);
  assert.ok(['eu-west-1/replica', 'us-east-1/primary'].includes(r.servedBy), r.servedBy);
});

test('readConsistent: no token reads locally; a malformed token is a RegiondError', async () => {
  for (const token of [null, undefined, '']) {
    const r = await client.readConsistent(token, 'select 2 as two');
    assert.deepEqual(r.rows, [{ two: '2' }]);
    assert.equal(r.servedBy, 'eu-west-1/replica');
  }
  await assert.rejects(client.readConsistent('not-a-token', 'select 1'),
                       (e) => e instanceof RegiondError && /token/i.test(e.message));
});

test('cachedRead: the second call is a cache hit; a write with the key invalidates it', async () => {
  const key = `node-test:${table}:a`;
  await client.write(`insert into ${table} (k, v) values ($1, $2)`, ['c', 'old']);
  const sql = `select v from ${table} where k = $1`;
  // read_consistent first, so the replica has the row before the cache is filled
  const seen = await client.write(`update ${table} set v = v where k = $1`, ['c']);
  await client.readConsistent(seen.token, sql, ['c']);

  const first = await client.cachedRead(key, sql, ['c'], 60);
  assert.deepEqual(first.rows, [{ v: 'old' }]);
  assert.equal(first.fromCache, false, `first call served by ${first.servedBy}`);
  const second = await client.cachedRead(key, sql, ['c'], 60);
  assert.deepEqual(second.rows, [{ v: 'old' }]);
  assert.equal(second.fromCache, true, `second call served by ${second.servedBy}: ${second.routeReason}`);
  assert.match(second.servedBy, /^cache:(local|redis)$/);

  const w = await client.write(`update ${table} set v = $1 where k = $2`, ['new', 'c'], [key]);
  assert.equal(w.affected, 1);
  const after = await client.cachedRead(key, sql, ['c'], 60);
  assert.ok(!(after.fromCache && after.rows[0].v === 'old'), `the invalidated key was served from ${after.servedBy}`);
  // The replica may replay the write a moment later: poll with a deadline.
  let latest = after;
  const deadline = Date.now() + 10000;
  while (latest.rows[0].v !== 'new' && Date.now() < deadline) latest = await client.cachedRead(key, sql, ['c'], 60);
  assert.deepEqual(latest.rows, [{ v: 'new' }]);
});

test('health: one row per endpoint from the shared state, at once', async () => {
  const rows = await client.health();
  assert.deepEqual(rows.map((h) => h.region).sort(), ['ap-northeast-1', 'eu-west-1', 'us-east-1']);
  const primary = rows.find((h) => h.role === 'primary');
  assert.equal(primary.region, 'us-east-1');
  for (const h of rows) {
    assert.equal(typeof h.healthy, 'boolean');
    assert.equal(typeof h.cacheHealthy, 'boolean');
    assert.ok(h.lagMs === null || typeof h.lagMs === 'number');
    assert.ok(h.rttMs === null || typeof h.rttMs === 'number');
    assert.equal(typeof h.endpoint, 'string');
    assert.equal(typeof h.replayLsn, 'string');
  }
  assert.ok(rows.some((h) => h.role === 'replica' && /^[0-9A-F]+\/[0-9A-F]+$/.test(h.replayLsn)));
});

test('parameters are converted to PostgreSQL text like node-postgres does', async () => {
  const when = new Date(Date.UTC(2024, 4, 1, 10, 30, 0));
  const r = await client.readLocal(
    'select $1::text a, $2::int b, $3::bool c, $4::bytea d, $5::int[] e, $6::jsonb f, $7::text g, ' +
    '$8::timestamptz = \'2024-05-01 10:30:00+00\' h, $9::int8 i, $10::text[] j',
    ['x', 42, true, Buffer.from([1, 0xab]), [1, 2, null], { a: 1 }, null, when, 9007199254740993n,
     ['q"uote', 'back\\slash']]);
  assert.deepEqual(r.rows[0], {
    a: 'x', b: '42', c: 't', d: '\\x01ab', e: '{1,2,NULL}', f: '{"a": 1}', g: null, h: 't',
    i: '9007199254740993', j: '{"q\\"uote","back\\\\slash"}',
  });
});

test('a SQL error is a RegiondError carrying its SQLSTATE', async () => {
  await assert.rejects(client.readLocal('select * from no_such_table_regiond_node'), (e) => {
    assert.ok(e instanceof RegiondError, `not a RegiondError: ${e}`);
    assert.ok(e instanceof Error);
    assert.equal(e.sqlstate, '42P01');
    assert.match(e.message, /no_such_table_regiond_node/);
    return true;
  });
});

test('a write sent as readLocal fails with 25006 and changes nothing', async () => {
  await assert.rejects(client.readLocal(`insert into ${table} (k, v) values ('ro', 'x')`),
                       (e) => e instanceof RegiondError && e.sqlstate === '25006');
  const r = await client.readPrimary(`select count(*) as n from ${table} where k = 'ro'`);
  assert.deepEqual(r.rows, [{ n: '0' }]);
});

test('argument mistakes throw a TypeError synchronously', () => {
  assert.throws(() => client.readLocal(42), TypeError);
  assert.throws(() => client.readLocal('select $1', 'not an array'), TypeError);
  assert.throws(() => client.readLocal('select $1', ['nul\0byte']), TypeError);
  assert.throws(() => client.write('select 1', [], 'key'), TypeError);
  assert.throws(() => client.readConsistent(5, 'select 1'), TypeError);
  assert.throws(() => client.cachedRead('k', 'select 1', [], -1), TypeError);
  assert.throws(() => client.readLocal('select $1', [Symbol('s')]), TypeError);
  assert.equal(client.pending, 0, 'nothing was started');
});

test('connect to a socket with no daemon throws a RegiondError naming it', () => {
  assert.throws(() => regiond.connect({ socket: '/nonexistent/regiond.sock' }),
                (e) => e instanceof RegiondError && e.message.includes('/nonexistent/regiond.sock'));
});
