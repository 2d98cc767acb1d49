-- regiond's own objects in the application's database: the durable path of
-- cache invalidation (docs/cache-durable.md). Apply it on the PRIMARY, in the
-- database the application's conninfo names, as a role that may create a
-- schema there (the database owner or a superuser), naming the application's
-- role (the user of the conninfo in regiond's config):
--
--   psql -d DATABASE -v app_role=ROLE -f scripts/schema.sql
--
-- It is idempotent: applying it again changes nothing (scripts/cluster.sh
-- applies it at every `up`). The replicas get it by replication.
\set ON_ERROR_STOP on
set client_min_messages = warning;  -- no "already exists, skipping" notices

create schema if not exists regiond;

-- One row per write that carried cache keys, inserted by regiond as the last
-- statement of the write's own transaction (so it commits exactly with the
-- write, and `at` is the time right before the commit). Each daemon tails the
-- table on its local replica (or on the primary in the primary's region).
--   id    the order rows were inserted in; NOT the order their transactions
--         commit in, so the tailer does not page by id alone
--   xid   the inserting transaction (pg_current_xact_id(), 64-bit: never
--         wraps): the tailer keeps the xmin of its last snapshot and reads
--         every row with xid >= it, so a transaction that commits after a
--         younger one is still seen
--   keys  the cache keys (text: valid UTF-8, no NUL; regiond refuses others)
--   origin "<region>/<host id>" of the daemon that wrote it
--   at    for the retention cleanup (rows older than 1 hour are deleted)
create table if not exists regiond.invalidations (
    id     bigserial   primary key,
    xid    xid8        not null default pg_current_xact_id(),
    keys   text[]      not null,
    origin text        not null,
    at     timestamptz not null default clock_timestamp()
);

-- Tailing: `where xid >= $low` on every poll of every daemon.
create index if not exists invalidations_xid_idx on regiond.invalidations (xid);
-- Retention: `where at < now() - interval '1 hour'`.
create index if not exists invalidations_at_idx on regiond.invalidations (at);

comment on table regiond.invalidations is
    'regiond: durable cache invalidations, written in each write''s own transaction, tailed by every daemon; '
    'rows older than 1 hour are deleted by the daemons in the primary''s region (docs/cache-durable.md)';

-- Retention. The daemons in the primary's region run, every 5 minutes:
--   delete from regiond.invalidations where at < now() - interval '1 hour'
-- (in batches, one cleaner at a time through an advisory lock). A deployment
-- with no daemon in the primary's region runs that statement itself, e.g.
-- from cron, at least once an hour.

-- The application's role: regiond's connections use it. SELECT for the
-- tailers, INSERT (and the id sequence) for writes with keys, DELETE for the
-- cleanup.
\if :{?app_role}
grant usage on schema regiond to :"app_role";
grant select, insert, delete on regiond.invalidations to :"app_role";
grant usage on sequence regiond.invalidations_id_seq to :"app_role";
\else
\echo 'schema.sql: no -v app_role=ROLE given: nothing granted. Grant the application role USAGE on schema regiond, SELECT, INSERT, DELETE on regiond.invalidations and USAGE on sequence regiond.invalidations_id_seq.'
\endif
