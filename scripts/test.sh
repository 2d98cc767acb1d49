#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. install what is missing (apt-get), 2. build (plain and sanitizer),
#   3. unit tests in both builds, 4. a fresh local cluster (fast WAN profile) in
#   its own run directory and ports, 5. integration tests against it,
#   6. tear the cluster down, also when a test failed.
# Prints "N passed, N failed" last; exits non-zero when anything failed.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
JOBS=${JOBS:-$(nproc)}

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "build (build/)"
[[ -f build/build.ninja ]] || meson setup build
meson compile -C build -j "$JOBS"

step "sanitizer build of the unit tests (build-asan/)"
# Only the unit tests run in this build, so the integration tests are not built;
# -O0 (buildtype debug) compiles a third faster and the unit tests stay quick.
asan_options=(-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug
              -Dbench=disabled -Dintegration_tests=false)
if [[ -f build-asan/build.ninja ]]; then
  meson setup --reconfigure build-asan "${asan_options[@]}"
else
  meson setup build-asan "${asan_options[@]}"
fi
meson compile -C build-asan -j "$JOBS"

results=()
run_suite() { # NAME BUILD_DIR SUITE
  local name=$1 dir=$2 suite=$3 rc=0
  step "$name"
  meson test -C "$dir" --suite "$suite" --print-errorlogs --num-processes "$JOBS" || rc=$?
  cp "$dir/meson-logs/testlog.json" "$REPO_ROOT/$dir/testlog-$suite.json" 2>/dev/null || true
  results+=("$dir/testlog-$suite.json")
  return $rc
}

failed=0
run_suite "unit tests" build unit || failed=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite "unit tests under address+undefined sanitizers" build-asan unit || failed=1

step "local cluster (fast profile)"
export REGIOND_CLUSTER_DIR
REGIOND_CLUSTER_DIR=$(mktemp -d /tmp/regiond-test.XXXXXX)
export REGIOND_BUILD_DIR=$REPO_ROOT/build
cleanup() { scripts/cluster.sh down || true; }
trap cleanup EXIT
if scripts/cluster.sh up --profile fast; then
  run_suite "integration tests" build integration || failed=1
else
  echo "the local cluster did not come up: integration tests not run (counted as failed)"
  failed=1
fi
scripts/cluster.sh down
trap - EXIT

step "summary"
python3 - "${results[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else:
            failed += 1
            print("failed:", json.loads(line)["name"], r)
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $failed
