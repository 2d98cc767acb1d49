#!/usr/bin/env bash
# The main job: install what is missing, build, bring up the local 3-region
# cluster with realistic WAN delays, and show it working.
# The cluster stays up afterwards (scripts/cluster.sh down removes it).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
export REGIOND_BUILD_DIR=$REPO_ROOT/build

scripts/install-deps.sh
[[ -f build/build.ninja ]] || meson setup build
meson compile -C build

scripts/cluster.sh up --profile realistic
echo
scripts/cluster.sh status
echo
for r in us-east-1 eu-west-1 ap-northeast-1; do
  printf 'config for %-15s ' "$r:"
  build/daemon/regiond --check-config "$REGIOND_CLUSTER_DIR/regiond-$r.toml"
done
