#!/usr/bin/env bash
# The one test command (`make test`, `make test-slow`, and CI through `.ci/run`): set up the venv,
# start a throwaway PostgreSQL 15 cluster and a Redis (TEST_REDIS_URL) on free local ports, run
# pytest against SQLite and PostgreSQL, tear down. Works on a fresh Debian 12 machine as root
# (installs what is missing with apt) and for a normal user who already has the PostgreSQL 15
# server binaries and redis-server.
#
#   bash scripts/test.sh [pytest args]          the fast suite: every test but the slow step's, in
#                                               TEST_WORKERS pytest-xdist processes (default 2)
#   bash scripts/test.sh --slow [pytest args]   the slow step: fault tests with servers and commands
#                                               in subprocesses (`slow`), then the browser tests and
#                                               the API fuzzing (`e2e`), one process each
#
# Further arguments go to pytest after these defaults, so they win: `-m ...` selects otherwise,
# `-n 0` runs in one process, paths narrow the run (`bash scripts/test.sh tests/unit -q`).
set -euo pipefail

SLOW=0
if [[ ${1:-} == --slow ]]; then
  SLOW=1
  shift
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_BIN=/usr/lib/postgresql/15/bin  # the Debian package's binaries, never a wrapper on PATH
STAMP=.venv/.installed

log() { printf '[test.sh] %s\n' "$*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

as_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
  if ! as_root; then
    log "missing: $* — install them (apt-get install $*) or run as root"
    exit 1
  fi
  log "installing $* with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- system packages --------------------------------------------------------------------------
missing=()
command -v make >/dev/null || missing+=(make)
if [[ ! -x .venv/bin/python ]]; then
  # Debian's python3 lacks ensurepip (hence venv) until python3-venv is installed.
  if ! command -v python3.11 >/dev/null && ! command -v python3 >/dev/null; then
    missing+=(python3 python3-venv)
  elif ! { command -v python3.11 >/dev/null && python3.11 -c 'import ensurepip' 2>/dev/null; } &&
    ! python3 -c 'import ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
  fi
fi
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || missing+=(postgresql-15)
# The browser tests (tests/e2e) drive Debian's Chromium: `playwright install` needs the internet.
# CJK fonts so that screenshots show Chinese rather than boxes. (grep without -q: under pipefail an
# early exit would fail fc-list with SIGPIPE.)
command -v chromium >/dev/null || missing+=(chromium)
{ command -v fc-list >/dev/null && fc-list : family | grep -i "Noto Sans CJK" >/dev/null; } || missing+=(fonts-noto-cjk)
# Certificate cards embed WenQuanYi Zen Hei (TrueType outlines: reportlab cannot embed Noto's CFF);
# pdftoppm renders the card PDF so the tests can read its QR code back.
[[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]] || missing+=(fonts-wqy-zenhei)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
# The shared rate limits (REDIS_URL) are tested against a real Redis 7.
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then apt_install "${missing[@]}"; fi

# --- the venv ---------------------------------------------------------------------------------
if [[ ! -f $STAMP || pyproject.toml -nt $STAMP || constraints.txt -nt $STAMP ]]; then
  log "setting up .venv (make setup)"
  make --no-print-directory setup
fi
PYTHON=.venv/bin/python

# --- a throwaway PostgreSQL cluster -----------------------------------------------------------
TMP=$(mktemp -d -t app-test.XXXXXX)
PGDATA_DIR=$TMP/data
PG_STARTED=0
REDIS_PID=

cleanup() {
  local rc=$?
  if ((PG_STARTED)); then
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -s >/dev/null 2>&1 || true
  fi
  if [[ -n $REDIS_PID ]]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# initdb refuses to run as root, so root runs the cluster as the `postgres` system user.
if as_root; then
  if ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
  chown postgres: "$TMP"
  as_pg() { (cd "$TMP" && runuser -u postgres -- "$@"); }
else
  as_pg() { (cd "$TMP" && "$@"); }
fi

PG_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(now_ms)
as_pg mkdir -m 700 "$TMP/socket"
as_pg "$PG_BIN/initdb" --pgdata="$PGDATA_DIR" --username=postgres --auth=trust \
  --encoding=UTF8 --no-locale --no-sync >"$TMP/initdb.log" 2>&1 ||
  { cat "$TMP/initdb.log" >&2; log "initdb failed"; exit 1; }
as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<CONF

# throwaway test cluster: local only, speed over durability
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP/socket'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
PG_STARTED=1
as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$TMP/postgres.log" -w -t 60 -s ||
  { cat "$TMP/postgres.log" >&2; log "PostgreSQL did not start"; exit 1; }
for _ in $(seq 100); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres && break
  sleep 0.1
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres ||
  { cat "$TMP/postgres.log" >&2; log "PostgreSQL is not accepting connections"; exit 1; }
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') ready on 127.0.0.1:$PG_PORT in $(($(now_ms) - t0)) ms"

# --- a throwaway Redis ------------------------------------------------------------------------
# In memory only (no RDB, no AOF), loopback only; the tests of the shared rate limits use it, each
# pytest worker in a database of its own (hence 64 of them).
REDIS_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --databases 64 \
  --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep PONG >/dev/null && break
  sleep 0.05
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep PONG >/dev/null ||
  { cat "$TMP/redis.log" >&2; log "Redis did not start"; exit 1; }
log "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) ready on 127.0.0.1:$REDIS_PORT"

# --- pytest -----------------------------------------------------------------------------------
export TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export APP_ENV=test
export E2E_CHROMIUM=${E2E_CHROMIUM:-/usr/bin/chromium}
export APP_VAR_DIR=$TMP/var
mkdir -p "$APP_VAR_DIR"
# Tests get their databases from fixtures; a DATABASE_URL or REDIS_URL left in the shell must never
# be touched.
unset DATABASE_URL REDIS_URL

run_pytest() {
  log "pytest$(printf ' %q' "$@")"
  "$PYTHON" -m pytest "$@"
}

set +e
if ((SLOW)); then
  # The fault tests start servers and commands of their own (each on its own port and database):
  # two processes. The browser tests run in one: Playwright's sync API holds the main thread's loop
  # while the browser is open, and they share one server.
  run_pytest -m slow -n "${TEST_WORKERS:-2}" "$@"
  rc=$?
  run_pytest -m e2e -n 0 "$@"
  rc2=$?
  # Arguments that narrow the run to one half leave the other with nothing: that half is no failure.
  if ((rc == 5 && rc2 != 5)); then
    log "no fault test selected: only the browser and fuzzing half ran"
    rc=$rc2
  elif ((rc2 == 5 && rc != 5)); then
    log "no browser or fuzzing test selected: only the fault half ran"
  elif ((rc == 0)); then
    rc=$rc2
  fi
else
  run_pytest -m "not slow and not e2e" -n "${TEST_WORKERS:-2}" "$@"
  rc=$?
fi
set -e
if ((rc == 5)); then
  log "pytest collected no tests (exit code 5): a test run that tests nothing is a failure"
  ((SLOW)) || log "(the fault, browser and fuzzing tests run with --slow: make test-slow)"
fi
exit "$rc"
