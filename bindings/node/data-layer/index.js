'use strict';
// The SaaS's data layer (readLocal, readPrimary, writePrimary, readConsistent,
// cachedRead, getRegionHealth) on regiond: same exported functions, same call
// shapes, same return shapes, so an application changes one import:
//
//   const db = require('./dataLayer');          // pg + ioredis
//   const db = require('regiond/data-layer');   // this module
//
// Differences an application sees (README.md here says why):
// - readConsistent's 4th argument is the token writePrimary returns, not a
//   timestamp; a number (an old timestamp) is still accepted and read from the
//   primary, which is always correct but never local.
// - userRegion is accepted and not used: regiond serves from the region of the
//   host it runs on (its daemon's config), which is where the request is anyway.
// - values are PostgreSQL text ('42', 't'), not pg's parsed numbers/booleans.
// - rows arrays carry non-enumerable extras: servedBy, routeReason, token,
//   fromCache (invisible to JSON.stringify, spreading and deep equality).
const regiond = require('..');

let options;
let client = null;

// Connects on first use; configure() before the first call to choose another
// socket or timeout than $REGIOND_SOCKET and 30 s.
function getClient() {
  if (client === null) client = regiond.connect(options);
  return client;
}

function configure(connectOptions) {
  if (client !== null) throw new Error('regiond data layer: configure() must come before the first call (or after close())');
  options = connectOptions;
}

// Lets a script exit at once and frees the connection; the next call reconnects.
function close() {
  if (client !== null) client.close();
  client = null;
}

// pg's errors carry the SQLSTATE in .code; keep `err.code === '23505'` working.
function asPgError(err) {
  if (err && typeof err === 'object' && err.sqlstate && err.code === undefined) {
    try { err.code = err.sqlstate; } catch { /* frozen: leave it */ }
  }
  return err;
}

async function call(fn) {
  try {
    return await fn(getClient());
  } catch (err) {
    throw asPgError(err);
  }
}

function extras(result) {
  return {
    servedBy: result.servedBy,
    routeReason: result.routeReason,
    token: result.token,
    fromCache: result.fromCache,
  };
}

function rowsOf(result) {
  const rows = result.rows;
  for (const [name, value] of Object.entries(extras(result))) {
    Object.defineProperty(rows, name, { value, enumerable: false, writable: true, configurable: true });
  }
  return rows;
}

// userRegion: accepted for the original's call shape; the daemon's region is used.
async function readLocal(userRegion, sql, params = []) {
  return rowsOf(await call((c) => c.readLocal(sql, params)));
}

async function readPrimary(sql, params = []) {
  return rowsOf(await call((c) => c.readPrimary(sql, params)));
}

// The daemon invalidates cacheKeys on this host before answering, then in
// every region (Redis DEL + its own replication:events message) and durably
// with the write's commit; the original's {type: "write"} event had no
// subscriber and is not sent.
async function writePrimary(sql, params = [], cacheKeys = []) {
  const result = await call((c) => c.write(sql, params, cacheKeys));
  return {
    rows: result.rows,
    rowCount: result.affected ?? result.rowCount,
    timestamp: Date.now(),
    ...extras(result),
  };
}

// token: the token of the session's newest write (writePrimary(...).token;
// keep the newest with tokenCmp). A number is an old writeTimestamp: no
// timestamp can prove a replica has a write (README.md), so it is read from
// the primary. null/undefined: nothing to wait for, a local read (as the
// original did with no timestamp).
async function readConsistent(userRegion, sql, params = [], token) {
  if (typeof token === 'number') return readPrimary(sql, params);
  return rowsOf(await call((c) => c.readConsistent(token ?? null, sql, params)));
}

async function cachedRead(userRegion, key, sql, params = [], ttl = 60) {
  const result = await call((c) => c.cachedRead(key, sql, params, ttl));
  return { rows: result.rows, ...extras(result) };
}

// One entry per region as the original; from the daemon's shared state (no
// query, no PING: the daemon measures health, lag and Redis continuously).
// The original's replicationLagMs was "time since the last replayed commit";
// this one is the daemon's replay lag (0 when caught up, however idle).
async function getRegionHealth() {
  const endpoints = await call((c) => c.health());
  const byRegion = new Map();
  for (const row of endpoints) {
    if (!byRegion.has(row.region)) byRegion.set(row.region, []);
    byRegion.get(row.region).push(row);
  }
  return [...byRegion].map(([region, rows]) => {
    const isPrimary = rows.some((r) => r.role === 'primary');
    const replicaLags = rows.filter((r) => r.role === 'replica').map((r) => r.lagMs);
    let replicationLagMs = 0;
    if (!isPrimary) {
      replicationLagMs = replicaLags.some((l) => l === null) ? null : Math.max(...replicaLags);
    }
    return {
      region,
      isPrimary,
      dbHealthy: rows.every((r) => r.healthy),
      replicationLagMs,
      cacheHealthy: rows.some((r) => r.cacheHealthy),
      endpoints: rows,
    };
  });
}

module.exports = {
  readLocal,
  readPrimary,
  writePrimary,
  readConsistent,
  cachedRead,
  getRegionHealth,
  configure,
  close,
  tokenCmp: regiond.tokenCmp,
};
