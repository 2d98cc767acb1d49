#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. install what is missing (apt-get), 2. build (plain and sanitizer),
#   3. unit tests in both builds, 4. the libFuzzer targets (clang build in
#   build-fuzz/), each for FUZZ_SECONDS (default 10) from its seed corpus,
#   5. a fresh local cluster (fast WAN profile) in its own run directory and
#   ports, 6. integration tests against it, then the Node.js and Python
#   packages' suites, 7. tear the cluster down, also when a test failed.
# Prints "N passed, N failed" last; exits non-zero when anything failed.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
JOBS=${JOBS:-$(nproc)}

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

# Unity builds (8 sources per compiler run) halve the compile time of the
# three builds on a 2-core machine, which is most of the suite's time. A
# developer's own `meson setup build` stays a per-file build, which is what
# keeps every file's includes complete.
unity_options=(-Dunity=on -Dunity_size=8)

step "build (build/)"
# No debug info in this build (-O2 still): it is a third of its compile time,
# and the sanitizer build, where a stack trace matters, keeps -g.
[[ -f build/build.ninja ]] || meson setup build "${unity_options[@]}" -Ddebug=false
meson compile -C build -j "$JOBS"

step "sanitizer build of the unit tests (build-asan/)"
# Only the unit tests run in this build, so the integration tests are not built;
# -O0 (buildtype debug) compiles a third faster and the unit tests stay quick.
asan_options=(-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug
              -Dbench=disabled -Dintegration_tests=false "${unity_options[@]}")
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

# Each fuzz target counts as one test (a line in the testlog format the summary
# reads): OK when it ran FUZZ_SECONDS without a crash, a leak, a timeout or a
# broken invariant. JOBS targets run at a time (each is one process). New
# corpus entries go to build-fuzz/fuzz-corpus/<target> (kept between runs),
# crashing inputs to build-fuzz/fuzz-crashes/ (docs/fuzzing.md).
step "fuzz targets (build-fuzz/, ${FUZZ_SECONDS:-10} s each, $JOBS at a time)"
fuzz_seconds=${FUZZ_SECONDS:-10}
fuzz_build=0
fuzz_options=(-Dfuzz=enabled -Dtests=disabled -Dbench=disabled -Dintegration_tests=false --buildtype=plain
              "${unity_options[@]}")
if [[ -f build-fuzz/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup --reconfigure build-fuzz "${fuzz_options[@]}" || fuzz_build=1
else
  CC=clang CXX=clang++ meson setup build-fuzz "${fuzz_options[@]}" || fuzz_build=1
fi
[[ $fuzz_build == 0 ]] && { meson compile -C build-fuzz -j "$JOBS" || fuzz_build=1; }
mkdir -p build-fuzz/fuzz-crashes build-fuzz/fuzz-results
rm -f build-fuzz/fuzz-results/*

run_fuzz_target() { # TARGET: runs it, writes build-fuzz/fuzz-results/TARGET as a testlog line
  local target=$1 exe=build-fuzz/tests/fuzz/fuzz_$1 result=FAIL started elapsed_ms dict=()
  started=$(date +%s%N)
  mkdir -p "build-fuzz/fuzz-corpus/$target"
  [[ -f tests/fuzz/$target.dict ]] && dict=(-dict="tests/fuzz/$target.dict")
  if [[ -x $exe ]] && "$exe" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" \
      -artifact_prefix="build-fuzz/fuzz-crashes/$target-" \
      "build-fuzz/fuzz-corpus/$target" "tests/fuzz/corpus/$target" >"build-fuzz/fuzz-$target.log" 2>&1; then
    result=OK
  fi
  elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  printf '{"name": "fuzz/%s", "result": "%s", "duration": %d.%03d}\n' "$target" "$result" \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) >"build-fuzz/fuzz-results/$target"
}

fuzz_targets=()
for corpus in tests/fuzz/corpus/*/; do fuzz_targets+=("$(basename "$corpus")"); done
if [[ $fuzz_build == 0 ]]; then
  for target in "${fuzz_targets[@]}"; do
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
    run_fuzz_target "$target" &
  done
  wait || true
fi
: >build-fuzz/testlog-fuzz.json
for target in "${fuzz_targets[@]}"; do
  if [[ -f build-fuzz/fuzz-results/$target ]]; then
    cat "build-fuzz/fuzz-results/$target" >>build-fuzz/testlog-fuzz.json
  else
    printf '{"name": "fuzz/%s", "result": "FAIL", "duration": 0}\n' "$target" >>build-fuzz/testlog-fuzz.json
  fi
  if grep -q '"result": "OK"' "build-fuzz/fuzz-results/$target" 2>/dev/null; then
    echo "fuzz/$target: OK"
  else
    failed=1
    echo "fuzz/$target: FAILED (build-fuzz/fuzz-$target.log, build-fuzz/fuzz-crashes/)"
    tail -n 30 "build-fuzz/fuzz-$target.log" 2>/dev/null || echo "  (not built)"
  fi
done
results+=("build-fuzz/testlog-fuzz.json")

step "local cluster (fast profile)"
export REGIOND_CLUSTER_DIR
REGIOND_CLUSTER_DIR=$(mktemp -d /tmp/regiond-test.XXXXXX)
export REGIOND_BUILD_DIR=$REPO_ROOT/build
cleanup() { scripts/cluster.sh down || true; }
trap cleanup EXIT
# The Node.js and Python packages' own suites (node:test, pytest) against the
# same cluster; each starts its own daemons from build/ and writes one
# testlog line per test. A suite that cannot run at all counts as one failure.
run_binding_suite() { # NAME TESTLOG COMMAND...
  local name=$1 log=$2 rc=0
  shift 2
  step "$name"
  rm -f "$log"
  "$@" || rc=$?
  if [[ ! -s $log ]]; then
    printf '{"name": "%s", "result": "FAIL", "duration": 0}\n' "$name" >"$log"
    rc=1
  fi
  results+=("$log")
  return $rc
}

if scripts/cluster.sh up --profile fast; then
  run_suite "integration tests" build integration || failed=1
  run_binding_suite "Node.js package (bindings/node)" "$REPO_ROOT/build/testlog-node.json" \
    bash -c 'cd bindings/node && npm ci --no-audit --no-fund && REGIOND_NODE_TESTLOG="$0" npm test' \
    "$REPO_ROOT/build/testlog-node.json" || failed=1
  run_binding_suite "Python package (bindings/python)" "$REPO_ROOT/build/testlog-python.json" \
    env REGIOND_PYTEST_TESTLOG="$REPO_ROOT/build/testlog-python.json" PYTHONPATH=bindings/python \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider bindings/python/tests || failed=1
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
