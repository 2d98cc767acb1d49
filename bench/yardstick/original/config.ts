// Where the original module kept its connection strings. Here they come from
// the environment so that bench/yardstick.sh can point a process "on" an
// emulated host at the WAN links from that host (scripts/cluster.sh):
//   YARD_PG_<REGION>=host:port      e.g. YARD_PG_EU_WEST_1=127.0.0.1:25530
//   YARD_REDIS_<REGION>=host:port
//   PGDATABASE, PGUSER, PGPASSFILE  (the cluster's app database, user, passfile)
// The password is read from the passfile (never from the environment or a
// command line), and given to pg as a function so it never appears in a
// connection string or a log.
import { readFileSync } from 'node:fs';

export const REGIONS = ['us-east-1', 'eu-west-1', 'ap-northeast-1'] as const;
export type Region = (typeof REGIONS)[number];
export const PRIMARY_REGION: Region = 'us-east-1';

export interface Endpoint { host: string; port: number }

function envKey(region: string): string {
  return region.toUpperCase().replace(/-/g, '_');
}

function endpoint(kind: 'PG' | 'REDIS', region: Region): Endpoint {
  const name = `YARD_${kind}_${envKey(region)}`;
  const value = process.env[name];
  const m = value?.match(/^([^:]+):(\d+)$/);
  if (!m) throw new Error(`${name} must be host:port (bench/yardstick.sh sets it), not ${JSON.stringify(value)}`);
  return { host: m[1], port: Number(m[2]) };
}

export function pgEndpoint(region: Region): Endpoint { return endpoint('PG', region); }
export function redisEndpoint(region: Region): Endpoint { return endpoint('REDIS', region); }

// The passfile's password for our user (format host:port:db:user:password, '*' wildcards).
export function passwordFromPassfile(): string {
  const file = process.env.PGPASSFILE;
  const user = process.env.PGUSER ?? 'app';
  if (!file) throw new Error('PGPASSFILE is not set (bench/yardstick.sh sets it to the cluster passfile)');
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 5 && (f[3] === '*' || f[3] === user)) return f.slice(4).join(':');
  }
  throw new Error(`no password for user ${user} in ${file}`);
}
