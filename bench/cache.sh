#!/usr/bin/env bash
# Issue 9's benchmark (the cache), three parts, each printed as a table with its
# goal as met/MISSED (bench/cache/bench_cache_e2e.cpp does the measuring):
#   tiers         on the eu-west-1 host: rgd_cached_read served from the hot
#                 cache, a synchronous hiredis GET of the same value on the
#                 region's redis-server directly, and the same read from the
#                 local replica through regiond (rgd_read_local), side by side,
#                 rounds in turn; p50/p99, the ratio Redis GET / hit (goal
#                 >= 200x), and where a hit's time goes
#   dashboard     the APAC dashboard from the ap-northeast-1 host: three queries
#                 cold, warm from Redis, warm from the hot cache, and all sent to
#                 the primary (goal: warm <= 0.5 % of all-primary)
#   invalidation  writes with a key from eu-west-1; the time until the key is
#                 gone from ap-northeast-1's segment, over the one-way delay
#                 between the two regions (goal <= 1.1)
#   hit-profile   not in the default run: `perf record` of 3 million hits
#                 (bench_cache_e2e tiers --hit-loop), the top symbols by self time
#
#   bench/cache.sh [tiers] [dashboard] [invalidation] [hit-profile]   (default: the first three)
#                  [--rounds N] [--writes N] [--hits N] [--gets N] [--reads N]
#
# Needs the realistic WAN profile: uses the cluster of scripts/cluster.sh at
# $REGIOND_CLUSTER_DIR (brought up with --profile realistic if none is up;
# refuses a fast one). Two daemons run on copies of the cluster's configs with
# their own sockets and segments (a demo's daemons are left alone):
#   eu-west-1       its same-host replica and Redis reached directly on
#                   127.0.0.1, not through the 0.5 ms emulated link (as
#                   bench/e2e.sh: the tiers part measures regiond, not the
#                   proxy's timers); everything else through the WAN links
#   ap-northeast-1  the generated config as it is (every link emulated)
# Both are stopped on exit, after their cache counters are printed.
# Build first: meson compile -C build.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
BUILD=${REGIOND_BUILD_DIR:-$REPO_ROOT/build}
REGIONCTL=$BUILD/tools/regionctl/regionctl
BENCH=$BUILD/bench/bench_cache_e2e
WRITER=eu-west-1
READER=ap-northeast-1

die() { echo "bench/cache: $*" >&2; exit 1; }
[[ -x $BENCH ]] || die "no $BENCH (meson compile -C $BUILD)"

parts=() rounds=5 writes=50 tier_args=()
while (($#)); do
  case $1 in
    tiers | dashboard | invalidation | hit-profile) parts+=("$1"); shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --writes) writes=$2; shift 2 ;;
    --hits | --gets | --reads) tier_args+=("$1" "$2"); shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
((${#parts[@]})) || parts=(tiers dashboard invalidation)

[[ -f $REGIOND_CLUSTER_DIR/cluster.env ]] || REGIOND_BUILD_DIR=$BUILD scripts/cluster.sh up --profile realistic
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"
[[ $PROFILE == realistic ]] ||
  die "the cluster at $REGIOND_CLUSTER_DIR has the $PROFILE profile; this benchmark needs realistic delays (scripts/cluster.sh up --profile realistic switches it)"

WORK=$REGIOND_CLUSTER_DIR/bench-cache
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
link() { # FROM TO SERVICE -> "PORT DELAY_MS" of that emulated link
  awk -v n="$1>$2:$3" '$1 == n { sub(/.*:/, "", $2); print $2, $4 }' "$WAN_LINKS"
}
ready() { # ADMIN_SOCKET: every endpoint healthy and the hot cache vouched for
  local js
  js=$("$REGIONCTL" --socket "$1" status --json) || return 1
  grep -q '"role":"primary","healthy":true' <<<"$js" && ! grep -q '"healthy":false' <<<"$js" &&
    grep -q '"vouched":true' <<<"$js"
}

for r in "$WRITER" "$READER"; do
  k=$(key_of "$r")
  cfg_var=REGIOND_CONFIG_$k
  mkdir -p "$WORK/$r"
  sed_args=(-e "s|^socket = .*|socket = \"$WORK/$r/regiond.sock\"|"
            -e "s|^admin_socket = .*|admin_socket = \"$WORK/$r/admin.sock\"|"
            -e "s|^state_segment = .*|state_segment = \"${SEGMENT_PREFIX}-cachebench-$r\"|")
  if [[ $r == "$WRITER" ]]; then
    read -r pg_link _ < <(link "$r" "$r" pg)
    read -r redis_link _ < <(link "$r" "$r" redis)
    pg_var=PG_PORT_$k redis_var=REDIS_PORT_$k
    sed_args+=(-e "s|port=$pg_link |port=${!pg_var} |" -e "s|127.0.0.1:$redis_link\"|127.0.0.1:${!redis_var}\"|")
  fi
  sed "${sed_args[@]}" "${!cfg_var}" >"$WORK/$r/regiond.toml"
  if [[ $r == "$WRITER" ]]; then
    if ! { grep -q "port=${!pg_var} " "$WORK/$r/regiond.toml" && grep -q "127.0.0.1:${!redis_var}\"" "$WORK/$r/regiond.toml"; }; then
      die "could not point the $r config at its replica and Redis directly"
    fi
  fi
  "$BUILD/daemon/regiond" --config "$WORK/$r/regiond.toml" >"$WORK/$r/regiond.log" 2>&1 </dev/null &
  PIDS+=($!)
done
for r in "$WRITER" "$READER"; do
  poll 60 "regiond $r (log: $WORK/$r/regiond.log): every endpoint healthy, hot cache vouched for" ready "$WORK/$r/admin.sock"
done

sock() { echo "$WORK/$1/regiond.sock"; }
seg() { echo "${SEGMENT_PREFIX}-cachebench-$1"; }
port_of() { local v; v=${1}_PORT_$(key_of "$2"); echo "${!v}"; }
read -r _ one_way < <(link "$WRITER" "$READER" redis)

echo "bench/cache: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE, at $(git rev-parse --short HEAD)"
for part in "${parts[@]}"; do
  echo
  case $part in
    tiers)
      echo "== tiers: on the $WRITER host (its replica and Redis on 127.0.0.1, no emulated link)"
      "$BENCH" tiers --socket "$(sock "$WRITER")" --segment "$(seg "$WRITER")" --region "$WRITER" \
        --redis-port "$(port_of REDIS "$WRITER")" --rounds "$rounds" "${tier_args[@]}"
      ;;
    dashboard)
      echo "== the APAC dashboard: from the $READER host, realistic WAN (to us-east-1: $(link "$READER" us-east-1 pg | cut -d' ' -f2) ms one way)"
      "$BENCH" dashboard --socket "$(sock "$READER")" --admin-socket "$WORK/$READER/admin.sock" \
        --regionctl "$REGIONCTL" --region "$READER" --setup-socket "$(sock "$WRITER")" --rounds "$rounds"
      ;;
    invalidation)
      echo "== invalidation: written in $WRITER, seen in $READER's segment (one way $WRITER -> $READER: $one_way ms)"
      "$BENCH" invalidation --writer-socket "$(sock "$WRITER")" --writer-region "$WRITER" \
        --socket "$(sock "$READER")" --segment "$(seg "$READER")" --region "$READER" \
        --one-way-ms "$one_way" --writes "$writes"
      ;;
    hit-profile)
      command -v perf >/dev/null || die "hit-profile needs perf (linux-perf)"
      echo "== where a hit's time goes: perf record -F 2999 of 3 million rgd_cached_read hits + rgd_free on the $WRITER host"
      perf record -q -F 2999 -o "$WORK/perf-hit.data" -- "$BENCH" tiers --socket "$(sock "$WRITER")" \
        --segment "$(seg "$WRITER")" --region "$WRITER" --redis-port "$(port_of REDIS "$WRITER")" --hit-loop 3000000
      perf report -i "$WORK/perf-hit.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
        grep -E '^ +[0-9]' | head -30 | cut -c1-130
      ;;
  esac
done
echo
echo "daemon counters after the run (regionctl metrics, cache):"
for r in "$WRITER" "$READER"; do
  "$REGIONCTL" --socket "$WORK/$r/admin.sock" metrics |
    grep -E '^regiond_(cache_(hits|misses|fills|evictions|flushes|redis_errors)_total|invalidations_(received|applied|sent)_total)' |
    sed "s/^/  $r  /" || true
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
