// regiond for Node.js (docs/node.md). Values come back as PostgreSQL text:
// no type parsing (an int8 is "42", a timestamptz "2024-05-01 10:00:00+00").

/**
 * A query parameter, converted to PostgreSQL text as node-postgres does:
 * null/undefined -> SQL NULL, boolean -> 'true'/'false', number/bigint -> String(),
 * Date -> ISO 8601 (UTC), Buffer -> '\x..' bytea hex, arrays -> a PostgreSQL array
 * literal, other objects -> JSON.stringify (or their toPostgres()).
 */
export type Param = string | number | bigint | boolean | Date | Buffer | null | undefined | unknown[] | object;

export interface ConnectOptions {
  /** Default: $REGIOND_SOCKET, else /run/regiond/regiond.sock. */
  socket?: string;
  /** Deadline of each call in ms, default 30000; 0 = no client-side deadline. */
  timeoutMs?: number;
}

export interface Result {
  /** One object per row, keyed by column name (a later duplicate name wins); values are PostgreSQL text. */
  rows: Array<Record<string, string | null>>;
  columns: string[];
  /** rows.length (for a write's changed rows see `affected`). */
  rowCount: number;
  /** "eu-west-1/replica", "us-east-1/primary", "cache:local", "cache:redis". */
  servedBy: string;
  /** One line for people, never parsed. */
  routeReason: string;
  /** Consistency token ("SYSTEMID/LSN"); keep the newest (tokenCmp). */
  token: string;
  /** Rows changed by a write, else null. */
  affected: number | null;
  /** servedBy starts with "cache:". */
  fromCache: boolean;
}

export interface HealthRow {
  region: string;
  endpoint: string;
  role: 'primary' | 'replica';
  healthy: boolean;
  lagMs: number | null;
  lagBytes: number | null;
  rttMs: number | null;
  cacheHealthy: boolean;
  replayLsn: string;
}

/** Every promise of a Client rejects with a RegiondError; connect() throws one. */
export class RegiondError extends Error {
  constructor(message: string, details?: { sqlstate?: string; servedBy?: string; routeReason?: string });
  /** SQLSTATE of a database error (e.g. "42P01", "25006"), else "". */
  sqlstate: string;
  servedBy: string;
  routeReason: string;
}

/**
 * Argument mistakes (sql not a string, params not an array, a NUL character in
 * text, ...) throw a TypeError synchronously; everything that happens to a call
 * after it was started rejects its promise with a RegiondError.
 */
export class Client {
  constructor(options?: ConnectOptions);
  readLocal(sql: string, params?: Param[]): Promise<Result>;
  readPrimary(sql: string, params?: Param[]): Promise<Result>;
  write(sql: string, params?: Param[], invalidateKeys?: string[]): Promise<Result>;
  readConsistent(token: string | null | undefined, sql: string, params?: Param[]): Promise<Result>;
  cachedRead(key: string, sql: string, params?: Param[], ttlSeconds?: number): Promise<Result>;
  /** From the shared-memory state, no round trip. */
  health(): Promise<HealthRow[]>;
  /** Calls started and not yet settled. */
  readonly pending: number;
  /** Rejects unsettled calls with RegiondError('client closed'). Idempotent. */
  close(): void;
}

/** Synchronous (a local handshake); throws RegiondError, e.g. "daemon not running at PATH". */
export function connect(options?: ConnectOptions): Client;
/** -1 if a is older than b, 0 equal, 1 newer, -2 not comparable ("" is older than every token). */
export function tokenCmp(a: string, b: string): -1 | 0 | 1 | -2;
