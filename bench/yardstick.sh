#!/usr/bin/env bash
# The yardstick (issue 11): the SaaS's original data layer (pg + ioredis,
# bench/yardstick/original/dataLayer.ts) against its port on regiond
# (bindings/node/data-layer), side by side, through the same exported
# functions, from Node processes on the emulated eu-west-1 and ap-northeast-1
# hosts, on the realistic WAN profile. Prints one table (bench/RESULTS.md,
# "Yardstick").
#
#   bench/yardstick.sh [--impl original|regiond|both] [--reads 1000]
#       [--dash-runs 10] [--raw 40] [--stale-trials 5] [--stale-cap-s 70]
#       [--concurrency 1,16,256] [--tp-calls 2500,20000,40000]
#
# Hosts: a process "on" host H reaches every service through the links from H
# (scripts/cluster.sh: its own region 0.5 ms each way). The original's pools
# (20 per region) and Redis clients use those links; the port uses H's regiond,
# which runs here on a copy of the cluster's H config with its own sockets and
# segment (as bench/consistency.sh does; a demo's daemons are left alone), every
# endpoint through the same links. Both daemons are stopped on exit.
#
# Needs: a build (meson compile -C build, or REGIOND_BUILD_DIR) with the daemon,
# regionctl and rgd-wanproxy; the Node package built (bindings/node) for the
# regiond side; npm to reach its registry once (npm ci from the lockfile).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
BUILD=${REGIOND_BUILD_DIR:-$REPO_ROOT/build}
REGIONCTL=$BUILD/tools/regionctl/regionctl
YARD=$REPO_ROOT/bench/yardstick
HOSTS=(eu-west-1 ap-northeast-1)
ITEMS=10000

die() { echo "bench/yardstick: $*" >&2; exit 1; }

want_regiond=1
for ((i = 1; i <= $#; i++)); do
  if [[ ${!i} == --impl ]]; then j=$((i + 1)); [[ ${!j:-} == original ]] && want_regiond=0; fi
done
command -v node >/dev/null || die "node missing (Node 20 or later)"
if ((want_regiond)); then
  [[ -x $BUILD/daemon/regiond && -x $REGIONCTL ]] || die "no daemon/regionctl in $BUILD (meson compile -C $BUILD, or set REGIOND_BUILD_DIR)"
  node -e "require('$REPO_ROOT/bindings/node')" 2>/dev/null ||
    die "the Node package in bindings/node does not load (build it: see bindings/node/README.md), or run --impl original"
fi

# The original's dependencies, exactly as locked.
if [[ ! -d $YARD/node_modules || $YARD/package-lock.json -nt $YARD/node_modules/.package-lock.json ]]; then
  (cd "$YARD" && npm ci --no-audit --no-fund >&2) || die "npm ci in bench/yardstick failed"
fi

[[ -f $REGIOND_CLUSTER_DIR/cluster.env ]] || REGIOND_BUILD_DIR=$BUILD scripts/cluster.sh up --profile realistic
# Exported: run.ts reads the links file, the direct Redis ports and the passfile's path.
set -a
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"
set +a
export YARD_REGIONCTL=$REGIONCTL YARD_ITEMS=$ITEMS
[[ $PROFILE == realistic ]] ||
  die "the cluster at $REGIOND_CLUSTER_DIR has the $PROFILE profile; the yardstick needs realistic delays (scripts/cluster.sh up --profile realistic switches it)"

WORK=$REGIOND_CLUSTER_DIR/bench-yardstick
rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  true
}
trap cleanup EXIT

poll() { # poll SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds, or die
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not within ${limit} s"
    sleep 0.05
  done
}
key_of() { local k=${1^^}; echo "${k//-/_}"; }
psql_as_postgres() { # REGION SQL
  local port_var
  port_var=PG_PORT_$(key_of "$1")
  (cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "${!port_var}" -d "$APP_DB" -c "$2")
}
replica_ready() { # REGION: has every item at its initial value
  [[ $(psql_as_postgres "$1" "select count(*) filter (where v = 'item-' || id) from yard_items") == "$ITEMS" ]]
}
all_healthy() { # ADMIN_SOCKET
  local js
  js=$("$REGIONCTL" --socket "$1" status --json) || return 1
  grep -q '"role":"primary","healthy":true' <<<"$js" && ! grep -q '"healthy":false' <<<"$js"
}

# yard_items: what the dashboard and readLocal read; its rows are reset to
# 'item-ID' at every run (the stale-time trials overwrite some). yard_raw: one
# row per (implementation, host) for read-after-write.
psql_as_postgres "$PRIMARY_REGION" "set client_min_messages = warning;
  create table if not exists yard_items (id int primary key, v text not null, n int not null,
                                         updated_at timestamptz not null default now());
  create index if not exists yard_items_updated_at on yard_items (updated_at);
  insert into yard_items (id, v, n) select g, 'item-' || g, (g * 7919) % 1000 from generate_series(1, $ITEMS) g
    on conflict (id) do update set v = excluded.v, n = excluded.n
    where yard_items.v is distinct from excluded.v or yard_items.n is distinct from excluded.n;
  create table if not exists yard_raw (id int primary key, v text not null);
  insert into yard_raw select g, 'init' from generate_series(1, 100) g on conflict (id) do nothing;
  grant select, insert, update on yard_items, yard_raw to $APP_USER;" >/dev/null
for r in "${HOSTS[@]}"; do poll 60 "the $r replica replaying yard_items" replica_ready "$r"; done

if ((want_regiond)); then
  for r in "${HOSTS[@]}"; do
    cfg_var=REGIOND_CONFIG_$(key_of "$r")
    mkdir -p "$WORK/$r"
    sed -e "s|^socket = .*|socket = \"$WORK/$r/regiond.sock\"|" \
        -e "s|^admin_socket = .*|admin_socket = \"$WORK/$r/admin.sock\"|" \
        -e "s|^state_segment = .*|state_segment = \"${SEGMENT_PREFIX}-yard-$r\"|" \
        "${!cfg_var}" >"$WORK/$r/regiond.toml"
    "$BUILD/daemon/regiond" --config "$WORK/$r/regiond.toml" >"$WORK/$r/regiond.log" 2>&1 </dev/null &
    PIDS+=($!)
    echo $! >"$WORK/$r/regiond.pid"
    export "YARD_SOCKET_$(key_of "$r")=$WORK/$r/regiond.sock" "YARD_ADMIN_$(key_of "$r")=$WORK/$r/admin.sock"
  done
  for r in "${HOSTS[@]}"; do
    poll 30 "regiond $r (log: $WORK/$r/regiond.log) with every endpoint healthy" all_healthy "$WORK/$r/admin.sock"
  done
fi

daemon_cpu_s() { # REGION -> utime+stime of its daemon so far, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$(cat "$WORK/$1/regiond.pid")/stat"
}
declare -A cpu_before
if ((want_regiond)); then for r in "${HOSTS[@]}"; do cpu_before[$r]=$(daemon_cpu_s "$r"); done; fi

ver() { node -p "require('$YARD/node_modules/$1/package.json').version"; }
cat <<EOF
bench/yardstick: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE, at $(git rev-parse --short HEAD)
node $(node --version), pg $(ver pg) (Pool max 20 per region), ioredis $(ver ioredis) (one client per region); regiond: bindings/node + bindings/node/data-layer
Workloads (every answer checked by value; both implementations through the same exported functions):
  EU read latency: readLocal('eu-west-1', 'select v::text ... where id = \$1', random id of $ITEMS), sequential, from the eu-west-1 host
  AP dashboard: 3 x cachedRead at once (Promise.all: count+sum, 10 newest, group by n % 10) from the ap-northeast-1 host;
    cold = all 3 Redis FLUSHALL + regionctl cache flush on both daemons; warm = the same dashboard right after
  RaW (read-after-write): writePrimary(update yard_raw) then readConsistent of that row from the same host with the
    write's timestamp (original) / token (regiond); both hosts at once; "served locally" = not read from us-east-1
  Stale time: cachedRead of a key primed with the old value in ap-northeast-1, polled every 5 ms; writePrimary in
    eu-west-1 with that key in cacheKeys; time from the write call's start to the first new value in ap-northeast-1
  readLocal xC: C concurrent loops of readLocal in one Node process on the eu-west-1 host, a fixed number of calls
    (--tp-calls) after 1 s not counted
  CPU / RSS: process.cpuUsage() after start-up (imports done), max of process.memoryUsage().rss sampled every 100 ms;
    both implementations make the same calls, so the whole-run CPU compares the same work
EOF
(cd "$YARD" && node --import tsx run.ts "$@") | tee "$WORK/table.md"
if ((want_regiond)); then
  echo
  printf 'regiond daemons (outside the Node processes), CPU during the run:'
  for r in "${HOSTS[@]}"; do
    printf ' %s %s s;' "$r" "$(awk -v a="$(daemon_cpu_s "$r")" -v b="${cpu_before[$r]}" 'BEGIN { printf "%.2f", a - b }')"
  done
  echo
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
