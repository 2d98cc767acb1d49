#!/usr/bin/env bash
# End-to-end benchmark, side by side in one run: a primary-key SELECT on the
# same-host replica (eu-west-1) through rgd_read_local, through direct prepared
# libpq, and through pgbouncer (transaction mode, simple protocol). Prints p50,
# p99, throughput, the CPU per request (µs, user+system and the split) of the
# client, the daemon, pgbouncer and the replica's postgres processes, and the
# ratios against the targets (issue 10).
#
#   bench/e2e.sh [--clients 1,16] [--seconds 3] [--rounds 3]
#       the default: 1 and 16 clients, 3 rounds x 3 s per path (~1 min)
#   bench/e2e.sh --sweep [--out docs/perf] [any bench_e2e option]
#       the full run of issue 10 (~6 min on 2 cores, measured 6m07s), each part's defaults:
#         scaling curve   --clients 1,2,4,8,16,32,64 --rounds 3 --seconds 2
#         result sizes    --result-rows 1,10,100,1000,10000,100000
#                         --result-clients 1,16 --result-rounds 2 --result-seconds 1.5
#         idle            --idle-clients 200 (in --idle-procs 4 processes)
#                         --idle-seconds 10 --idle-probes 8
#       writes OUT/e2e.csv (one line per path, clients, rows), OUT/e2e-idle.csv,
#       OUT/e2e.txt (the printed tables) and the plots of bench/e2e_plots.sh
#       (PNG and SVG) into OUT. Options given after --sweep override these.
#   bench/e2e.sh --idle [--idle-seconds 10] [--idle-clients 200]
#       the idle part alone (200 connected clients sending nothing: CPU of the
#       daemon and the clients, then the first request after the idle against
#       the p99 of a 1-client run made right after)
#   bench/e2e.sh --streamer-rows 200000 [--clients 1,16] ...
#       regiond alone and while one more client fetches a 200 000-row result
#       through it in a loop, p50/p99 side by side (issue 7: other clients'
#       p99 stays flat while a large result streams)
#   Other options go to build/bench/bench_e2e (see its header): --csv FILE,
#   --paths, --result-rows, --no-curve, ...
#
# Uses the cluster of scripts/cluster.sh (brought up with the fast profile if
# none is up). All three paths reach the replica the same way, over TCP on
# 127.0.0.1 straight to its port (no emulated WAN link: this measures regiond's
# own cost, not the proxy's timers). regiond runs on a copy of the eu-west-1
# config with its own sockets and segment; pgbouncer runs as the postgres user
# (it refuses root) with its files in a directory that user owns. Both are
# stopped on exit. The table rgd_bench holds 100 000 rows (the curve looks up
# random ids among them; the result-size sweep reads the first N). Connections:
# at 64 clients the direct path holds 64 backends, regiond and pgbouncer POOL
# each, far below cluster.sh's max_connections = 300; pgbouncer's
# max_client_conn is 200 here, regiond's max_clients 256 (the idle part's 200
# clients fit). Build first: meson compile -C build.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export REGIOND_CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
BUILD=${REGIOND_BUILD_DIR:-$REPO_ROOT/build}
POOL=${POOL:-8}  # regiond pool_size and pgbouncer default_pool_size alike

die() { echo "bench/e2e: $*" >&2; exit 1; }

SWEEP=0 OUT=$REPO_ROOT/docs/perf
passthrough=()
while (($#)); do
  case $1 in
    --sweep) SWEEP=1; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --idle) passthrough+=(--no-curve --idle); shift ;;  # the idle part alone
    *) passthrough+=("$1"); shift ;;
  esac
done
if ((SWEEP)); then
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  passthrough=(--clients "1,2,4,8,16,32,64" --rounds 3 --seconds 2
    --result-rows "1,10,100,1000,10000,100000" --result-clients "1,16" --result-rounds 2 --result-seconds 1.5
    --idle --idle-seconds 10 --idle-clients 200 --idle-procs 4 --idle-probes 8
    --csv "$OUT/e2e.csv" --idle-csv "$OUT/e2e-idle.csv" "${passthrough[@]}")
  command -v gnuplot >/dev/null || die "gnuplot is not installed (scripts/install-deps.sh)"
fi
[[ -x $BUILD/bench/bench_e2e ]] || die "no $BUILD/bench/bench_e2e (meson compile -C $BUILD)"
command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/install-deps.sh)"

[[ -f $REGIOND_CLUSTER_DIR/cluster.env ]] || scripts/cluster.sh up --profile fast
# shellcheck disable=SC1091
source "$REGIOND_CLUSTER_DIR/cluster.env"

WORK=$REGIOND_CLUSTER_DIR/bench
rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"
REGIOND_PID="" PGB_PID=""
cleanup() { # keeps the script's status: a process killed here exits 143, which set -e would return
  if [[ -n $REGIOND_PID ]] && kill "$REGIOND_PID" 2>/dev/null; then wait "$REGIOND_PID" 2>/dev/null || true; fi
  if [[ -n $PGB_PID ]] && kill "$PGB_PID" 2>/dev/null; then wait "$PGB_PID" 2>/dev/null || true; fi
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

psql_as_postgres() { # REGION SQL
  local port_var=PG_PORT_${1//-/_}
  port_var=${port_var^^}
  (cd / && runuser -u postgres -- psql -XAtq -h "$PG_SOCKET_DIR" -p "${!port_var}" -d "$APP_DB" -c "$2")
}

# --- the table: 100 000 rows on the primary, replicated to eu-west-1 ---
ROWS=100000
psql_as_postgres us-east-1 "set client_min_messages = warning;
  create table if not exists rgd_bench (id int primary key, name text not null, balance numeric not null);
  insert into rgd_bench select g, 'user-' || g, g * 1.5 from generate_series(1, $ROWS) g on conflict (id) do nothing;
  grant select on rgd_bench to $APP_USER;
  analyze rgd_bench;" >/dev/null
# The statistics replicate too: without them `where id <= 1` plans a sequential scan.
replica_has_rows() {
  [[ $(psql_as_postgres eu-west-1 "select count(*) from rgd_bench") == "$ROWS" ]] &&
    [[ $(psql_as_postgres eu-west-1 "select reltuples::int from pg_class where relname = 'rgd_bench'") == "$ROWS" ]]
}
poll 60 "eu-west-1 replica replaying rgd_bench and its statistics" replica_has_rows

# --- regiond on a copy of the eu-west-1 config, its replica reached directly ---
local_link_port=$(awk '$1 == "eu-west-1>eu-west-1:pg" { split($2, a, ":"); print a[2] }' "$WAN_LINKS")
[[ -n $local_link_port ]] || die "no eu-west-1>eu-west-1:pg link in $WAN_LINKS"
sed -e "s|^socket = .*|socket = \"$WORK/regiond.sock\"|" \
    -e "s|^admin_socket = .*|admin_socket = \"$WORK/admin.sock\"|" \
    -e "s|^state_segment = .*|state_segment = \"${SEGMENT_PREFIX}-bench\"|" \
    -e "s|port=$local_link_port |port=$PG_PORT_EU_WEST_1 |" \
    -e "s|^pool_size = .*|pool_size = $POOL|" \
    "$REGIOND_CONFIG_EU_WEST_1" >"$WORK/regiond.toml"
grep -q "port=$PG_PORT_EU_WEST_1 " "$WORK/regiond.toml" || die "could not point the bench config at the replica"
"$BUILD/daemon/regiond" --config "$WORK/regiond.toml" >"$WORK/regiond.log" 2>&1 </dev/null &
REGIOND_PID=$!
local_replica_healthy() {
  "$BUILD/tools/regionctl/regionctl" --socket "$WORK/admin.sock" status --json |
    grep -q "\"region\":\"eu-west-1\",\"endpoint\":\"127.0.0.1:$PG_PORT_EU_WEST_1\",\"role\":\"replica\",\"healthy\":true"
}
poll 30 "regiond (log: $WORK/regiond.log) with a healthy eu-west-1 replica" local_replica_healthy

# --- pgbouncer in front of the same replica, as the postgres user ---
PGB_PORT=$((PORT_BASE + 45))
app_password=$(awk -F: -v u="$APP_USER" '$4 == u { print $5; exit }' "$APP_PASSFILE")
[[ -n $app_password ]] || die "no password for $APP_USER in $APP_PASSFILE"
umask 077
printf '"%s" "%s"\n' "$APP_USER" "$app_password" >"$WORK/userlist.txt"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
$APP_DB = host=127.0.0.1 port=$PG_PORT_EU_WEST_1 dbname=$APP_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 200
logfile = $WORK/pgbouncer.log
pidfile =
EOF
umask 022
chown postgres: "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
touch "$WORK/pgbouncer.log" && chown postgres: "$WORK/pgbouncer.log"
(cd "$WORK" && exec runuser -u postgres -- pgbouncer "$WORK/pgbouncer.ini") >"$WORK/pgbouncer.out" 2>&1 &
PGB_PID=$!
pgbouncer_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PGB_PORT") 2>/dev/null; }
poll 15 "pgbouncer listening on $PGB_PORT (log: $WORK/pgbouncer.log)" pgbouncer_listening

# --- the processes whose CPU is measured ---
# runuser may run pgbouncer as its child rather than exec it.
if [[ $(cat "/proc/$PGB_PID/comm" 2>/dev/null) == pgbouncer ]]; then
  pgbouncer_pid=$PGB_PID
else
  pgbouncer_pid=$(pgrep -P "$PGB_PID" -x pgbouncer | head -n1)
fi
[[ -n $pgbouncer_pid ]] || die "cannot find the pgbouncer process (child of $PGB_PID)"
postmaster_pid=$(head -n1 "$PG_DATA_EU_WEST_1/postmaster.pid")
[[ -d /proc/$postmaster_pid ]] || die "no eu-west-1 postmaster (pid $postmaster_pid from $PG_DATA_EU_WEST_1/postmaster.pid)"

conn="dbname=$APP_DB user=$APP_USER passfile=$APP_PASSFILE"
run_bench() {
  echo "bench/e2e: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), pool $POOL"
  echo "bench/e2e: bench_e2e ${passthrough[*]}"
  "$BUILD/bench/bench_e2e" --rows "$ROWS" \
    --regiond "$WORK/regiond.sock" \
    --direct "host=127.0.0.1 port=$PG_PORT_EU_WEST_1 $conn" \
    --pgbouncer "host=127.0.0.1 port=$PGB_PORT $conn" \
    --daemon-pid "$REGIOND_PID" --pg-postmaster-pid "$postmaster_pid" --pgbouncer-pid "$pgbouncer_pid" \
    "${passthrough[@]}"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
if ((SWEEP)); then
  run_bench 2>&1 | tee "$OUT/e2e.txt" || die "bench_e2e failed (output in $OUT/e2e.txt)"
  bench/e2e_plots.sh "$OUT/e2e.csv" "$OUT"
else
  run_bench
fi
