#!/usr/bin/env bash
# scripts/cluster.sh's own contract, on a second throwaway cluster: `up` is
# idempotent, `status` reports every server, `down` leaves no process, port,
# segment or directory behind.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REGIOND_CLUSTER_DIR
REGIOND_CLUSTER_DIR=$(mktemp -d /tmp/regiond-lifecycle.XXXXXX)
CLUSTER="$REPO_ROOT/scripts/cluster.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { "$CLUSTER" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$CLUSTER" up --profile fast
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"

# A second `up` finds everything running and changes nothing.
pids_before=$(pgrep -f "$REGIOND_CLUSTER_DIR" | sort | tr '\n' ' ')
"$CLUSTER" up --profile fast
pids_after=$(pgrep -f "$REGIOND_CLUSTER_DIR" | sort | tr '\n' ' ')
[[ $pids_before == "$pids_after" ]] || fail "second up restarted processes: '$pids_before' -> '$pids_after'"

status=$("$CLUSTER" status) || fail "status exited non-zero: $status"
echo "$status"
for r in us-east-1 eu-west-1 ap-northeast-1; do
  grep -Eq "^$r +postgres .* up" <<<"$status" || fail "status shows no running postgres for $r"
  grep -Eq "^$r +redis .* up" <<<"$status" || fail "status shows no running redis for $r"
done
grep -Eq "eu-west-1 +streaming" <<<"$status" || fail "status shows eu-west-1 not streaming"
grep -Eq "ap-northeast-1 +streaming" <<<"$status" || fail "status shows ap-northeast-1 not streaming"
grep -q "eu-west-1>us-east-1:pg .*delay_ms=10" <<<"$status" || fail "status lacks the eu-west-1>us-east-1 link at 10 ms (fast profile)"

# Switching profile on a running cluster changes the link delays live.
"$CLUSTER" up --profile realistic >/dev/null
"$CLUSTER" status | grep -q "eu-west-1>us-east-1:pg .*delay_ms=100" || fail "profile switch did not set 100 ms"

"$CLUSTER" down
trap - EXIT
[[ ! -e $REGIOND_CLUSTER_DIR ]] || fail "$REGIOND_CLUSTER_DIR still exists after down"
if pgrep -f "$REGIOND_CLUSTER_DIR" >/dev/null; then
  fail "processes left after down: $(pgrep -af "$REGIOND_CLUSTER_DIR")"
fi
for p in $(seq "$PORT_BASE" $((PORT_BASE + 49))); do
  if ss -Htln "sport = :$p" | grep -q .; then fail "port $p still listening after down"; fi
done
if compgen -G "/dev/shm/${SEGMENT_PREFIX#/}-*" >/dev/null; then fail "state segments left in /dev/shm"; fi
echo "cluster lifecycle: ok"
