#!/usr/bin/env bash
# The scale-out harness on loopback: the service as a province would deploy it on several machines,
# here on 127.0.0.1, each part on a free port.
#
#   PostgreSQL 15 primary ── streaming replica (pg_basebackup -R)
#   Redis (throwaway: no snapshot, no append-only file)
#   N app instances (`app serve --workers W`, APP_ENV=production, one shared SECRET_KEY)
#   HAProxy in front: TLS on one port, round robin, health checks on /health
#
#   bash scripts/cluster.sh start  [--dir DIR] [--instances 3] [--workers 2] [--demo OFFICERS] [--no-fsync]
#   bash scripts/cluster.sh status [--dir DIR]      each part's state, pid and port; exit 1 if one is down
#   bash scripts/cluster.sh stop   [--dir DIR]      stop everything, remove the data (DIR/logs stay)
#
# DIR (default var/cluster) holds the data, pid files (run/), logs (logs/), the TLS certificate and
# cluster.env: the settings every instance runs with, to `source` before an `app` command against
# the cluster (`set -a; . DIR/cluster.env; set +a; .venv/bin/app audit verify`). --demo N loads
# `app demo-data --officers N` after the migration; --no-fsync trades durability for speed (tests).
# The primary is migrated once, before any instance starts. Works on a fresh Debian 12 machine as
# root (installs what is missing with apt; PostgreSQL then runs as the `postgres` system user).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_BIN=/usr/lib/postgresql/15/bin # the Debian package's binaries, never a wrapper on PATH
STAMP=.venv/.installed
DB_NAME=app

T0=$(date +%s%N)
log() { printf '[cluster.sh %5.1fs] %s\n' "$((($(date +%s%N) - T0) / 1000000))e-3" "$*" >&2; }
die() {
  log "$*"
  exit 1
}
as_root() { [[ $(id -u) -eq 0 ]]; }

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

CMD=${1:-}
[[ -n $CMD ]] || usage
shift
DIR=var/cluster
INSTANCES=3
WORKERS=2
DEMO=0
FSYNC=on
while (($#)); do
  case $1 in
    --dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
    --instances) INSTANCES=${2:?}; shift 2 ;;
    --workers) WORKERS=${2:?}; shift 2 ;;
    --demo) DEMO=${2:?--demo needs a number of officers}; shift 2 ;;
    --no-fsync) FSYNC=off; shift ;;
    -h | --help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ $INSTANCES =~ ^[1-9][0-9]?$ && $WORKERS =~ ^[1-9][0-9]?$ && $DEMO =~ ^[0-9]+$ ]] ||
  die "--instances, --workers and --demo take whole numbers"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
RUN=$DIR/run
LOGS=$DIR/logs
ENV_FILE=$DIR/cluster.env

# PostgreSQL refuses to run as root: root runs it as the `postgres` system user (as scripts/test.sh).
as_pg() {
  if as_root; then (cd "$DIR" && runuser -u postgres -- "$@"); else (cd "$DIR" && "$@"); fi
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { [[ -f $RUN/$1.pid ]] && head -n1 "$RUN/$1.pid" || true; }

# --- stop ------------------------------------------------------------------------------------------
# Every part by its own pid file (an instance by its process group: uvicorn's supervisor and its
# workers), so nothing else on the machine is touched; then the data goes, the logs stay.
stop_groups() { # names: TERM each process group at once, KILL what is left after 20 s
  local name pid pids=() left
  for name in "$@"; do
    pid=$(pid_of "$name")
    if alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for _ in $(seq 200); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      log "process group $pid did not stop within 20 s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

stop_pg() { # name
  if [[ -f $DIR/$1/PG_VERSION ]]; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$DIR/$1" -m fast -s -t 30 >/dev/null 2>&1 ||
      as_pg "$PG_BIN/pg_ctl" stop -D "$DIR/$1" -m immediate -s >/dev/null 2>&1 || true
  fi
}

cmd_stop() {
  stop_groups haproxy # no new requests first
  local f names=()
  for f in "$RUN"/app*.pid; do [[ -e $f ]] && names+=("$(basename "$f" .pid)"); done
  stop_groups "${names[@]}" redis
  stop_pg replica
  stop_pg primary
  rm -rf "$DIR/primary" "$DIR/replica" "$DIR/redis" "$DIR/socket" "$DIR/var" "$DIR/tls" "$RUN" \
    "$DIR/haproxy.cfg" "$DIR/secret_key" "$ENV_FILE"
  log "stopped; logs kept in $LOGS"
}

# --- status ----------------------------------------------------------------------------------------
load_env() {
  [[ -f $ENV_FILE ]] || die "no cluster in $DIR (start one: bash scripts/cluster.sh start --dir $DIR)"
  # shellcheck disable=SC1090
  set -a && . "$ENV_FILE" && set +a
}

cmd_status() {
  load_env
  local down=0 line state pid detail i port
  row() { printf '%-9s %-8s %-8s %-6s %s\n' "$@"; }
  row part state pid port detail
  for part in primary replica; do
    port=$([[ $part == primary ]] && echo "$CLUSTER_PG_PORT" || echo "$CLUSTER_REPLICA_PORT")
    pid=$(head -n1 "$DIR/$part/postmaster.pid" 2>/dev/null || true)
    if alive "$pid" && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
      state=up
      if [[ $part == primary ]]; then
        detail="replicas streaming (replay lag in bytes): $("$PG_BIN/psql" -XAtq -h 127.0.0.1 -p "$port" \
          -U postgres -d "$DB_NAME" -c "SELECT coalesce(string_agg(application_name || ' ' ||
            pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), ', '), 'none')
            FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo '?')"
      else
        detail="in recovery: $("$PG_BIN/psql" -XAtq -h 127.0.0.1 -p "$port" -U postgres -d "$DB_NAME" \
          -c "SELECT pg_is_in_recovery()" 2>/dev/null || echo '?')"
      fi
    else
      state=down detail="" down=1
    fi
    row "$part" "$state" "${pid:--}" "$port" "$detail"
  done

  pid=$(pid_of redis)
  if alive "$pid" && [[ $(redis-cli -h 127.0.0.1 -p "$CLUSTER_REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
    row redis up "$pid" "$CLUSTER_REDIS_PORT" "PING: PONG"
  else
    row redis down "${pid:--}" "$CLUSTER_REDIS_PORT" ""
    down=1
  fi

  for ((i = 1; i <= CLUSTER_INSTANCES; i++)); do
    port=$(eval echo "\$CLUSTER_APP${i}_PORT")
    pid=$(pid_of "app$i")
    if alive "$pid"; then
      detail="workers: $(pgrep -c -P "$pid" -f spawn_main || true), /health: $(curl -s -o /dev/null -m 3 \
        -w '%{http_code}' "http://127.0.0.1:$port/health" || true)"
      [[ $detail == *"/health: 200" ]] && state=up || { state=unhealthy; down=1; }
    else
      state=down detail="" down=1
    fi
    row "app$i" "$state" "${pid:--}" "$port" "$detail"
  done

  pid=$(pid_of haproxy)
  if alive "$pid"; then
    # The stats page's CSV: proxy name, server name, ..., status in the 18th field.
    detail=$(curl -s -m 3 "http://127.0.0.1:$CLUSTER_STATS_PORT/;csv" |
      awk -F, '$1 == "app" && $2 ~ /^app[0-9]+$/ { printf "%s%s %s", sep, $2, $18; sep = ", " }')
    row haproxy up "$pid" "$CLUSTER_HTTPS_PORT" "https, backends: ${detail:-?} (stats :$CLUSTER_STATS_PORT)"
  else
    row haproxy down "${pid:--}" "$CLUSTER_HTTPS_PORT" ""
    down=1
  fi
  echo "url: $CLUSTER_URL (CA certificate: $CLUSTER_CA)"
  return "$down"
}

# --- start -----------------------------------------------------------------------------------------
apt_install() {
  as_root || die "missing: $* — install them (apt-get install $*) or run as root"
  log "installing $* with apt-get"
  apt-get update -qq
  # Another apt run on the machine (a test set-up) holds the lock for a while: wait for it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
    --no-install-recommends "$@" >/dev/null
}

wait_for() { # seconds description command...: poll every 0.2 s
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up within $seconds s (logs in $LOGS)"
}

healthy() { [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1") == 200 ]]; }
in_recovery() {
  [[ $("$PG_BIN/psql" -XAtq -h 127.0.0.1 -p "$1" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()') == t ]]
}

cmd_start() {
  if [[ -f $ENV_FILE ]]; then
    die "a cluster is already set up in $DIR: bash scripts/cluster.sh status|stop --dir $DIR"
  fi

  local missing=()
  [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_basebackup && -x $PG_BIN/psql ]] || missing+=(postgresql-15)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
  if [[ ! -f $STAMP || pyproject.toml -nt $STAMP || constraints.txt -nt $STAMP ]]; then
    log "setting up .venv (make setup)"
    make --no-print-directory setup
  fi

  # From here on a failure takes down whatever was started.
  trap 'rc=$?; if ((rc)); then log "start failed: stopping what was started"; cmd_stop; fi' EXIT
  mkdir -p "$RUN" "$LOGS" "$DIR/var" "$DIR/tls"
  chmod 755 "$DIR" # the postgres user reaches its directories through it
  rm -f "$LOGS"/*.log

  # Every port at once (bound together, so no two are the same), released just before use.
  local ports
  read -r -a ports <<<"$(.venv/bin/python - "$((INSTANCES + 5))" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
  local pg_port=${ports[0]} replica_port=${ports[1]} redis_port=${ports[2]} https_port=${ports[3]}
  local stats_port=${ports[4]} i

  # --- PostgreSQL primary
  if as_root && ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
  if as_root && ! runuser -u postgres -- test -x "$DIR"; then
    die "the postgres user cannot reach $DIR (a parent directory is private): choose another --dir"
  fi
  mkdir -p "$DIR/socket" "$DIR/primary" "$DIR/replica"
  touch "$LOGS/primary.log" "$LOGS/replica.log"
  if as_root; then
    chown postgres: "$DIR/socket" "$DIR/primary" "$DIR/replica" "$LOGS/primary.log" "$LOGS/replica.log"
  fi
  chmod 700 "$DIR/socket" "$DIR/primary" "$DIR/replica"
  as_pg "$PG_BIN/initdb" --pgdata="$DIR/primary" --username=postgres --auth=trust \
    --encoding=UTF8 --no-locale --no-sync >"$LOGS/initdb.log" 2>&1 || die "initdb failed: $LOGS/initdb.log"
  as_pg tee -a "$DIR/primary/postgresql.conf" >/dev/null <<CONF

# scripts/cluster.sh: loopback only; 3 instances x 2 workers x (pool + overflow + driver pool)
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$DIR/socket'
max_connections = 500
wal_level = replica
max_wal_senders = 4
wal_keep_size = '256MB'
hot_standby = on
fsync = $FSYNC
full_page_writes = $FSYNC
CONF
  as_pg "$PG_BIN/pg_ctl" start -D "$DIR/primary" -l "$LOGS/primary.log" -w -t 60 -s ||
    die "the primary did not start: $LOGS/primary.log"
  wait_for 20 "the primary" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U postgres
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$DB_NAME"
  log "primary ready on :$pg_port"

  # --- the streaming replica: a base backup of the primary, standby.signal and primary_conninfo (-R)
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres -D "$DIR/replica" -R -X stream \
    -c fast >"$LOGS/basebackup.log" 2>&1 || die "pg_basebackup failed: $LOGS/basebackup.log"
  as_pg tee -a "$DIR/replica/postgresql.conf" >/dev/null <<CONF

# scripts/cluster.sh: the replica
port = $replica_port
CONF
  as_pg "$PG_BIN/pg_ctl" start -D "$DIR/replica" -l "$LOGS/replica.log" -w -t 60 -s ||
    die "the replica did not start: $LOGS/replica.log"
  wait_for 30 "the replica" in_recovery "$replica_port"
  log "replica streaming on :$replica_port"

  # --- Redis: shared rate limits only, nothing worth keeping
  mkdir -p "$DIR/redis"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
    --dir "$DIR/redis" --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" ||
    die "redis-server did not start: $LOGS/redis.log"
  wait_for 10 "Redis" redis-cli -h 127.0.0.1 -p "$redis_port" ping

  # --- the settings every instance shares (and every console command against the cluster)
  (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' >"$DIR/secret_key")
  {
    echo "# scripts/cluster.sh start, $(date -u +%FT%TZ): the cluster's settings (source with set -a)"
    echo "APP_ENV=production"
    echo "DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:$pg_port/$DB_NAME"
    echo "DATABASE_READ_URL=postgresql+asyncpg://postgres@127.0.0.1:$replica_port/$DB_NAME"
    echo "REDIS_URL=redis://127.0.0.1:$redis_port/0"
    echo "SECRET_KEY=$(cat "$DIR/secret_key")"
    echo "PUBLIC_BASE_URL=https://127.0.0.1:$https_port"
    # HAProxy connects from 127.0.0.1 and sets X-Forwarded-For to the client's address.
    echo "FORWARDED_ALLOW_IPS=127.0.0.1"
    echo "APP_VAR_DIR=$DIR/var"
    echo "PYTHONUNBUFFERED=1"
    # Passed through from the caller's environment when set (the tests lower the verify limit).
    for name in VERIFY_RATE_PER_MINUTE DB_POOL_SIZE KEEP_ALIVE_SECONDS EXAM_FAST_LANE; do
      [[ -n ${!name:-} ]] && echo "$name=${!name}"
    done
    echo "CLUSTER_DIR=$DIR"
    echo "CLUSTER_INSTANCES=$INSTANCES"
    echo "CLUSTER_WORKERS=$WORKERS"
    echo "CLUSTER_PG_PORT=$pg_port"
    echo "CLUSTER_REPLICA_PORT=$replica_port"
    echo "CLUSTER_REDIS_PORT=$redis_port"
    for ((i = 1; i <= INSTANCES; i++)); do echo "CLUSTER_APP${i}_PORT=${ports[$((4 + i))]}"; done
    echo "CLUSTER_HTTPS_PORT=$https_port"
    echo "CLUSTER_STATS_PORT=$stats_port"
    echo "CLUSTER_URL=https://127.0.0.1:$https_port"
    echo "CLUSTER_CA=$DIR/tls/cert.pem"
  } >"$ENV_FILE.new"
  chmod 600 "$ENV_FILE.new"
  mv "$ENV_FILE.new" "$ENV_FILE"
  load_env

  # --- the schema, once, before any instance (and the demo province when asked)
  .venv/bin/app db upgrade >"$LOGS/migrate.log" 2>&1 || die "app db upgrade failed: $LOGS/migrate.log"
  log "primary migrated"
  if ((DEMO)); then
    log "loading the demo province ($DEMO officers)"
    .venv/bin/app demo-data --officers "$DEMO" >"$LOGS/demo-data.log" 2>&1 ||
      die "app demo-data failed: $LOGS/demo-data.log"
  fi
  log "starting $INSTANCES instances x $WORKERS workers"

  # --- the instances: each in a session of its own, so its process group is its supervisor and workers
  for ((i = 1; i <= INSTANCES; i++)); do
    port=$(eval echo "\$CLUSTER_APP${i}_PORT")
    setsid .venv/bin/app serve --host 127.0.0.1 --port "$port" --workers "$WORKERS" \
      >"$LOGS/app$i.log" 2>&1 </dev/null &
    echo $! >"$RUN/app$i.pid"
  done
  for ((i = 1; i <= INSTANCES; i++)); do
    port=$(eval echo "\$CLUSTER_APP${i}_PORT")
    wait_for 120 "app$i (port $port)" healthy "http://127.0.0.1:$port/health"
  done
  log "instances healthy"

  # --- HAProxy: TLS (a self-signed certificate for 127.0.0.1), round robin, /health checks
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" \
    >"$LOGS/openssl.log" 2>&1 || die "openssl failed: $LOGS/openssl.log"
  cat "$DIR/tls/cert.pem" "$DIR/tls/key.pem" >"$DIR/tls/haproxy.pem"
  chmod 600 "$DIR/tls/key.pem" "$DIR/tls/haproxy.pem"
  {
    cat <<CFG
# scripts/cluster.sh: TLS in front, the instances behind it on plain HTTP.
global
    maxconn 4000
    pidfile $RUN/haproxy.pid
    stats socket $RUN/haproxy.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 90s
    timeout server 90s
    timeout http-keep-alive 75s
    # A request whose connection to an instance fails (a dead one not yet marked down) goes to another.
    retries 3
    option redispatch 1

frontend https
    bind 127.0.0.1:$https_port ssl crt $DIR/tls/haproxy.pem
    # The client's address replaces anything the client sent: the instances trust this header from
    # 127.0.0.1 only (FORWARDED_ALLOW_IPS), and per-client limits key on it.
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto https
    default_backend app

backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
    # Which instance answered (the correctness tests check the load is spread).
    http-response set-header X-Served-By %s
CFG
    for ((i = 1; i <= INSTANCES; i++)); do
      echo "    server app$i 127.0.0.1:$(eval echo "\$CLUSTER_APP${i}_PORT")"
    done
    cat <<CFG

listen stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /
    stats refresh 5s
CFG
  } >"$DIR/haproxy.cfg"
  haproxy -c -q -f "$DIR/haproxy.cfg" >"$LOGS/haproxy.log" 2>&1 || die "haproxy.cfg is invalid: $LOGS/haproxy.log"
  haproxy -D -f "$DIR/haproxy.cfg" >>"$LOGS/haproxy.log" 2>&1 || die "haproxy did not start: $LOGS/haproxy.log"
  wait_for 10 "haproxy" test -s "$RUN/haproxy.pid"
  wait_for 30 "haproxy's backends" all_up
  trap - EXIT
  log "up: $CLUSTER_URL ($INSTANCES instances x $WORKERS workers); settings in $ENV_FILE"
  cmd_status
}

all_up() { # every instance UP in HAProxy's stats
  local up
  up=$(curl -s -m 2 "http://127.0.0.1:$CLUSTER_STATS_PORT/;csv" |
    awk -F, '$1 == "app" && $2 ~ /^app[0-9]+$/ && $18 == "UP"' | wc -l)
  ((up == CLUSTER_INSTANCES))
}

case $CMD in
  start) cmd_start ;;
  status) cmd_status ;;
  stop)
    if [[ ! -f $ENV_FILE && ! -d $RUN ]]; then log "no cluster in $DIR"; exit 0; fi
    cmd_stop
    ;;
  *) usage ;;
esac
