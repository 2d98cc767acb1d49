#!/usr/bin/env bash
# Read-after-write, three strategies side by side in one run (issue 8): the
# same trace of write-then-read operations from eu-west-1 and from
# ap-northeast-1, each from its own host's regiond, read back by
#   (a) rgd_read_consistent with the write's token,
#   (b) the seed's rule with libpq (its lag query on the local replica, the
#       clock comparison, the 100 ms margin; else the primary),
#   (c) always the primary with libpq.
# Prints share served locally, p50/p99 of the read, stale answers (checked by
# value), the route_reason histogram of (a), and the goals as met/MISSED.
#
#   bench/consistency.sh [--ops 150] [--sessions 4] [--rounds 3] [--keys 40]
#                        [--think-ms 0] [--check-replica]
#     --think-ms: each session pauses this long before each operation
#     --check-replica: a diagnostic run (not for the recorded numbers): between
#     the write and read_consistent, ask the local replica directly whether it
#     has replayed the write (adds one local round trip before the read)
#
# Needs the realistic WAN profile: uses the cluster of scripts/cluster.sh at
# $REGIOND_CLUSTER_DIR (brought up with --profile realistic if none is up;
# refuses a fast one). regiond runs on copies of the cluster's eu-west-1 and
# ap-northeast-1 configs with their own sockets and segments (so a demo's
# daemons are left alone), every endpoint through the emulated links; the
# libpq connections of (b) and (c) take the same links (the host's own link to
# its replica, 0.5 ms each way; its link to us-east-1). Both daemons are
# stopped on exit, and their consistency metrics printed before that.
# Build first: meson compile -C build.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
BUILD=${REGIOND_BUILD_DIR:-$REPO_ROOT/build}
REGIONCTL=$BUILD/tools/regionctl/regionctl
HOSTS=(eu-west-1 ap-northeast-1)

die() { echo "bench/consistency: $*" >&2; exit 1; }
[[ -x $BUILD/bench/bench_consistency ]] || die "no $BUILD/bench/bench_consistency (meson compile -C $BUILD)"

[[ -f $REGIOND_CLUSTER_DIR/cluster.env ]] || REGIOND_BUILD_DIR=$BUILD scripts/cluster.sh up --profile realistic
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"
[[ $PROFILE == realistic ]] ||
  die "the cluster at $REGIOND_CLUSTER_DIR has the $PROFILE profile; this benchmark needs realistic delays (scripts/cluster.sh up --profile realistic switches it)"

WORK=$REGIOND_CLUSTER_DIR/bench-consistency
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

link() { # FROM TO SERVICE -> "PORT DELAY_MS" of that emulated link
  awk -v n="$1>$2:$3" '$1 == n { sub(/.*:/, "", $2); print $2, $4 }' "$WAN_LINKS"
}
key_of() { local k=${1^^}; echo "${k//-/_}"; }

all_healthy() { # ADMIN_SOCKET
  local js
  js=$("$REGIONCTL" --socket "$1" status --json) || return 1
  grep -q '"role":"primary","healthy":true' <<<"$js" && ! grep -q '"healthy":false' <<<"$js"
}

psql_as_postgres() { # REGION SQL
  local port_var
  port_var=PG_PORT_$(key_of "$1")
  (cd / && runuser -u postgres -- psql -XAtq -h "$PG_SOCKET_DIR" -p "${!port_var}" -d "$APP_DB" -c "$2")
}
# The table: one row per (host, session, key), written only by that session.
psql_as_postgres "$PRIMARY_REGION" "set client_min_messages = warning;
  create table if not exists rc_bench (id bigint primary key, v text not null);
  grant select, insert, update on rc_bench to $APP_USER;" >/dev/null
for r in "${HOSTS[@]}"; do
  poll 60 "the $r replica replaying rc_bench" psql_as_postgres "$r" "select 'rc_bench'::regclass"
done

args=()
max_wait_ms=""
for r in "${HOSTS[@]}"; do
  cfg_var=REGIOND_CONFIG_$(key_of "$r")
  mkdir -p "$WORK/$r"
  sed -e "s|^socket = .*|socket = \"$WORK/$r/regiond.sock\"|" \
      -e "s|^admin_socket = .*|admin_socket = \"$WORK/$r/admin.sock\"|" \
      -e "s|^state_segment = .*|state_segment = \"${SEGMENT_PREFIX}-rcbench-$r\"|" \
      "${!cfg_var}" >"$WORK/$r/regiond.toml"
  mw=$(awk -F'"' '/^max_wait = / { print $2 }' "$WORK/$r/regiond.toml")
  [[ $mw =~ ^([0-9]+)ms$ ]] || die "$r: consistency.max_wait is \"$mw\", expected N ms"
  [[ -z $max_wait_ms || $max_wait_ms == "${BASH_REMATCH[1]}" ]] || die "the hosts' max_wait differ"
  max_wait_ms=${BASH_REMATCH[1]}
  "$BUILD/daemon/regiond" --config "$WORK/$r/regiond.toml" >"$WORK/$r/regiond.log" 2>&1 </dev/null &
  PIDS+=($!)
  read -r local_port local_delay < <(link "$r" "$r" pg)
  read -r primary_port _ < <(link "$r" "$PRIMARY_REGION" pg)
  [[ -n $local_port && -n $primary_port ]] || die "no $r links in $WAN_LINKS"
  conn="dbname=$APP_DB user=$APP_USER passfile=$APP_PASSFILE connect_timeout=5"
  args+=(--host "$r" --socket "$WORK/$r/regiond.sock"
         --replica "host=127.0.0.1 port=$local_port $conn"
         --primary "host=127.0.0.1 port=$primary_port $conn"
         --local-rtt-ms "$(awk -v d="$local_delay" 'BEGIN { print 2 * d }')")
done
for r in "${HOSTS[@]}"; do
  poll 30 "regiond $r (log: $WORK/$r/regiond.log) with every endpoint healthy" all_healthy "$WORK/$r/admin.sock"
done

echo "bench/consistency: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE, at $(git rev-parse --short HEAD)"
"$BUILD/bench/bench_consistency" --max-wait-ms "$max_wait_ms" "${args[@]}" "$@"
echo
echo "daemon counters after the run (regionctl metrics, read_consistent):"
for r in "${HOSTS[@]}"; do
  "$REGIONCTL" --socket "$WORK/$r/admin.sock" metrics |
    grep -E '^regiond_consistent_(reads_total|wait_seconds_(count|sum))' | sed "s/^/  $r  /" || true
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
