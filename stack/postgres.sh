#!/usr/bin/env bash
# Finds a PostgreSQL server for development and tests and prints its URL on stdout.
#   1. DATABASE_URL when set (it must answer);
#   2. else the server on 127.0.0.1:$PG_LOCAL_PORT (5432) when it answers;
#   3. else a private cluster (initdb + pg_ctl) in $PG_STACK_DIR on $PG_PRIVATE_PORT.
#
#   stack/postgres.sh url     print the URL (starting the private cluster if needed)
#   stack/postgres.sh stop    stop the private cluster if this script started one
#   stack/postgres.sh owned   exit 0 when the private cluster is running
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PG_LOCAL_PORT=${PG_LOCAL_PORT:-5432}
PG_PRIVATE_PORT=${PG_PRIVATE_PORT:-55432}
PG_STACK_DIR=${PG_STACK_DIR:-$root/.stack/postgres}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-30}
# Extra server options for a private cluster, e.g. "-c ssl=on -c ssl_cert_file=…" (tests).
PG_EXTRA_OPTS=${PG_EXTRA_OPTS:-}
data="$PG_STACK_DIR/data"

die() { echo "stack/postgres.sh: $*" >&2; exit 1; }

# Runs a postgres binary as a non-root user: initdb and pg_ctl refuse to run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to own a private cluster. Fix: set DATABASE_URL to a server you have."
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_bin() {
  local b
  for b in "$(command -v "$1" 2>/dev/null || true)" /usr/lib/postgresql/*/bin/"$1" /usr/local/pgsql/bin/"$1" /opt/homebrew/bin/"$1"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}

answers() { # host port
  local isready
  isready=$(pg_bin pg_isready) || { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; return; }
  timeout 5 "$isready" -q -h "$1" -p "$2" -t 3
}

owned() { [ -f "$data/postmaster.pid" ] && as_owner "$(pg_bin pg_ctl)" -D "$data" status >/dev/null 2>&1; }

start_private() {
  local initdb pg_ctl
  initdb=$(pg_bin initdb) || die "no PostgreSQL server answers on 127.0.0.1:$PG_LOCAL_PORT and initdb is not installed to start a private one. Fix: set DATABASE_URL=postgres://user@host:port/db, start your server, or install PostgreSQL (apt-get install postgresql)."
  pg_ctl=$(pg_bin pg_ctl)
  if owned; then echo "postgres://postgres@127.0.0.1:$PG_PRIVATE_PORT/postgres"; return 0; fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PG_PRIVATE_PORT") 2>/dev/null &&
    die "port $PG_PRIVATE_PORT is taken; choose another with PG_PRIVATE_PORT=<port>"
  mkdir -p "$PG_STACK_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_STACK_DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "stack/postgres.sh: creating a private cluster in $data" >&2
    as_owner "$initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$PG_STACK_DIR/initdb.log" 2>&1 ||
      { cat "$PG_STACK_DIR/initdb.log" >&2; die "initdb failed (above)"; }
  fi
  as_owner "$pg_ctl" -D "$data" -l "$PG_STACK_DIR/server.log" -w -t "$PG_START_TIMEOUT" \
    -o "-p $PG_PRIVATE_PORT -c listen_addresses=127.0.0.1 -k $PG_STACK_DIR -c max_connections=200 -c fsync=off $PG_EXTRA_OPTS" start >/dev/null ||
    { tail -n 20 "$PG_STACK_DIR/server.log" >&2; die "the private cluster did not start within ${PG_START_TIMEOUT}s (log above)"; }
  echo "stack/postgres.sh: private PostgreSQL ready on 127.0.0.1:$PG_PRIVATE_PORT" >&2
  echo "postgres://postgres@127.0.0.1:$PG_PRIVATE_PORT/postgres"
}

url() {
  if [ -n "${DATABASE_URL:-}" ]; then
    local isready
    if isready=$(pg_bin pg_isready); then
      timeout 10 "$isready" -q -d "$DATABASE_URL" -t 5 ||
        die "DATABASE_URL is set but its server does not accept connections (pg_isready failed). Fix: start that server or unset DATABASE_URL to use a local one."
    fi
    echo "$DATABASE_URL"
  elif answers 127.0.0.1 "$PG_LOCAL_PORT"; then
    echo "postgres://postgres@127.0.0.1:$PG_LOCAL_PORT/postgres"
  else
    start_private
  fi
}

stop() {
  owned || return 0
  as_owner "$(pg_bin pg_ctl)" -D "$data" -m fast -w -t 30 stop >/dev/null
}

case "${1:-}" in
  url) url ;;
  stop) stop ;;
  owned) owned ;;
  *) echo "usage: stack/postgres.sh url|stop|owned" >&2; exit 2 ;;
esac
