#!/usr/bin/env bash
# Scheduler benchmarks (see bench/README.md, "Scheduler benchmarks"), on a PostgreSQL of its
# own in a temp dir:
#   1. dispatch rate: assay-bench-dispatch (1,000 in-memory agents, 20,000 queued jobs), then
#      pgbench (TPC-B-like) against the same PostgreSQL
#   2. lost-agent detection: bench/lost_agent.py (real server + 2 real agents; SIGKILL, SIGSTOP)
#   3. 10,000 simulated agents with heartbeats: assay-bench-swarm against a real assay-server
# Prints one table and writes bench/results/sched-<UTC>.{json,txt}. Every wait is bounded;
# every process started here is stopped by PID on exit.
#   bench/sched.sh                          # everything (~8 min on 2 cores)
#   PARTS="dispatch" bench/sched.sh         # one part (dispatch, lost, swarm)
#   QUICK=1 bench/sched.sh                  # smoke run: smaller counts, shorter windows
# Settings (environment): BUILD_DIR (build), RESULTS_DIR (bench/results), PARTS,
#   DISPATCH_AGENTS (1000), DISPATCH_JOBS (20000), DISPATCH_WORKERS (4), DISPATCH_MODE (loop),
#   PACED_RATE (200; 0 skips the paced phase), PG_STATS (1: pg_stat_statements breakdown),
#   PGBENCH_SECONDS (15), PGBENCH_SCALE (4), LOST_REPS (3), LOST_MODES (kill,stop),
#   LOST_SHORT_FLAGS ("--lease 6s --reconnect-grace 1s --heartbeat-interval 2s"; "" skips),
#   SWARM_AGENTS (10000), SWARM_CHANNELS (20), SWARM_WINDOW (60s), SWARM_HEARTBEAT (10s),
#   KEEP_WORK (0).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/deploy/lib/deps.sh"
source "$ROOT/deploy/lib/pg.sh"

QUICK=${QUICK:-0}
HANDOUT_SLOTS=${HANDOUT_SLOTS:-20}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
PARTS=${PARTS:-"dispatch lost swarm"}
DISPATCH_AGENTS=${DISPATCH_AGENTS:-1000}
DISPATCH_JOBS=${DISPATCH_JOBS:-$(q 20000 5000)}
DISPATCH_WORKERS=${DISPATCH_WORKERS:-4}
DISPATCH_MODE=${DISPATCH_MODE:-loop}
PACED_RATE=${PACED_RATE:-200}
PG_STATS=${PG_STATS:-1}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-$(q 15 5)}
PGBENCH_SCALE=${PGBENCH_SCALE:-4}
LOST_REPS=${LOST_REPS:-$(q 3 1)}
LOST_MODES=${LOST_MODES:-kill,stop}
LOST_SHORT_FLAGS=${LOST_SHORT_FLAGS---lease 6s --reconnect-grace 1s --heartbeat-interval 2s}
SWARM_AGENTS=${SWARM_AGENTS:-$(q 10000 2000)}
SWARM_CHANNELS=${SWARM_CHANNELS:-20}
SWARM_WINDOW=${SWARM_WINDOW:-$(q 60s 15s)}
SWARM_HEARTBEAT=${SWARM_HEARTBEAT:-10s}
KEEP_WORK=${KEEP_WORK:-0}
T0=$(date +%s)

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

install_deps
build_assay "$ROOT" "$BUILD_DIR" assay-server assay-agent assay-bench-dispatch assay-bench-swarm \
  >/dev/null || die "build failed"
command -v pgbench >/dev/null || die "pgbench not found (postgresql-client)"

WORK=$(mktemp -d /tmp/assay-sched.XXXXXX)
chmod 755 "$WORK"
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -CONT "$pid" 2>/dev/null
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do stop_pid "${PIDS[$i]}"; done
  pg_stop "$WORK/pg"
  if [ "$KEEP_WORK" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Runs a command in the background (so that cleanup can stop it by PID), killed after $1
# seconds (SIGTERM, SIGKILL 10 s later), and waits for it.
bounded() {
  local limit=$1 pid rc; shift
  timeout --kill-after=10 "$limit" "$@" &
  pid=$!; PIDS+=("$pid")
  wait "$pid"; rc=$?
  return $rc
}

PGPORT=$(free_port)
pg_start "$WORK/pg" "$PGPORT" || die "PostgreSQL did not start"
if [ "$PG_STATS" = 1 ]; then
  psql -Xq "$(pg_dsn "$PGPORT")" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" \
    && _pg_as_owner "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -t 60 restart >/dev/null \
    || die "PostgreSQL restart with pg_stat_statements failed"
fi
PGPID=$(head -1 "$WORK/pg/postmaster.pid")
PGVER=$(psql -XAtq "$(pg_dsn "$PGPORT")" -c "SHOW server_version")
log "work dir $WORK; PostgreSQL $PGVER on $PGPORT (pid $PGPID); load $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ 1. dispatch + pgbench
if [[ " $PARTS " == *" dispatch "* ]]; then
  log "1. dispatch: $DISPATCH_JOBS jobs, $DISPATCH_AGENTS agents"
  stats=(); [ "$PG_STATS" = 1 ] && stats=(--pg-stats)
  bounded 600 "$BUILD_DIR/bench/assay-bench-dispatch" --dsn "$(pg_dsn "$PGPORT")" \
    --agents "$DISPATCH_AGENTS" --jobs "$DISPATCH_JOBS" --workers "$DISPATCH_WORKERS" \
    --mode "$DISPATCH_MODE" --paced-rate "$PACED_RATE" --pg-pid "$PGPID" "${stats[@]}" \
    > "$WORK/dispatch.txt" || log "dispatch bench failed (rc $?)"
  grep -v '^RESULT ' "$WORK/dispatch.txt" >&2
  grep '^RESULT ' "$WORK/dispatch.txt" | tail -1 | cut -c8- > "$WORK/dispatch.json"
  # 1a. The same backlog handed out with nothing finishing: the scheduler's own rate (queue
  # read, placement, batch claim, send), without the agents' MarkRunning/Finish writes.
  log "1a. hand-out only: $DISPATCH_JOBS jobs, $DISPATCH_AGENTS agents x $HANDOUT_SLOTS slots"
  bounded 600 "$BUILD_DIR/bench/assay-bench-dispatch" --dsn "$(pg_dsn "$PGPORT")" \
    --agents "$DISPATCH_AGENTS" --slots "$HANDOUT_SLOTS" --finish false --jobs "$DISPATCH_JOBS" \
    --mode "$DISPATCH_MODE" --paced-rate 0 --pg-pid "$PGPID" \
    > "$WORK/handout.txt" || log "hand-out bench failed (rc $?)"
  grep -v '^RESULT ' "$WORK/handout.txt" >&2
  grep '^RESULT ' "$WORK/handout.txt" | tail -1 | cut -c8- > "$WORK/handout.json"
  PGOPTIONS="-c client_min_messages=warning" psql -Xq "$(pg_dsn "$PGPORT")" -c "DROP DATABASE IF EXISTS assay_bench_dispatch" \
    -c "DROP DATABASE IF EXISTS pgbench_scratch" -c "CREATE DATABASE pgbench_scratch" >/dev/null
  log "1b. pgbench -i -s $PGBENCH_SCALE; pgbench -c 4 -j 2 -T $PGBENCH_SECONDS"
  pgbench -i -q -s "$PGBENCH_SCALE" -h 127.0.0.1 -p "$PGPORT" -U postgres pgbench_scratch \
    > "$WORK/pgbench-init.txt" 2>&1 || log "pgbench -i failed"
  bounded $(( PGBENCH_SECONDS + 60 )) pgbench -c 4 -j 2 -T "$PGBENCH_SECONDS" -h 127.0.0.1 \
    -p "$PGPORT" -U postgres pgbench_scratch > "$WORK/pgbench.txt" 2>&1 || log "pgbench failed"
  grep -E '^(tps|latency average|number of transactions actually)' "$WORK/pgbench.txt" >&2
  psql -Xq "$(pg_dsn "$PGPORT")" -c "DROP DATABASE IF EXISTS pgbench_scratch" >/dev/null
fi

# ------------------------------------------------------------------ 2. lost agent
if [[ " $PARTS " == *" lost "* ]]; then
  log "2. lost-agent detection: $LOST_REPS repetition(s) of $LOST_MODES"
  series=(--series "default=")
  [ -n "$LOST_SHORT_FLAGS" ] && series+=(--series "short=$LOST_SHORT_FLAGS")
  mkdir -p "$WORK/lost"
  bounded 1500 python3 "$ROOT/bench/lost_agent.py" --build-dir "$BUILD_DIR" --pg-port "$PGPORT" \
    --work "$WORK/lost" --reps "$LOST_REPS" --modes "$LOST_MODES" "${series[@]}" \
    --out "$WORK/lost.json" > "$WORK/lost.txt" || log "lost-agent bench failed (rc $?)"
  cat "$WORK/lost.txt" >&2
fi

# ------------------------------------------------------------------ 3. swarm
if [[ " $PARTS " == *" swarm "* ]]; then
  log "3. swarm: $SWARM_AGENTS simulated agents over $SWARM_CHANNELS channels"
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
  PGOPTIONS="-c client_min_messages=warning" psql -Xq "$(pg_dsn "$PGPORT")" -c "DROP DATABASE IF EXISTS bench_swarm" \
    -c "CREATE DATABASE bench_swarm" >/dev/null
  HTTP=$(free_port); GRPC=$(free_port)
  mkdir -p "$WORK/swarm"
  ASSAY_ADMIN_TOKEN=bench-admin-token-0123456789abcdef ASSAY_AGENT_TOKEN=bench-agent-token \
    "$BUILD_DIR/server/assay-server" --http-listen "127.0.0.1:$HTTP" --grpc-listen "127.0.0.1:$GRPC" \
    --database-url "$(pg_dsn "$PGPORT" bench_swarm)" --data-dir "$WORK/swarm/server" \
    --allow-shared-agent-token --grpc-insecure \
    --heartbeat-interval "$SWARM_HEARTBEAT" --log-level warn > "$WORK/swarm/server.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for i in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$HTTP/healthz" 2>/dev/null && break
    sleep 0.1
  done
  ASSAY_TOKEN=bench-agent-token bounded 900 "$BUILD_DIR/bench/assay-bench-swarm" \
    --server "127.0.0.1:$GRPC" --agents "$SWARM_AGENTS" --channels "$SWARM_CHANNELS" \
    --heartbeat-interval "$SWARM_HEARTBEAT" --window "$SWARM_WINDOW" --server-pid "$SPID" \
    > "$WORK/swarm.txt" || log "swarm bench failed (rc $?)"
  grep -v '^RESULT ' "$WORK/swarm.txt" >&2
  grep '^RESULT ' "$WORK/swarm.txt" | tail -1 | cut -c8- > "$WORK/swarm.json"
  curl -fsS "http://127.0.0.1:$HTTP/healthz" > "$WORK/swarm/healthz.json" 2>/dev/null
  kill -0 "$SPID" 2>/dev/null || log "assay-server exited during the swarm run"
  grep -c . "$WORK/swarm/server.log" > "$WORK/swarm/log-lines.txt"
  [ -s "$WORK/swarm/server.log" ] && { log "server log (warn and above), last lines:"; tail -5 "$WORK/swarm/server.log" >&2; }
  stop_pid "$SPID"
fi

# ------------------------------------------------------------------ table
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$RESULTS_DIR/sched-$STAMP.json"
python3 "$ROOT/bench/sched_report.py" "$WORK" "$OUT" "$(git -C "$ROOT" rev-parse --short HEAD)" \
  "$PGVER" "$LOAD_START" "$(( $(date +%s) - T0 ))" | tee "${OUT%.json}.txt"
log "raw results: $OUT ; total wall time $(( $(date +%s) - T0 ))s"
