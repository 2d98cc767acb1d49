#!/usr/bin/env bash
# The main job: install what is missing, build, bring up the local 3-region
# cluster with realistic WAN delays, start one regiond per emulated host, and
# show it working: the demo client (tools/demo) writes from eu-west-1 (token and
# all), then times the same read served by the local replica and sent to the
# primary in us-east-1, in process; then read-after-write: a profile updated
# from eu-west-1 and read back at once with its token, the same on the
# ap-northeast-1 host with the token carried over, each beside what the seed's
# rule does on the same operation; then the cache: the seed's APAC dashboard
# from ap-northeast-1 cold, warm and all-primary, and a write in eu-west-1 whose
# invalidation is seen in ap-northeast-1's hot cache; then the Node.js package
# (bindings/node) doing the same verbs from JavaScript; then `regionctl status`.
# The cluster and daemons stay up afterwards (scripts/cluster.sh down removes them).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
export REGIOND_BUILD_DIR=$REPO_ROOT/build
REGIONCTL=build/tools/regionctl/regionctl

scripts/install-deps.sh
[[ -f build/build.ninja ]] || meson setup build
meson compile -C build

scripts/cluster.sh up --profile realistic
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"

admin_ok() { "$REGIONCTL" --socket "$1" status >/dev/null 2>&1; }
for r in us-east-1 eu-west-1 ap-northeast-1; do
  dir=$REGIOND_CLUSTER_DIR/$r
  if [[ -f $dir/regiond.pid ]] && kill -0 "$(cat "$dir/regiond.pid")" 2>/dev/null; then
    continue
  fi
  setsid build/daemon/regiond --config "$REGIOND_CLUSTER_DIR/regiond-$r.toml" \
    >>"$dir/regiond.log" 2>&1 </dev/null &
  echo $! >"$dir/regiond.pid"
done
for r in us-east-1 eu-west-1 ap-northeast-1; do
  deadline=$((SECONDS + 30))
  until admin_ok "$REGIOND_CLUSTER_DIR/$r/admin.sock"; do
    if ((SECONDS >= deadline)); then
      echo "regiond for $r did not come up: see $REGIOND_CLUSTER_DIR/$r/regiond.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done
# Endpoints count as healthy after their first probe: wait for every one.
all_healthy() {
  local js
  js=$("$REGIONCTL" --socket "$REGIOND_CLUSTER_DIR/$1/admin.sock" status --json) || return 1
  grep -q '"role":"primary","healthy":true' <<<"$js" && ! grep -q '"healthy":false' <<<"$js"
}
for r in us-east-1 eu-west-1 ap-northeast-1; do
  deadline=$((SECONDS + 30))
  until all_healthy "$r"; do
    if ((SECONDS >= deadline)); then
      echo "regiond for $r: not every endpoint healthy after 30 s:" >&2
      "$REGIONCTL" --socket "$REGIOND_CLUSTER_DIR/$r/admin.sock" status >&2 || true
      exit 1
    fi
    sleep 0.1
  done
done

# The demo client: a libregiond application on the eu-west-1 host (and, for
# read-after-write, also on the ap-northeast-1 host); it times each call in
# process.
echo
build/tools/demo/rgd-demo --socket "$REGIOND_CLUSTER_DIR/eu-west-1/regiond.sock" --reads 20 \
  --ap-socket "$REGIOND_CLUSTER_DIR/ap-northeast-1/regiond.sock"

# The cache (issue 9), timed in process by build/bench/bench_cache_e2e: the
# seed's APAC dashboard from the ap-northeast-1 host (three queries with
# cached_read, cold: misses, then warm: hot-cache hits, against the same three
# sent to the primary), then a write in eu-west-1 with a key held in
# ap-northeast-1's hot cache, and how long until that segment no longer holds it.
[[ -x build/bench/bench_cache_e2e ]] ||
  { echo "build/bench/bench_cache_e2e not built (needs Google Benchmark's package: scripts/install-deps.sh)" >&2; exit 1; }
cache_vouched() { "$REGIONCTL" --socket "$REGIOND_CLUSTER_DIR/$1/admin.sock" status --json | grep -q '"vouched":true'; }
for r in eu-west-1 ap-northeast-1; do
  deadline=$((SECONDS + 30))
  until cache_vouched "$r"; do
    if ((SECONDS >= deadline)); then
      echo "regiond for $r: hot cache not vouched for after 30 s:" >&2
      "$REGIONCTL" --socket "$REGIOND_CLUSTER_DIR/$r/admin.sock" status >&2 || true
      exit 1
    fi
    sleep 0.1
  done
done
echo
build/bench/bench_cache_e2e demo --region ap-northeast-1 --socket "$REGIOND_CLUSTER_DIR/ap-northeast-1/regiond.sock" \
  --segment "$SEGMENT_PREFIX-ap-northeast-1" \
  --writer-region eu-west-1 --writer-socket "$REGIOND_CLUSTER_DIR/eu-west-1/regiond.sock" \
  --one-way-ms "$(awk '$1 == "eu-west-1>ap-northeast-1:redis" { print $4 }' "$WAN_LINKS")"

# The Node.js package (bindings/node, docs/node.md): the same verbs from
# JavaScript on the eu-west-1 host, and 2000 calls in flight from one process.
# Built (npm ci: the pinned node-addon-api from the npm registry, then the
# addon against build/libclient) when missing or older than libregiond.
command -v npm >/dev/null ||
  { echo "bindings/node: node and npm not found (the package needs Node.js >= 20 with npm)" >&2; exit 1; }
node_addon=bindings/node/build/Release/regiond.node
if [[ ! -f $node_addon || build/libclient/libregiond.so.0 -nt $node_addon ]] ||
   [[ -n $(find bindings/node/src -newer "$node_addon" -print -quit) ]]; then
  (cd bindings/node && npm ci --no-audit --no-fund >/dev/null) ||
    { echo "bindings/node: npm ci failed (it needs the npm registry and build/libclient)" >&2; exit 1; }
fi
echo
echo "== Node.js (bindings/node) on eu-west-1: one descriptor in libuv, no thread pool (in process, ms)"
node bindings/node/examples/demo.js --socket "$REGIOND_SOCKET_EU_WEST_1"

echo
echo "== regionctl status (eu-west-1)"
"$REGIONCTL" --socket "$REGIOND_CLUSTER_DIR/eu-west-1/admin.sock" status
