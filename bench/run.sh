#!/usr/bin/env bash
# Assay under the webhook benchmark protocol of ../shared/peers/buildbot/README.md, so that
# its figures stand next to a real Buildbot 3.7 measured the same way. See bench/README.md.
#   bench/run.sh                     # latency (30), bursts of 200 with 1 and 4 agents
#   N_LAT=5 N_TP=20 bench/run.sh     # quick smoke run
# Settings: N_LAT (30), N_TP (200), W_LIST ("1 4"), BUILD_DIR (build), PEER_DIR
# (../shared/peers/buildbot), RESULTS_DIR (bench/results), KEEP_WORK (0).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/deploy/lib/deps.sh"
source "$ROOT/deploy/lib/pg.sh"

N_LAT=${N_LAT:-30}
N_TP=${N_TP:-200}
W_LIST=${W_LIST:-"1 4"}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peers/buildbot}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
KEEP_WORK=${KEEP_WORK:-0}
HOOKBENCH="$PEER_DIR/hookbench.py"
BBTOOL="$PEER_DIR/bbtool.py"
SECRET=bench-secret-$$
ADMIN=bench-admin-token-0123456789abcdef
AGENT_TOKEN=bench-agent-token
T0=$(date +%s)

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ -f "$HOOKBENCH" ] || die "peer client not found at $HOOKBENCH (set PEER_DIR)"

install_deps
build_assay "$ROOT" "$BUILD_DIR" assay-server assay-agent >/dev/null || die "build failed"

WORK=$(mktemp -d /tmp/assay-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
stop_all() {
  local i
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do stop_pid "${PIDS[$i]}"; done
  PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${CLIENT_PID:-}" ] && stop_pid "$CLIENT_PID"
  stop_all
  pg_stop "$WORK/pg"
  if [ "$KEEP_WORK" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------------ repository
# As the protocol says: one tiny commit, then N_TP+8 empty commits (same tree, new SHA each),
# served as a bare repo over file://. The tiny commit also holds Assay's pipeline file, whose
# one job stamps the time first, then the job id, the requested SHA, the executor and HEAD.
NCOMMITS=$(( N_TP + 8 ))
(
  set -e
  cd "$WORK"
  git init -q -b main src
  cd src
  git config user.email bench@example.invalid
  git config user.name bench
  echo tiny > README
  cat > .assay.yml <<'YML'
jobs:
  stamp:
    steps:
      - run: echo "$(date +%s.%N) $ASSAY_JOB_ID $ASSAY_COMMIT_SHA $ASSAY_AGENT_NAME $(git rev-parse HEAD)" >> "$ASSAY_WORKSPACE/../../../results.txt"
YML
  git add README .assay.yml
  git commit -q -m "tiny commit"
  tree=$(git rev-parse "HEAD^{tree}"); p=$(git rev-parse HEAD)
  for i in $(seq 1 "$NCOMMITS"); do
    p=$(GIT_AUTHOR_DATE="@$((1700000000+i)) +0000" GIT_COMMITTER_DATE="@$((1700000000+i)) +0000" \
        git commit-tree "$tree" -p "$p" -m "bench $i")
    echo "$p"
  done > "$WORK/shas.txt"
  git update-ref refs/heads/main "$p"
  cd "$WORK"
  git clone -q --bare src repo.git
) || die "repo setup failed"
REPO_URL="file://$WORK/repo.git"

PGPORT=$(free_port)
pg_start "$WORK/pg" "$PGPORT" || die "PostgreSQL did not start"
log "work dir $WORK; repo $REPO_URL; PostgreSQL on $PGPORT"

# ------------------------------------------------------------------ cluster per phase
SPID=""; APIDS=(); HTTP=""; PD=""
start_cluster() {  # $1=phase dir $2=W
  PD=$1; local W=$2 db i grpc
  mkdir -p "$PD"
  db="bench_$(basename "$PD" | tr -c 'a-z0-9\n' _)"
  PGOPTIONS="-c client_min_messages=warning" psql "$(pg_dsn "$PGPORT")" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  HTTP=$(free_port); grpc=$(free_port)
  # Tokens through the environment: the binaries refuse them on the command line.
  ASSAY_ADMIN_TOKEN="$ADMIN" ASSAY_AGENT_TOKEN="$AGENT_TOKEN" \
    "$BUILD_DIR/server/assay-server" --http-listen "127.0.0.1:$HTTP" --grpc-listen "127.0.0.1:$grpc" \
    --database-url "$(pg_dsn "$PGPORT" "$db")" --data-dir "$PD/server" \
    --allow-shared-agent-token --grpc-insecure --log-level warn \
    > "$PD/server.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for i in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$HTTP/healthz" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$HTTP/api/v1/repos" \
    -H "Authorization: Bearer $ADMIN" \
    -d "{\"name\":\"bench/bench\",\"clone_url\":\"$REPO_URL\",\"webhook_secret\":\"$SECRET\"}" \
    || { tail -20 "$PD/server.log" >&2; return 1; }
  APIDS=()
  for i in $(seq 1 "$W"); do
    # Steps do not inherit the agent's environment: they append to $PD/results.txt, three
    # levels above their workspace ($PD/wN/jobs/job-ID-ATTEMPT). As root, jobs run as root
    # (the bench's own trusted job).
    ASSAY_TOKEN="$AGENT_TOKEN" "$BUILD_DIR/agent/assay-agent" --server "127.0.0.1:$grpc" \
      --grpc-insecure --name "w$i" --slots 1 --work-dir "$PD/w$i" \
      $([ "$(id -u)" = 0 ] && echo --job-user root) \
      > "$PD/w$i.log" 2>&1 &
    APIDS+=("$!"); PIDS+=("$!")
  done
  for i in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$HTTP/healthz" 2>/dev/null | grep -q "\"agents\":$W}" && return 0
    sleep 0.1
  done
  log "agents did not connect"; return 1
}

CLIENT_PID=""
hook() {  # $1=mode $2=shas $3=n $4=out [extra]
  local mode=$1 shas=$2 n=$3 out=$4 rc; shift 4
  python3 "$HOOKBENCH" "$mode" --hook-url "http://127.0.0.1:$HTTP/hooks/github" --secret "$SECRET" \
    --shas "$shas" --n "$n" --results "$PD/results.txt" \
    --idle-url "http://127.0.0.1:$HTTP/healthz" --idle-regex '"active":0\b' \
    --repo-name bench --repo-clone-url "$REPO_URL" --out "$out" "$@" > /dev/null &
  CLIENT_PID=$!
  wait "$CLIENT_PID"; rc=$?
  CLIENT_PID=""
  return $rc
}
rss_json() { python3 "$BBTOOL" rss "$1"; }
HWM_RESET=yes
phase_dirs=()

phase() {  # phase NAME KIND W N
  local name=$1 kind=$2 W=$3 n=$4 d warm idle_s idle_a p
  d="$WORK/$name"
  log "phase $name: server + $W agent(s)"
  start_cluster "$d" "$W" || { log "phase $name: start failed"; stop_all; return 0; }
  sleep 2
  idle_s=$(rss_json "$SPID"); idle_a=$(rss_json "${APIDS[0]}")
  if [ "$kind" = latency ]; then warm=1; else warm=$W; fi
  sed -n "1,${warm}p" "$WORK/shas.txt" > "$d/warm.txt"
  sed -n "$(( warm + 1 )),\$p" "$WORK/shas.txt" > "$d/shas.txt"
  hook burst "$d/warm.txt" "$warm" "$d/warm.json" --burst-timeout 60 || log "warm-up failed"
  sleep 1
  for p in "$SPID" "${APIDS[@]}"; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || HWM_RESET=no; done
  for p in "$SPID" "${APIDS[@]}"; do rss_json "$p"; done > "$d/proc-before.jsonl"
  log "phase $name: measuring ($kind, n=$n, W=$W)"
  if [ "$kind" = latency ]; then
    hook latency "$d/shas.txt" "$n" "$d/client.json" --phase-timeout 240 --per-job-timeout 30 \
      || log "latency client failed"
  else
    hook burst "$d/shas.txt" "$n" "$d/client.json" --burst-timeout 240 || log "burst client failed"
  fi
  for p in "$SPID" "${APIDS[@]}"; do rss_json "$p"; done > "$d/proc-after.jsonl"
  psql "$(pg_dsn "$PGPORT" "bench_$(basename "$d" | tr -c 'a-z0-9\n' _)")" -tAc \
    "SELECT json_build_object('pipelines', (SELECT count(*) FROM pipelines), 'jobs', (SELECT count(*) FROM jobs), 'succeeded', (SELECT count(*) FROM jobs WHERE state='succeeded'), 'attempts', (SELECT count(*) FROM job_attempts), 'deliveries', (SELECT count(*) FROM webhook_deliveries))" \
    > "$d/server.json" 2>/dev/null || echo '{}' > "$d/server.json"
  cat > "$d/phase.json" <<JSON
{"name": "$name", "kind": "$kind", "workers": $W, "warmup": $warm,
 "rss": {"server": {"idle": $idle_s}, "agent1": {"idle": $idle_a}}}
JSON
  phase_dirs+=("$d")
  stop_all
}

phase latency latency 1 "$N_LAT"
for W in $W_LIST; do phase "tp-w$W" burst "$W" "$N_TP"; done

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$RESULTS_DIR/run-$STAMP.json"
python3 "$ROOT/bench/report.py" collect "$OUT" "$HWM_RESET" "$(git -C "$ROOT" rev-parse --short HEAD)" "${phase_dirs[@]}"
python3 "$ROOT/bench/report.py" table "$OUT" | tee "${OUT%.json}.txt"
log "raw results: $OUT ; total wall time $(( $(date +%s) - T0 ))s"
