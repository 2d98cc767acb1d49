'use strict';
// The public Client: argument checks and parameter conversion in JavaScript,
// everything else in the addon (src/client.cpp), which starts each call
// without blocking and settles its promise from libuv when libregiond's
// descriptor says it finished.
const native = require('./native');
const { toParams, typeError, checkNul } = require('./params');

const DEFAULT_TIMEOUT_MS = 30000;

function requireString(value, name) {
  if (typeof value !== 'string') throw typeError(`${name} must be a string, got ${describe(value)}`);
  return checkNul(value, name);
}

function describe(value) {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function toKeys(keys) {
  if (keys === undefined || keys === null) return [];
  if (!Array.isArray(keys)) throw typeError('invalidateKeys must be an array of strings');
  return keys.map((k, i) => requireString(k, `invalidateKeys[${i}]`));
}

function toHealthRow(row) {
  const num = (v) => (v === null || v === '' ? null : Number(v));
  return {
    region: row.region,
    endpoint: row.endpoint,
    role: row.role,
    healthy: row.healthy === 't',
    lagMs: num(row.lag_ms),
    lagBytes: num(row.lag_bytes),
    rttMs: num(row.rtt_ms),
    cacheHealthy: row.cache_healthy === 't',
    replayLsn: row.replay_lsn || '',
  };
}

class Client {
  #native;

  /** @param {{socket?: string, timeoutMs?: number}} [options] */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw typeError('options must be an object');
    const { socket, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
    if (socket !== undefined) requireString(socket, 'options.socket');
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0xffffffff) {
      throw typeError('options.timeoutMs must be an integer number of milliseconds >= 0 (0: no client deadline)');
    }
    // socket undefined: libregiond uses $REGIOND_SOCKET, else /run/regiond/regiond.sock
    this.#native = new native.NativeClient(socket === undefined ? null : socket, timeoutMs);
  }

  readLocal(sql, params) {
    return this.#native.readLocal(requireString(sql, 'sql'), toParams(params));
  }

  readPrimary(sql, params) {
    return this.#native.readPrimary(requireString(sql, 'sql'), toParams(params));
  }

  write(sql, params, invalidateKeys) {
    return this.#native.write(requireString(sql, 'sql'), toParams(params), toKeys(invalidateKeys));
  }

  readConsistent(token, sql, params) {
    const t = token === null || token === undefined ? '' : requireString(token, 'token');
    return this.#native.readConsistent(t, requireString(sql, 'sql'), toParams(params));
  }

  cachedRead(key, sql, params, ttlSeconds = 0) {
    requireString(key, 'key');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > 0xffffffff) {
      throw typeError('ttlSeconds must be an integer >= 0 (0: the daemon\'s default ttl)');
    }
    return this.#native.cachedRead(key, ttlSeconds, requireString(sql, 'sql'), toParams(params));
  }

  /** From the daemon's shared-memory state: no round trip, resolves at once. */
  async health() {
    return this.#native.health().rows.map(toHealthRow);
  }

  /** Calls started and not yet settled. */
  get pending() {
    return this.#native.pending;
  }

  /** Rejects unsettled calls with RegiondError('client closed'); later calls reject the same way. */
  close() {
    this.#native.close();
  }
}

/** @param {{socket?: string, timeoutMs?: number}} [options] */
function connect(options) {
  return new Client(options);
}

function tokenCmp(a, b) {
  return native.tokenCmp(a, b);
}

module.exports = { Client, connect, tokenCmp };
