# shellcheck shell=bash
# PostgreSQL in a local data directory, no system service. Sourced by deploy/quickstart.sh
# and tests/run-all.sh.
#   pg_start [--fast-unsafe] DIR PORT
#                       initdb (first time) and start; prints nothing on success. The server
#                       keeps PostgreSQL's durable defaults (fsync, synchronous_commit,
#                       full_page_writes): a crash or power loss loses no committed row.
#                       --fast-unsafe turns all three off: a crash can lose or corrupt data.
#                       Only the test tiers (tests/run-all.sh) use it, on throw-away data.
#   pg_stop DIR         fast shutdown
#   pg_dsn PORT [DB]    the connection string
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

_pg_as_owner() {  # run as the data directory's owner: initdb/postgres refuse to run as root
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local settings=""
  if [ "${1:-}" = --fast-unsafe ]; then
    settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    shift
  fi
  local dir=$1 port=$2
  [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL server binaries not found (install postgresql)" >&2; return 1; }
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    _pg_as_owner "$PG_BIN/initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-locale >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; return 1; }
  fi
  if _pg_as_owner "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    return 0  # already running (a second quickstart start)
  fi
  # The socket goes into the data directory so nothing outside it is needed.
  _pg_as_owner "$PG_BIN/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 $settings" \
    start >/dev/null || { tail -20 "$dir/server.log" >&2; return 1; }
}

pg_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] || return 0
  _pg_as_owner "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

pg_dsn() { echo "postgresql://postgres@127.0.0.1:$1/${2:-postgres}"; }
