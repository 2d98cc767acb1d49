// The SaaS's data layer as it is today, reimplemented faithfully from the
// issue's description (node-postgres + ioredis). This is the yardstick regiond
// is measured against: it is kept as the application runs it, flaws included
// (see the comments marked "as the original"), and must not be "fixed".
//
//   readLocal(userRegion, sql, params)            -> rows
//   readPrimary(sql, params)                       -> rows
//   writePrimary(sql, params, cacheKeys)           -> { rows, rowCount, timestamp }
//   readConsistent(userRegion, sql, params, writeTimestamp) -> rows
//   cachedRead(userRegion, key, sql, params, ttl = 60) -> { rows, fromCache }
//   getRegionHealth()  -> [{ region, isPrimary, dbHealthy, replicationLagMs, cacheHealthy }]
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  PRIMARY_REGION, REGIONS, type Region, passwordFromPassfile, pgEndpoint, redisEndpoint,
} from './config.js';

const DEFAULT_REGION: Region = 'us-east-1';
const POOL_SIZE = 20;
const LAG_SQL = 'SELECT EXTRACT(EPOCH FROM (NOW() - pg_last_xact_replay_timestamp())) * 1000 AS lag_ms';

type Row = Record<string, unknown>;

function makePool(region: Region): pg.Pool {
  const { host, port } = pgEndpoint(region);
  const password = passwordFromPassfile();
  return new pg.Pool({
    host, port,
    database: process.env.PGDATABASE ?? 'app',
    user: process.env.PGUSER ?? 'app',
    password: async () => password,
    max: POOL_SIZE,
  });
}

function makeRedis(region: Region): Redis {
  const { host, port } = redisEndpoint(region);
  return new Redis({ host, port });
}

// One pool of 20 and one Redis client per region, created at import.
const pools = Object.fromEntries(REGIONS.map((r) => [r, makePool(r)])) as Record<Region, pg.Pool>;
const redis = Object.fromEntries(REGIONS.map((r) => [r, makeRedis(r)])) as Record<Region, Redis>;

function regionOf(userRegion: string): Region {
  return (REGIONS as readonly string[]).includes(userRegion) ? (userRegion as Region) : DEFAULT_REGION;
}

// Not part of the original: how often readConsistent chose the local replica
// and the primary, so the bench can report the share served locally (the
// original's callers cannot see it).
export const routeStats = { consistentLocal: 0, consistentPrimary: 0 };

export async function readLocal(userRegion: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const result = await pools[regionOf(userRegion)].query(sql, params);
  return result.rows;
}

export async function readPrimary(sql: string, params: unknown[] = []): Promise<Row[]> {
  const result = await pools[PRIMARY_REGION].query(sql, params);
  return result.rows;
}

// As the original: the table for the event is whatever the regular
// expression finds after INSERT INTO / UPDATE / DELETE FROM.
function tableOf(sql: string): string {
  const m = sql.match(/(?:insert\s+into|update|delete\s+from)\s+["`]?([\w.]+)/i);
  return m ? m[1] : 'unknown';
}

export async function writePrimary(sql: string, params: unknown[] = [], cacheKeys: string[] = []):
    Promise<{ rows: Row[]; rowCount: number | null; timestamp: number }> {
  const result = await pools[PRIMARY_REGION].query(sql, params);
  if (cacheKeys.length > 0) {
    // As the original: every key in every region, all at once, failures ignored.
    await Promise.all(REGIONS.map((r) => redis[r].del(...cacheKeys).catch(() => 0)));
  }
  const timestamp = Date.now();
  // As the original: an event nobody subscribes to.
  await redis[PRIMARY_REGION].publish('replication:events', JSON.stringify({
    type: 'write', table: tableOf(sql), cacheKeys, timestamp,
  }));
  return { rows: result.rows, rowCount: result.rowCount, timestamp };
}

async function replicaLagMs(region: Region): Promise<number> {
  const result = await pools[region].query(LAG_SQL);
  // NULL before the replica has replayed anything: treated as no lag.
  return Number(result.rows[0]?.lag_ms ?? 0);
}

export async function readConsistent(userRegion: string, sql: string, params: unknown[] = [],
    writeTimestamp?: number): Promise<Row[]> {
  const region = regionOf(userRegion);
  if (region === PRIMARY_REGION) {
    routeStats.consistentPrimary++;
    return readPrimary(sql, params);
  }
  const lag = await replicaLagMs(region);
  // As the original: this host's clock against the writer's, the lag query's
  // "time since the last replayed commit", and a 100 ms margin.
  if (Date.now() - (writeTimestamp as number) < lag + 100) {
    routeStats.consistentPrimary++;
    return readPrimary(sql, params);
  }
  routeStats.consistentLocal++;
  return readLocal(region, sql, params);
}

export async function cachedRead(userRegion: string, key: string, sql: string, params: unknown[] = [],
    ttl = 60): Promise<{ rows: Row[]; fromCache: boolean }> {
  const region = regionOf(userRegion);
  const cached = await redis[region].get(key);
  if (cached !== null) return { rows: JSON.parse(cached), fromCache: true };
  const rows = await readLocal(region, sql, params);
  await redis[region].setex(key, ttl, JSON.stringify(rows));
  return { rows, fromCache: false };
}

export interface RegionHealth {
  region: string; isPrimary: boolean; dbHealthy: boolean; replicationLagMs: number | null; cacheHealthy: boolean;
}

export async function getRegionHealth(): Promise<RegionHealth[]> {
  return Promise.all(REGIONS.map(async (region): Promise<RegionHealth> => {
    const isPrimary = region === PRIMARY_REGION;
    let dbHealthy = false;
    let replicationLagMs: number | null = isPrimary ? 0 : null;
    let cacheHealthy = false;
    try {
      await pools[region].query('SELECT 1');
      dbHealthy = true;
      if (!isPrimary) replicationLagMs = await replicaLagMs(region);
    } catch { /* unhealthy */ }
    try {
      cacheHealthy = (await redis[region].ping()) === 'PONG';
    } catch { /* unhealthy */ }
    return { region, isPrimary, dbHealthy, replicationLagMs, cacheHealthy };
  }));
}

// Not part of the original's API: lets a script exit (the pools and clients
// otherwise keep the event loop alive).
export async function close(): Promise<void> {
  await Promise.all([...Object.values(pools).map((p) => p.end()),
    ...Object.values(redis).map((c) => c.quit().catch(() => undefined))]);
}
