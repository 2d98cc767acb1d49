#!/usr/bin/env bash
# The local 3-region cluster that regiond's tests, demo and benchmarks run against:
#   us-east-1       PostgreSQL 15 primary + redis
#   eu-west-1       streaming replica     + redis
#   ap-northeast-1  streaming replica     + redis
# plus rgd-wanproxy, the project's TCP delay proxy, which adds a one-way delay in
# each direction between every pair of emulated hosts (one listener per
# from-region, to-region and service). The replicas replicate through it, so
# cross-region replication has its real delay, and a link can be cut at run time.
#
# usage: scripts/cluster.sh up [--profile realistic|fast]
#        scripts/cluster.sh down
#        scripts/cluster.sh status
#        scripts/cluster.sh wan COMMAND [ARGS...]   # e.g. wan cut 'eu-west-1>us-east-1:pg'
#        scripts/cluster.sh env                     # print the cluster.env path
#
# Environment:
#   REGIOND_CLUSTER_DIR   run directory (default /tmp/regiond-cluster); everything
#                         lives under it, `down` removes it
#   REGIOND_BUILD_DIR     meson build directory with rgd-wanproxy (default ./build)
#   REGIOND_PORT_BASE     first of 50 consecutive TCP ports (default: a free range)
#
# Every wait is a poll of a condition with a deadline, never a fixed sleep.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_DIR=${REGIOND_CLUSTER_DIR:-/tmp/regiond-cluster}
BUILD_DIR=${REGIOND_BUILD_DIR:-$REPO_ROOT/build}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
REGIONS=(us-east-1 eu-west-1 ap-northeast-1)
PRIMARY_REGION=us-east-1
SERVICES=(pg redis)
ENV_FILE=$CLUSTER_DIR/cluster.env

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

# region name -> shell-safe suffix: eu-west-1 -> EU_WEST_1
key_of() { local k=${1^^}; echo "${k//-/_}"; }

# One-way delay in ms between two regions for a profile (the seed's figures;
# `fast` divides every delay by 10 so the test suite stays quick).
delay_ms() {
  local profile=$1 a=$2 b=$3 ms
  if [[ $a == "$b" ]]; then ms=0.5
  else
    case "$(printf '%s\n%s\n' "$a" "$b" | sort | paste -sd' ')" in
      "eu-west-1 us-east-1") ms=100 ;;
      "ap-northeast-1 us-east-1") ms=175 ;;
      "ap-northeast-1 eu-west-1") ms=110 ;;
      *) die "no delay defined between $a and $b" ;;
    esac
  fi
  if [[ $profile == fast ]]; then
    awk -v m="$ms" 'BEGIN { printf "%g", m / 10 }'
  else
    echo "$ms"
  fi
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND... : poll COMMAND every 50 ms until it
# succeeds or the deadline passes.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.05
  done
}

port_in_use() { ss -Htln "sport = :$1" | grep -q .; }

pick_port_base() {
  if [[ -n ${REGIOND_PORT_BASE:-} ]]; then echo "$REGIOND_PORT_BASE"; return; fi
  local tries base p ok
  for tries in $(seq 1 50); do
    # Below the kernel's ephemeral range (32768-60999 here): an outgoing
    # connection can never be holding one of our listening ports.
    base=$(( (RANDOM % 120) * 100 + 20000 ))
    ok=1
    for p in $(seq "$base" $((base + 49))); do
      if port_in_use "$p"; then ok=0; break; fi
    done
    if ((ok)); then echo "$base"; return; fi
  done
  die "no free range of 50 TCP ports found in 20000-31999 (set REGIOND_PORT_BASE)"
}

load_env() {
  [[ -f $ENV_FILE ]] || return 1
  # shellcheck disable=SC1090
  source "$ENV_FILE"
}

psql_as_super() { # PORT SQL...
  local port=$1; shift
  psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$port" -U postgres -d postgres -Atc "$*"
}

pg_running() { # REGION
  local k; k=$(key_of "$1")
  local port_var=PG_PORT_$k
  "$PGBIN/pg_isready" -q -h "$PG_SOCKET_DIR" -p "${!port_var}"
}

redis_running() { # REGION
  local k; k=$(key_of "$1")
  local port_var=REDIS_PORT_$k
  [[ $(redis-cli -h 127.0.0.1 -p "${!port_var}" PING 2>/dev/null) == PONG ]]
}

wan_ctl() { "$WANPROXY_BIN" ctl "$WAN_CONTROL" "$@"; }

wan_running() { wan_ctl status >/dev/null 2>&1; }

all_links_listening() {
  local name listen _rest
  while read -r name listen _rest; do
    [[ -z $name || $name == \#* ]] && continue
    port_in_use "${listen##*:}" || return 1
  done <"$WAN_LINKS"
}

replica_streaming() { # REGION
  local n
  n=$(psql_as_super "$PG_PORT_US_EAST_1" \
      "select count(*) from pg_stat_replication where application_name = '$1' and state = 'streaming'")
  [[ $n == 1 ]]
}

link_port() { # FROM TO SERVICE -> listening port of that link
  awk -v n="$1>$2:$3" '$1 == n { sub(/.*:/, "", $2); print $2 }' "$WAN_LINKS"
}

write_env() {
  local base=$1 profile=$2 r k i=0
  {
    echo "# written by scripts/cluster.sh up; sourced by scripts and read by tests"
    echo "REGIOND_CLUSTER_DIR=$CLUSTER_DIR"
    echo "PROFILE=$profile"
    echo "PORT_BASE=$base"
    echo "PGBIN=$PGBIN"
    echo "PG_SOCKET_DIR=$CLUSTER_DIR/sock"
    echo "PRIMARY_REGION=$PRIMARY_REGION"
    echo "REGION_LIST=\"${REGIONS[*]}\""
    for r in "${REGIONS[@]}"; do
      k=$(key_of "$r")
      echo "PG_PORT_$k=$((base + i))"
      echo "PG_DATA_$k=$CLUSTER_DIR/pg/$r"
      echo "REDIS_PORT_$k=$((base + 10 + i))"
      echo "REGIOND_CONFIG_$k=$CLUSTER_DIR/regiond-$r.toml"
      echo "REGIOND_SOCKET_$k=$CLUSTER_DIR/$r/regiond.sock"
      echo "REGIOND_ADMIN_SOCKET_$k=$CLUSTER_DIR/$r/admin.sock"
      i=$((i + 1))
    done
    echo "SEGMENT_PREFIX=/regiond-c$base"
    echo "APP_DB=app"
    echo "APP_USER=app"
    echo "APP_PASSFILE=$CLUSTER_DIR/secrets/pgpass"
    echo "WANPROXY_BIN=$BUILD_DIR/tools/wanproxy/rgd-wanproxy"
    echo "WAN_LINKS=$CLUSTER_DIR/wan/links"
    echo "WAN_CONTROL=$CLUSTER_DIR/wan/control.sock"
  } >"$ENV_FILE"
}

write_links() {
  local profile=$1 from to svc port=$((PORT_BASE + 20)) target target_var k
  {
    echo "# NAME LISTEN TARGET ONE_WAY_DELAY_MS (profile $profile)"
    for from in "${REGIONS[@]}"; do
      for to in "${REGIONS[@]}"; do
        for svc in "${SERVICES[@]}"; do
          k=$(key_of "$to")
          if [[ $svc == pg ]]; then target_var=PG_PORT_$k; else target_var=REDIS_PORT_$k; fi
          target=127.0.0.1:${!target_var}
          echo "$from>$to:$svc 127.0.0.1:$port $target $(delay_ms "$profile" "$from" "$to")"
          port=$((port + 1))
        done
      done
    done
  } >"$WAN_LINKS"
}

start_wanproxy() {
  [[ -x $WANPROXY_BIN ]] || die "$WANPROXY_BIN not built: run meson compile -C $BUILD_DIR first"
  if wan_running; then return; fi
  mkdir -p "$CLUSTER_DIR/wan"
  rm -f "$WAN_CONTROL"
  setsid "$WANPROXY_BIN" serve --links "$WAN_LINKS" --control "$WAN_CONTROL" \
    >>"$CLUSTER_DIR/wan/wanproxy.log" 2>&1 </dev/null &
  echo $! >"$CLUSTER_DIR/wan/wanproxy.pid"
  wait_for "rgd-wanproxy control socket (log: $CLUSTER_DIR/wan/wanproxy.log)" 10 wan_running
  wait_for "rgd-wanproxy listeners" 10 all_links_listening
}

start_redis() { # REGION
  local r=$1 k; k=$(key_of "$r")
  local port_var=REDIS_PORT_$k
  if redis_running "$r"; then return; fi
  mkdir -p "$CLUSTER_DIR/redis/$r"
  redis-server --port "${!port_var}" --bind 127.0.0.1 --daemonize yes \
    --dir "$CLUSTER_DIR/redis/$r" --pidfile "$CLUSTER_DIR/redis/$r/redis.pid" \
    --logfile "$CLUSTER_DIR/redis/$r/redis.log" --save '' --appendonly no \
    >/dev/null
  wait_for "redis $r on port ${!port_var} (log: $CLUSTER_DIR/redis/$r/redis.log)" 10 redis_running "$r"
}

pg_conf_common() { # DATADIR PORT NAME
  cat >>"$1/postgresql.conf" <<EOF

# --- regiond local cluster ---
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
cluster_name = '$3'
max_connections = 300
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = '200ms'
wal_receiver_status_interval = '1s'
# a throwaway local cluster: durability is not what is being tested
fsync = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOF
}

init_primary() {
  local data=$PG_DATA_US_EAST_1
  if [[ ! -f $data/PG_VERSION ]]; then
    runuser -u postgres -- "$PGBIN/initdb" -D "$data" -U postgres --auth=trust \
      --no-sync -E UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/log/initdb.log" 2>&1 \
      || die "initdb failed: see $CLUSTER_DIR/log/initdb.log"
    pg_conf_common "$data" "$PG_PORT_US_EAST_1" "$PRIMARY_REGION"
    # Superuser only over the unix socket; replication over TCP (the replicas come
    # through the WAN proxy from 127.0.0.1); the application with a password.
    cat >"$data/pg_hba.conf" <<EOF
local   all          all                   trust
local   replication  postgres              trust
host    replication  postgres  127.0.0.0/8 trust
host    all          app       127.0.0.0/8 scram-sha-256
EOF
  fi
  start_pg "$PRIMARY_REGION"
  if [[ $(psql_as_super "$PG_PORT_US_EAST_1" "select count(*) from pg_roles where rolname='app'") == 0 ]]; then
    local pw; pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    psql_as_super "$PG_PORT_US_EAST_1" "create role app login password '$pw'"
    psql_as_super "$PG_PORT_US_EAST_1" "create database app owner app"
    # The password lives only in this 0600 passfile, which conninfo strings name
    # (passfile=...), so it is never in a TOML, a log or a command line.
    mkdir -p "$CLUSTER_DIR/secrets"; chmod 700 "$CLUSTER_DIR/secrets"
    ( umask 077; echo "*:*:*:app:$pw" >"$APP_PASSFILE" )
  fi
}

# regiond's own objects in the application database (scripts/schema.sql: the
# durable invalidation table and its grants). Idempotent: applied at every
# `up`, on a new cluster and on an existing one (which may predate the file).
apply_schema() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT_US_EAST_1" -U postgres -d "$APP_DB" \
    -v app_role="$APP_USER" -f "$REPO_ROOT/scripts/schema.sql" >"$CLUSTER_DIR/log/schema.log" 2>&1 \
    || die "scripts/schema.sql failed on the primary: see $CLUSTER_DIR/log/schema.log"
}

start_pg() { # REGION
  local r=$1 k; k=$(key_of "$r")
  local data_var=PG_DATA_$k
  if pg_running "$r"; then return; fi
  ( cd "$CLUSTER_DIR" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "${!data_var}" \
      -l "$CLUSTER_DIR/log/postgres-$r.log" -w -t 30 start >/dev/null ) \
    || die "PostgreSQL $r did not start: see $CLUSTER_DIR/log/postgres-$r.log"
  wait_for "PostgreSQL $r to accept connections" 30 pg_running "$r"
}

init_replica() { # REGION
  local r=$1 k; k=$(key_of "$r")
  local data_var=PG_DATA_$k port_var=PG_PORT_$k
  local data=${!data_var} slot=${r//-/_}
  if [[ ! -f $data/PG_VERSION ]]; then
    ( cd "$CLUSTER_DIR" && runuser -u postgres -- "$PGBIN/pg_basebackup" -D "$data" -R -X stream -c fast \
        -C -S "$slot" -h "$PG_SOCKET_DIR" -p "$PG_PORT_US_EAST_1" -U postgres ) \
      >"$CLUSTER_DIR/log/basebackup-$r.log" 2>&1 \
      || die "pg_basebackup for $r failed: see $CLUSTER_DIR/log/basebackup-$r.log"
    pg_conf_common "$data" "${!port_var}" "$r"
    # Replicate through the WAN proxy so cross-region replication has its delay.
    cat >>"$data/postgresql.auto.conf" <<EOF
primary_conninfo = 'host=127.0.0.1 port=$(link_port "$r" "$PRIMARY_REGION" pg) user=postgres application_name=$r connect_timeout=2'
primary_slot_name = '$slot'
EOF
  fi
  start_pg "$r"
}

write_regiond_config() { # REGION (the emulated host's region)
  local host=$1 r k cfg socket_dir
  k=$(key_of "$host")
  local cfg_var=REGIOND_CONFIG_$k
  cfg=${!cfg_var}
  socket_dir=$CLUSTER_DIR/$host
  mkdir -p "$socket_dir"
  {
    echo "# regiond config for the emulated host in $host (generated by scripts/cluster.sh)."
    echo "# Every database and redis address goes through rgd-wanproxy: the link from"
    echo "# $host to each region carries that pair's one-way delay."
    echo "[daemon]"
    echo "region = \"$host\""
    echo "socket = \"$socket_dir/regiond.sock\""
    echo "admin_socket = \"$socket_dir/admin.sock\""
    echo "state_segment = \"$SEGMENT_PREFIX-$host\""
    echo "client_group = \"regiond\""
    echo "allowed_uids = [0]"
    echo
    echo "[cache]"
    echo "memory = \"64MiB\""
    echo "default_ttl = \"60s\""
    echo
    echo "[consistency]"
    echo "max_wait = \"50ms\""
    echo
    echo "[lag]"
    echo "poll_interval = \"100ms\""
    echo "max_lag = \"5s\""
    echo "alert_after = \"5s\""
    for r in "${REGIONS[@]}"; do
      local conn="host=127.0.0.1 port=$(link_port "$host" "$r" pg) dbname=$APP_DB user=$APP_USER passfile=$APP_PASSFILE connect_timeout=2"
      echo
      echo "[[regions]]"
      echo "name = \"$r\""
      if [[ $r == "$PRIMARY_REGION" ]]; then
        echo "primary = \"$conn\""
        echo "replicas = []"
      else
        echo "replicas = [\"$conn\"]"
      fi
      echo "redis = \"redis://127.0.0.1:$(link_port "$host" "$r" redis)\""
      echo "pool_size = 8"
    done
  } >"$cfg"
}

cmd_up() {
  local profile=realistic
  while (($#)); do
    case $1 in
      --profile) profile=${2:?--profile needs realistic or fast}; shift 2 ;;
      --profile=*) profile=${1#*=}; shift ;;
      *) die "unknown argument to up: $1" ;;
    esac
  done
  [[ $profile == realistic || $profile == fast ]] || die "profile must be realistic or fast, not $profile"
  [[ $(id -u) == 0 ]] || die "run as root (PostgreSQL is started as the postgres user through runuser)"
  command -v redis-server >/dev/null || die "redis-server missing: run scripts/install-deps.sh"
  [[ -x $PGBIN/initdb ]] || die "PostgreSQL 15 missing at $PGBIN: run scripts/install-deps.sh"

  if load_env; then
    if [[ $PROFILE != "$profile" ]]; then
      log "cluster exists with profile $PROFILE; switching link delays to $profile"
    fi
  else
    mkdir -p "$CLUSTER_DIR"
    local base; base=$(pick_port_base)
    write_env "$base" "$profile"
    load_env
  fi
  # postgres must traverse and read the run directory (mktemp -d makes 0700).
  chmod 755 "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR/pg" "$CLUSTER_DIR/sock" "$CLUSTER_DIR/log" "$CLUSTER_DIR/wan"
  chown postgres: "$CLUSTER_DIR/pg" "$CLUSTER_DIR/sock" "$CLUSTER_DIR/log"
  # Profile of an existing cluster can change: rewrite the links, set delays live.
  sed -i "s/^PROFILE=.*/PROFILE=$profile/" "$ENV_FILE"
  PROFILE=$profile
  write_links "$profile"

  local r
  for r in "${REGIONS[@]}"; do start_redis "$r"; done
  start_wanproxy
  apply_delays "$profile"
  init_primary
  apply_schema
  for r in "${REGIONS[@]}"; do
    [[ $r == "$PRIMARY_REGION" ]] || init_replica "$r"
  done
  for r in "${REGIONS[@]}"; do
    [[ $r == "$PRIMARY_REGION" ]] || wait_for "replica $r streaming (log: $CLUSTER_DIR/log/postgres-$r.log)" 60 replica_streaming "$r"
  done
  for r in "${REGIONS[@]}"; do write_regiond_config "$r"; done
  log "up ($profile profile) in $CLUSTER_DIR; env: $ENV_FILE"
}

apply_delays() { # PROFILE: set each running link's delay (for an `up` that changes profile)
  local name _listen _target delay
  while read -r name _listen _target delay; do
    [[ -z $name || $name == \#* ]] && continue
    wan_ctl delay "$name" "$delay" >/dev/null
  done <"$WAN_LINKS"
}

kill_pidfile() { # FILE DESCRIPTION
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$2 (pid $pid) ignored SIGTERM for 10 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

cmd_down() {
  if ! load_env; then
    log "no cluster at $CLUSTER_DIR (nothing to stop)"
    [[ -d $CLUSTER_DIR ]] && rm -rf "$CLUSTER_DIR"
    return 0
  fi
  local r k f
  # daemons started by the demo or tests record their pid beside their socket
  for r in "${REGIONS[@]}"; do kill_pidfile "$CLUSTER_DIR/$r/regiond.pid" "regiond $r"; done
  for r in "${REGIONS[@]}"; do
    k=$(key_of "$r")
    local data_var=PG_DATA_$k
    if [[ -f ${!data_var}/postmaster.pid ]]; then
      ( cd "$CLUSTER_DIR" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "${!data_var}" -m immediate -w -t 30 stop >/dev/null 2>&1 ) || true
    fi
  done
  for r in "${REGIONS[@]}"; do kill_pidfile "$CLUSTER_DIR/redis/$r/redis.pid" "redis $r"; done
  kill_pidfile "$CLUSTER_DIR/wan/wanproxy.pid" "rgd-wanproxy"
  # state segments of the daemons of this cluster
  for f in /dev/shm/"${SEGMENT_PREFIX#/}"-*; do [[ -e $f ]] && rm -f "$f"; done
  # Nothing may be left listening on our ports.
  local p leftover=()
  for p in $(seq "$PORT_BASE" $((PORT_BASE + 49))); do
    if port_in_use "$p"; then leftover+=("$p"); fi
  done
  rm -rf "$CLUSTER_DIR"
  if ((${#leftover[@]})); then
    die "ports still in use after down: ${leftover[*]}"
  fi
  log "down: $CLUSTER_DIR removed"
}

cmd_status() {
  load_env || die "no cluster at $CLUSTER_DIR (run: scripts/cluster.sh up)"
  local r k rc=0
  printf 'cluster %s  profile %s\n\n' "$CLUSTER_DIR" "$PROFILE"
  printf '%-16s %-8s %-8s %-6s %s\n' REGION SERVICE ROLE PORT STATE
  for r in "${REGIONS[@]}"; do
    k=$(key_of "$r")
    local pg_port_var=PG_PORT_$k redis_port_var=REDIS_PORT_$k role=replica state
    [[ $r == "$PRIMARY_REGION" ]] && role=primary
    if pg_running "$r"; then state=up; else state=DOWN; rc=1; fi
    if [[ $state == up && $role == replica ]]; then
      state="up $(psql_as_super "${!pg_port_var}" "select 'replay_lsn=' || pg_last_wal_replay_lsn() || case when pg_is_wal_replay_paused() then ' (replay paused)' else '' end")"
    fi
    printf '%-16s %-8s %-8s %-6s %s\n' "$r" postgres "$role" "${!pg_port_var}" "$state"
    if redis_running "$r"; then state=up; else state=DOWN; rc=1; fi
    printf '%-16s %-8s %-8s %-6s %s\n' "$r" redis - "${!redis_port_var}" "$state"
  done
  echo
  echo "replication (on the primary):"
  if pg_running "$PRIMARY_REGION"; then
    psql_as_super "$PG_PORT_US_EAST_1" "select format('  %-16s %-10s sent=%s replay=%s behind=%s bytes', application_name, state, sent_lsn, replay_lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) from pg_stat_replication order by application_name"
  else
    echo "  primary down"; rc=1
  fi
  echo
  echo "wan links (one-way delay each direction):"
  if wan_running; then
    wan_ctl status | sed -n '/^ok$/q;s/^/  /p'
  else
    echo "  rgd-wanproxy not running"; rc=1
  fi
  return $rc
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  status) shift; cmd_status ;;
  wan) shift; load_env || die "no cluster at $CLUSTER_DIR"; wan_ctl "$@" ;;
  env) load_env || die "no cluster at $CLUSTER_DIR"; echo "$ENV_FILE" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 64 ;;
esac
