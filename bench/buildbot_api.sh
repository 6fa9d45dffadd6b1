#!/usr/bin/env bash
# Buildbot 3.7's REST API against assay-bench-dashboard's pipelines call, on the same data
# (bench/README.md, `assay-bench-dashboard`, "Against Buildbot").
#
# It starts a Buildbot master (Debian's `buildbot` package) and fills its database with N
# finished builds shaped like assay-bench-dashboard's N pipelines: 10 builders stand in for the
# 10 repositories, branch/revision/repository/event are build properties, 1 in 20 failed
# (results=2). Then, for each call below: 20 warm-up and 200 timed GETs, each on a new loopback
# TCP connection, timed from connect to the last byte read; nearest-rank p50/p95/max and the
# response size in bytes.
#   newest 50          /api/v2/builds?order=-buildid&limit=50   (what Buildbot's UI asks for)
#   one builder        /api/v2/builders/4/builds?order=-number&limit=50   (builder 4 = app3)
#   failed only        /api/v2/builds?order=-buildid&limit=50&results__eq=2
#   N/2 deep           /api/v2/builds?order=-buildid&limit=50&offset=N/2  (Buildbot has no cursor)
#   newest 50 + props  the first call with 4 build properties: without them a build carries no
#                      branch, revision or repository
#   one build by id    /api/v2/builds/N/2: no list and no count, Buildbot's floor per request
# Buildbot runs on SQLite (its default) and, if DBS names it, on PostgreSQL.
# If ASSAY_BENCH names build/bench/assay-bench-dashboard, the same client then times Assay's
# calls: it runs that bench with LOG_MIB 0, waits until its server is filled, pauses the bench
# process (SIGSTOP) while it measures, and lets it go on (SIGCONT). Assay's reported figures come
# from that bench's own C++ client; this gives a same-client check and Assay's response sizes.
#
# Run:  bench/buildbot_api.sh          # N=100000, sqlite, postgresql and Assay: about 2 min
#       N=20000 DBS=sqlite ASSAY_BENCH= bench/buildbot_api.sh                 # quick
# Knobs: N [100000]; DBS ["sqlite postgresql"; empty: none]; ASSAY_BENCH
# [build/bench/assay-bench-dashboard when it exists; empty: skip]; BUDGET_S [570];
# RESULTS_DIR [unset: the JSON is not kept]; KEEP_WORK [0]; PG_BIN [newest
# /usr/lib/postgresql/*/bin].
# Loopback only. Installs `buildbot` (and python3-psycopg2 for PostgreSQL) with apt-get when
# missing. Every process it starts is tracked by PID and stopped on exit, on errors and on
# Ctrl-C or TERM.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY=/usr/bin/python3
HELPER="$HERE/buildbot_api.py"
N="${N:-100000}"
DBS="${DBS-sqlite postgresql}" # empty: Assay only
if [ -z "${ASSAY_BENCH+x}" ] && [ -x "$ROOT/build/bench/assay-bench-dashboard" ]; then
  ASSAY_BENCH="$ROOT/build/bench/assay-bench-dashboard"
fi
ASSAY_BENCH="${ASSAY_BENCH:-}"
BUDGET_S="${BUDGET_S:-570}"
RESULTS_DIR="${RESULTS_DIR:-}"
KEEP_WORK="${KEEP_WORK:-0}"
T0=$(date +%s)

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() {
  log "FATAL: $*"
  exit 1
}
left() { echo $((T0 + BUDGET_S - $(date +%s))); }

# ------------------------------------------------------------------ packages
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    timeout 300 apt-get update -q >/dev/null || return 1
    APT_UPDATED=1
  fi
  timeout 300 apt-get install -y -q "$@" >/dev/null
}
if [ ! -x /usr/bin/buildbot ]; then
  log "installing buildbot with apt-get"
  apt_install buildbot || die "apt-get install buildbot failed"
fi
BB_VERSION="$(/usr/bin/buildbot --version | sed -n 's/^Buildbot version: //p')"
case "$BB_VERSION" in 3.7*) ;; *) log "WARNING: expected Buildbot 3.7, got '$BB_VERSION'" ;; esac
if [[ " $DBS " == *" postgresql "* ]]; then
  if ! $PY -c 'import psycopg2' 2>/dev/null; then
    log "installing python3-psycopg2 with apt-get"
    apt_install python3-psycopg2 || { log "no psycopg2: PostgreSQL skipped"; DBS="${DBS//postgresql/}"; }
  fi
  if [ -z "${PG_BIN:-}" ]; then
    PG_BIN="$(find /usr/lib/postgresql -maxdepth 3 -name initdb -path '*/bin/*' 2>/dev/null |
      sort -V | tail -1 | xargs -r dirname)"
  fi
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    log "no PostgreSQL server binaries: PostgreSQL skipped"
    DBS="${DBS//postgresql/}"
  fi
fi

# ------------------------------------------------------------------ processes
WORK="$(mktemp -d -t bbapi.XXXXXX)"
PIDS=()
STOPPED_PID="" # a bench process paused with SIGSTOP, to be continued on exit

descendants() { # children first, by parent PID (never by name)
  local c
  for c in $(pgrep -P "$1" 2>/dev/null || true); do
    descendants "$c"
    echo "$c"
  done
}

stop_pid() { # $1 pid [$2 signal, default TERM]: signal, wait up to 15 s, then KILL it and its children
  local pid=$1 sig=${2:-TERM} kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids="$(descendants "$pid")"
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not exit on $sig: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

stop_all() { # reverse start order
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  PIDS=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${CLIENT_PID:-}" ]; then stop_pid "$CLIENT_PID"; fi
  if [ -n "$STOPPED_PID" ]; then kill -CONT "$STOPPED_PID" 2>/dev/null || true; fi
  if [ -n "${ASSAY_PID:-}" ]; then stop_assay_bench; fi
  stop_all
  if [ "$KEEP_WORK" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CLIENT_PID=""
bg() { # run a command in the background and wait for it, so that a TERM is handled at once
  local rc=0
  "$@" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=""
  return "$rc"
}

wait_for() { # $1 seconds, $2 pid that must stay alive, then a command to poll every 0.2 s
  local secs=$1 pid=$2 i
  shift 2
  for i in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# ------------------------------------------------------------------ www stub
# Debian ships no `buildbot-www` (the JS UI, Debian bug #883529), and Buildbot's www service
# will not start without a `base` plugin. This registers an empty one; /api/v2 is Buildbot's
# own code and is not touched. (Same approach as shared/peers/buildbot/wwwstub.)
STUB="$WORK/wwwstub"
mkdir -p "$STUB/buildbot_www/static" "$STUB/buildbot_www-$BB_VERSION.egg-info"
echo "${BB_VERSION%%-*}" >"$STUB/buildbot_www/VERSION"
echo '<!doctype html><title>no UI</title>' >"$STUB/buildbot_www/static/index.html"
cat >"$STUB/buildbot_www/__init__.py" <<'EOF'
# Empty stand-in for the buildbot-www UI package (no UI is served).
from buildbot.www.plugin import Application
ep = Application(__name__, "no UI (bench stub)")
EOF
printf '[buildbot.www]\nbase = buildbot_www:ep\n' >"$STUB/buildbot_www-$BB_VERSION.egg-info/entry_points.txt"
echo buildbot_www >"$STUB/buildbot_www-$BB_VERSION.egg-info/top_level.txt"
printf 'Metadata-Version: 2.1\nName: buildbot-www\nVersion: %s\n' "${BB_VERSION%%-*}" \
  >"$STUB/buildbot_www-$BB_VERSION.egg-info/PKG-INFO"

# ------------------------------------------------------------------ PostgreSQL (optional)
AS_PG=() # run as the user `postgres` when root (PostgreSQL refuses root)
if [ "$(id -u)" = 0 ]; then AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups); fi

PG_PORT=""
start_pg() { # $1 dir; PostgreSQL's default settings (durable), as assay-bench-dashboard
  local d=$1 pid
  mkdir -p "$d"
  chmod 0755 "$WORK"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$d"; fi
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$d/data" -A trust -U postgres -E UTF8 --no-locale >"$d/initdb.log" 2>&1 ||
    {
      cat "$d/initdb.log" >&2
      return 1
    }
  PG_PORT=$(free_port)
  "${AS_PG[@]}" "$PG_BIN/postgres" -D "$d/data" -p "$PG_PORT" -k "$d" -c listen_addresses=127.0.0.1 \
    >"$d/postgres.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_for 60 "$pid" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ||
    {
      tail -n 20 "$d/postgres.log" >&2
      return 1
    }
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 'CREATE DATABASE buildbot' >/dev/null
}

# ------------------------------------------------------------------ Buildbot
RESULT_FILES=()

run_buildbot() { # $1 = sqlite | postgresql
  local db=$1 d="$WORK/bb-$1" url www pb mpid t
  case "$db" in sqlite | postgresql) ;; *)
    log "unknown database '$db' (sqlite or postgresql)"
    return 1
    ;;
  esac
  log "buildbot on $db: $(cut -d' ' -f1-3 /proc/loadavg) load average before"
  mkdir -p "$d"
  if [ "$db" = postgresql ]; then
    start_pg "$d/pg" || return 1
    url="postgresql://postgres@127.0.0.1:$PG_PORT/buildbot"
  else
    url="sqlite:///$d/master/state.sqlite"
  fi
  /usr/bin/buildbot create-master -q --db="$url" "$d/master" >"$d/create-master.log" 2>&1 ||
    {
      cat "$d/create-master.log" >&2
      return 1
    }
  t=$(date +%s)
  bg $PY "$HELPER" load "$url" "$N" >&2
  log "buildbot on $db: database filled in $(($(date +%s) - t)) s"
  www=$(free_port)
  pb=$(free_port)
  cat >"$d/master/master.cfg" <<EOF
# Bench master: 10 builders (app0..app9, the data's 10 "repositories"), one worker that never
# connects, no change source, a force scheduler only (Buildbot wants a scheduler per builder).
# Only the REST API is used.
from buildbot.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('w1', 'not-used')]
c['protocols'] = {'pb': {'port': 'tcp:$pb:interface=127.0.0.1'}}
c['change_source'] = []
c['schedulers'] = [schedulers.ForceScheduler(name='force',
                                            builderNames=['app%d' % i for i in range(10)])]
c['builders'] = [util.BuilderConfig(name='app%d' % i, workernames=['w1'],
                                    factory=util.BuildFactory([steps.ShellCommand(command='true')]))
                 for i in range(10)]
c['www'] = {'port': 'tcp:$www:interface=127.0.0.1', 'plugins': {}}  # default http.log kept
c['db'] = {'db_url': '$url'}
c['title'] = 'api-bench'
c['buildbotURL'] = 'http://127.0.0.1:$www/'
c['buildbotNetUsageData'] = None
EOF
  (cd "$d" && PYTHONPATH="$STUB" PYTHONDONTWRITEBYTECODE=1 exec /usr/bin/buildbot start --nodaemon master) \
    >"$d/master.out" 2>&1 &
  mpid=$!
  PIDS+=("$mpid")
  wait_for 90 "$mpid" grep -q "BuildMaster is running" "$d/master/twistd.log" ||
    {
      tail -n 30 "$d/master/twistd.log" "$d/master.out" >&2
      return 1
    }
  # The loaded builder ids must be the ones the master uses.
  curl -sf "http://127.0.0.1:$www/api/v2/builders/4" | grep -q '"name": "app3"' ||
    die "builder 4 is not app3"
  log "buildbot on $db: master pid $mpid on 127.0.0.1:$www; measuring"
  local b="order=-buildid&limit=50" deep=$((N / 2))
  NAME="buildbot 3.7, $db" MEASURE_BUDGET_S=$(($(left) - 20)) bg $PY "$HELPER" measure \
    "http://127.0.0.1:$www/api/v2" "$d/result.json" \
    "newest 50=/builds?$b" \
    "one builder (app3)=/builders/4/builds?order=-number&limit=50" \
    "failed only=/builds?$b&results__eq=2" \
    "$deep deep (offset)=/builds?$b&offset=$deep" \
    "newest 50 + 4 properties=/builds?$b&property=branch&property=revision&property=repository&property=event" \
    "one build by id (floor)=/builds/$deep" >&2
  RESULT_FILES+=("$d/result.json")
  log "buildbot on $db: $(cut -d' ' -f1-3 /proc/loadavg) load average after"
  if grep -q "not backed by db" "$d/master/twistd.log"; then
    log "NOTE: Buildbot logged a query it could not limit in SQL:"
    grep "not backed by db" "$d/master/twistd.log" | head -3 >&2
  fi
  stop_all
}

# ------------------------------------------------------------------ Assay, same client
ASSAY_PID=""
ASSAY_PG_PORT=""
stop_assay_bench() {
  # The bench stops its server and PostgreSQL itself when it ends normally (a signal would skip
  # its destructors), and with LOG_MIB 0 it ends soon after its timed calls: wait for that.
  local i pg
  for i in $(seq 1 450); do
    kill -0 "$ASSAY_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$ASSAY_PID" 2>/dev/null; then
    log "assay bench $ASSAY_PID still running after 90 s: KILL"
    stop_pid "$ASSAY_PID" KILL # its server dies with it (PR_SET_PDEATHSIG)
    # Its PostgreSQL was daemonized by pg_ctl: find it by its port and stop it by PID.
    if [ -n "$ASSAY_PG_PORT" ]; then
      pg=$(ss -Hltnp "sport = :$ASSAY_PG_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
      if [ -n "$pg" ]; then stop_pid "$pg" INT; fi
    fi
  else
    wait "$ASSAY_PID" || log "assay bench exited with status $?"
  fi
  ASSAY_PID=""
}

run_assay() {
  local d="$WORK/assay" srv port base cookie="" i
  mkdir -p "$d"
  log "assay: $(cut -d' ' -f1-3 /proc/loadavg) load average before; starting $ASSAY_BENCH $N 0"
  # Line-buffered, so that its progress lines can be waited for.
  stdbuf -oL "$ASSAY_BENCH" "$N" 0 >"$d/bench.out" 2>&1 &
  ASSAY_PID=$!
  # Its server is a child process; its port is in its command line.
  srv=""
  for i in $(seq 1 300); do
    for srv in $(descendants "$ASSAY_PID"); do
      if tr '\0' ' ' 2>/dev/null <"/proc/$srv/cmdline" | grep -q 'assay-server .*--http-listen'; then
        break 2
      fi
      srv=""
    done
    kill -0 "$ASSAY_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$srv" ] || {
    cat "$d/bench.out" >&2
    log "assay: no server found"
    return 1
  }
  port=$(tr '\0' '\n' <"/proc/$srv/cmdline" | grep -A1 -x -- '--http-listen' | tail -1 | sed 's/.*://')
  ASSAY_PG_PORT=$(tr '\0' '\n' <"/proc/$srv/cmdline" | grep -A1 -x -- '--database-url' | tail -1 |
    sed -n 's|.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p')
  base="http://127.0.0.1:$port"
  # The bench prints this header once the table is filled and its user alice has logged in.
  # (Polling the login instead would fail until alice exists, and failed logins get the
  # address refused for a while, the bench's own login included.)
  wait_for 300 "$ASSAY_PID" grep -q '^GET /api/v1/pipelines' "$d/bench.out" || true
  if grep -q '^GET /api/v1/pipelines' "$d/bench.out"; then
    cookie=$($PY "$HELPER" login "$base" alice pw-alice-123) || cookie=""
  fi
  [ -n "$cookie" ] || {
    cat "$d/bench.out" >&2
    log "assay: login never worked"
    return 1
  }
  kill -STOP "$ASSAY_PID"
  STOPPED_PID=$ASSAY_PID
  log "assay: bench pid $ASSAY_PID paused, server on $base; measuring"
  local deep=$((N / 2))
  if [ "$deep" -lt 2 ]; then deep=2; fi
  # Paused for at most about 25 s: the bench's own HTTP client times out after 30 s.
  COOKIE="$cookie" NAME="assay, postgresql" MEASURE_BUDGET_S=20 CALL_TIMEOUT_S=3 bg $PY "$HELPER" measure \
    "$base/api/v1" "$d/result.json" \
    "newest 50=/pipelines?limit=50" \
    "one repository (app3)=/pipelines?limit=50&repo=acme/app3" \
    "failed only=/pipelines?limit=50&state=failed" \
    "$deep deep (cursor)=/pipelines?limit=50&cursor=$deep" >&2 || true
  kill -CONT "$ASSAY_PID"
  STOPPED_PID=""
  log "assay: $(cut -d' ' -f1-3 /proc/loadavg) load average after"
  RESULT_FILES+=("$d/result.json")
  stop_assay_bench
}

# ------------------------------------------------------------------ run
log "Buildbot $BB_VERSION, N=$N, DBS='$DBS', $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "  call                         p50 ms   p95 ms   max ms    bytes   rows" >&2
for db in $DBS; do
  if [ "$(left)" -lt 120 ]; then
    log "SKIP buildbot on $db: $(left) s of budget left"
    continue
  fi
  run_buildbot "$db" || { log "buildbot on $db failed"; stop_all; }
done
if [ -n "$ASSAY_BENCH" ]; then
  if [ "$(left)" -lt 90 ]; then
    log "SKIP assay: $(left) s of budget left"
  else
    run_assay || log "assay part failed"
  fi
fi

echo
echo "$(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), N=$N"
$PY "$HELPER" table "${RESULT_FILES[@]}"
if [ -n "$RESULTS_DIR" ]; then
  mkdir -p "$RESULTS_DIR"
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  for f in "${RESULT_FILES[@]}"; do
    cp "$f" "$RESULTS_DIR/buildbot-api-$STAMP-$(basename "$(dirname "$f")").json"
  done
fi
log "done in $(($(date +%s) - T0)) s"
