// The SaaS data layer on regiond (require('regiond/data-layer')): the original
// pg + ioredis module's functions and shapes. See README.md in this folder.
import type { ConnectOptions, HealthRow, Param } from '..';

/** Values are PostgreSQL text (pg would have parsed int4, bool, ... into JS values). */
export type Row = Record<string, string | null>;

/** Where an answer came from and why; on rows arrays these are non-enumerable. */
export interface Served {
  servedBy: string;      // "eu-west-1/replica", "us-east-1/primary", "cache:local", "cache:redis"
  routeReason: string;   // one line for people, never parsed
  token: string;         // consistency token of this answer ("SYSTEMID/LSN")
  fromCache: boolean;
}

export type Rows = Row[] & Served;

/** userRegion is accepted for the original's call shape; the host's daemon region serves. */
export function readLocal(userRegion: string, sql: string, params?: Param[]): Promise<Rows>;
export function readPrimary(sql: string, params?: Param[]): Promise<Rows>;

export interface WriteResult extends Served {
  rows: Row[];
  rowCount: number;
  /** Date.now() after the write, as the original returned; not a consistency proof. */
  timestamp: number;
}
/** cacheKeys are invalidated on this host before the promise settles, then in every region. */
export function writePrimary(sql: string, params?: Param[], cacheKeys?: string[]): Promise<WriteResult>;

/**
 * Never older than the write whose token is given (writePrimary(...).token).
 * A number (an old writeTimestamp) is read from the primary; null/undefined
 * reads locally (nothing to wait for).
 */
export function readConsistent(userRegion: string, sql: string, params?: Param[],
                               token?: string | number | null): Promise<Rows>;

export interface CachedResult extends Served { rows: Row[] }
export function cachedRead(userRegion: string, key: string, sql: string, params?: Param[],
                           ttl?: number): Promise<CachedResult>;

export interface RegionHealth {
  region: string;
  isPrimary: boolean;
  dbHealthy: boolean;
  /** replay lag measured by the daemon (0 on the primary; null if unknown). */
  replicationLagMs: number | null;
  cacheHealthy: boolean;
  endpoints: HealthRow[];
}
export function getRegionHealth(): Promise<RegionHealth[]>;

/** Before the first call: another socket or per-call timeout. */
export function configure(options?: ConnectOptions): void;
/** Closes the connection (the next call reconnects). */
export function close(): void;
export function tokenCmp(a: string, b: string): -1 | 0 | 1 | -2;
