#!/usr/bin/env bash
# Starts Assay on this machine and runs a sample pipeline:
#   deploy/quickstart.sh          # install packages, build, start PostgreSQL (local data dir),
#                                 # assay-server and one assay-agent, push a sample repo, show its log
#   deploy/quickstart.sh stop     # stop everything it started
#   deploy/quickstart.sh status
# State lives in $ASSAY_HOME (default: .assay/ in the checkout). Ports: ASSAY_HTTP_PORT (8080),
# ASSAY_GRPC_PORT (9090), ASSAY_PG_PORT (55433).
# The agent talks TLS (pinned to the CA the server makes in its data dir) and enrolls once with
# a one-time token; no token or secret is ever on a command line (docs/agents.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/deploy/lib/deps.sh"
source "$ROOT/deploy/lib/pg.sh"

HOME_DIR=${ASSAY_HOME:-$ROOT/.assay}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
HTTP_PORT=${ASSAY_HTTP_PORT:-8080}
GRPC_PORT=${ASSAY_GRPC_PORT:-9090}
PG_PORT=${ASSAY_PG_PORT:-55433}
SERVER_URL="http://127.0.0.1:$HTTP_PORT"

log() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { echo "quickstart: $*" >&2; exit 1; }

stop_pidfile() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_stop() {
  stop_pidfile "$HOME_DIR/agent.pid"
  stop_pidfile "$HOME_DIR/server.pid"
  pg_stop "$HOME_DIR/pg"
  log "stopped (state kept in $HOME_DIR; delete it for a clean start)"
}

cmd_status() {
  local f
  for f in server agent; do
    if [ -f "$HOME_DIR/$f.pid" ] && kill -0 "$(cat "$HOME_DIR/$f.pid")" 2>/dev/null; then
      echo "$f: running (pid $(cat "$HOME_DIR/$f.pid"))"
    else
      echo "$f: stopped"
    fi
  done
  [ -f "$HOME_DIR/pg/postmaster.pid" ] && echo "postgresql: running on port $PG_PORT" || echo "postgresql: stopped"
}

# GET api/v1/PATH with the admin token, which goes to curl on stdin, not on its command line.
api_get() {
  printf 'header = "Authorization: Bearer %s"\n' "$ASSAY_TOKEN" \
    | curl -fsS -K - "$SERVER_URL/api/v1/$1"
}

wait_http() {  # wait_http URL SECONDS
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

cmd_start() {
  log "installing missing packages (Debian 12)"
  install_deps
  log "building (Ninja, $BUILD_DIR)"
  build_assay "$ROOT" "$BUILD_DIR" assay-server assay-agent assay >/dev/null
  log "building the dashboard (web/, npm ci and esbuild)"
  build_web "$ROOT" >/dev/null || die "cannot build the dashboard (web/): see above"
  mkdir -p "$HOME_DIR"
  chmod 755 "$HOME_DIR"

  # Tokens are made once and kept, so a restart keeps working with the same CLI settings. There
  # is no shared agent token: the agent enrolls with a one-time token (below).
  if [ ! -f "$HOME_DIR/env" ]; then
    umask 077
    cat > "$HOME_DIR/env" <<ENV
ASSAY_SERVER=$SERVER_URL
ASSAY_TOKEN=$(openssl rand -hex 16)
ASSAY_WEBHOOK_SECRET=$(openssl rand -hex 16)
ASSAY_DASHBOARD_PASSWORD=$(openssl rand -hex 12)
ENV
    umask 022
  fi
  # shellcheck disable=SC1091
  source "$HOME_DIR/env"
  export ASSAY_SERVER ASSAY_TOKEN

  log "starting PostgreSQL in $HOME_DIR/pg (port $PG_PORT)"
  pg_start "$HOME_DIR/pg" "$PG_PORT"
  psql "$(pg_dsn "$PG_PORT")" -tAc "SELECT 1 FROM pg_database WHERE datname = 'assay'" | grep -q 1 \
    || psql "$(pg_dsn "$PG_PORT")" -qc "CREATE DATABASE assay" >/dev/null

  stop_pidfile "$HOME_DIR/agent.pid"
  stop_pidfile "$HOME_DIR/server.pid"
  log "starting assay-server (http $HTTP_PORT, grpc $GRPC_PORT)"
  # Tokens go through the environment, never the command line (which every local user, and
  # every job, can read in /proc); assay-server refuses them as flags. No shared agent token
  # (env -u: not even one left in the caller's environment) and no --grpc-insecure: the gRPC
  # listener is TLS, with the CA the server makes in its data dir at first start.
  env -u ASSAY_AGENT_TOKEN ASSAY_ADMIN_TOKEN="$ASSAY_TOKEN" \
    nohup "$BUILD_DIR/server/assay-server" --http-listen "127.0.0.1:$HTTP_PORT" \
    --grpc-listen "127.0.0.1:$GRPC_PORT" --database-url "$(pg_dsn "$PG_PORT" assay)" \
    --data-dir "$HOME_DIR/server" --allow-local-repos --web-dir "$ROOT/web/dist" \
    > "$HOME_DIR/server.log" 2>&1 &
  echo $! > "$HOME_DIR/server.pid"
  wait_http "$SERVER_URL/healthz" 30 || { tail -20 "$HOME_DIR/server.log" >&2; die "server did not start"; }
  local ca="$HOME_DIR/server/tls/ca.pem"
  [ -s "$ca" ] || { tail -20 "$HOME_DIR/server.log" >&2; die "the server made no CA ($ca)"; }

  # The dashboard's first user (docs/access.md): made once with the admin token, its password
  # kept in the 0600 env file. An env file from before users existed gets one now.
  if [ -z "${ASSAY_DASHBOARD_PASSWORD:-}" ]; then
    ASSAY_DASHBOARD_PASSWORD=$(openssl rand -hex 12)
    (umask 077 && echo "ASSAY_DASHBOARD_PASSWORD=$ASSAY_DASHBOARD_PASSWORD" >> "$HOME_DIR/env")
  fi
  if ! api_get users | grep -q '"username":"admin"'; then
    log "creating the dashboard user 'admin'"
    printf '{"username":"admin","password":"%s","role":"admin"}' "$ASSAY_DASHBOARD_PASSWORD" \
      | curl -sS -f -o /dev/null -X POST -H "Content-Type: application/json" \
        -H @<(printf 'Authorization: Bearer %s\n' "$ASSAY_TOKEN") --data-binary @- \
        "$SERVER_URL/api/v1/users" || die "cannot create the dashboard user"
  fi

  log "starting assay-agent 'local-1'"
  # Run as root, the agent refuses to start unless told whom jobs run as: nobody here.
  local job_user=()
  if [ "$(id -u)" = 0 ]; then job_user=(--job-user 65534:65534); fi
  # Steps run in a bubblewrap sandbox when it works here (docs/executors.md); where it does
  # not (user namespaces disabled), on the host, which must be asked for by name.
  local executors=host
  if command -v bwrap >/dev/null && bwrap --ro-bind / / --unshare-all --die-with-parent true \
      2>/dev/null; then
    executors=sandbox
  else
    log "bubblewrap does not work here: jobs run unisolated on the host (--executors host)"
  fi
  # The agent enrolls once, with a one-time token, and keeps its own credential in its work
  # dir; later starts use the credential and need no token (docs/agents.md).
  local cred="$HOME_DIR/agent/agent.credential" enroll=() token_file="$HOME_DIR/local-1.token"
  rm -f "$token_file"
  if [ ! -f "$cred" ]; then
    # A server that still holds a credential for local-1 (the agent's work dir was deleted, the
    # server's database kept) refuses a second enrollment: revoke the lost credential first.
    if "$BUILD_DIR/cli/assay" agents list | awk '$1 == "local-1" { print $3 }' \
        | grep -qx 'enrolled\|disabled'; then
      "$BUILD_DIR/cli/assay" agents revoke local-1 >/dev/null
    fi
    # The token goes to a 0600 file through stdout (the admin token through ASSAY_TOKEN): never
    # on a command line. The CLI's note on stderr is shown only if it fails.
    local err
    err=$(umask 077 && "$BUILD_DIR/cli/assay" agents token create --name local-1 \
      --labels linux --expires 10m 2>&1 > "$token_file") \
      || { rm -f "$token_file"; die "cannot create an enrollment token: $err"; }
    enroll=(--enroll-token-file "$token_file")
  fi
  # env -u ASSAY_TOKEN: the CLI's (exported above) is the admin token, which the agent would
  # take for a shared agent token.
  env -u ASSAY_TOKEN -u ASSAY_AGENT_TOKEN -u ASSAY_ENROLL_TOKEN \
    nohup "$BUILD_DIR/agent/assay-agent" \
    --server "127.0.0.1:$GRPC_PORT" --server-ca "$ca" "${enroll[@]}" \
    --name local-1 --labels linux --slots 2 \
    --work-dir "$HOME_DIR/agent" --allow-local-repos "${job_user[@]}" --executors "$executors" \
    > "$HOME_DIR/agent.log" 2>&1 &
  echo $! > "$HOME_DIR/agent.pid"
  if [ ${#enroll[@]} -gt 0 ]; then
    local i
    for i in $(seq 1 300); do
      [ -f "$cred" ] && break
      kill -0 "$(cat "$HOME_DIR/agent.pid")" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$token_file"  # used (or refused): never needed again
    [ -f "$cred" ] || { tail -20 "$HOME_DIR/agent.log" >&2; die "the agent did not enroll"; }
  fi

  log "creating a sample repository (examples/llm-app: an eval gate) with an .assay.yml"
  local repo="$HOME_DIR/sample-repo"
  if [ ! -d "$repo/.git" ]; then
    git init -q -b main "$repo"
    git -C "$repo" config user.email quickstart@assay.invalid
    git -C "$repo" config user.name "Assay quickstart"
    # The LLM app with an eval gate (examples/llm-app, docs/evals.md): its model server is
    # served by the eval step itself on 127.0.0.1:18080.
    cp -r "$ROOT/examples/llm-app/." "$repo/"
  fi
  echo "run at $(date -u +%FT%TZ)" > "$repo/LAST_RUN"
  git -C "$repo" add -A
  git -C "$repo" commit -qm "quickstart run"
  local sha
  sha=$(git -C "$repo" rev-parse HEAD)
  "$BUILD_DIR/cli/assay" lint "$repo/.assay.yml"

  if ! "$BUILD_DIR/cli/assay" repo list 2>/dev/null | grep -q "quickstart/sample"; then
    # The secret through the environment: never on a command line (/proc/*/cmdline).
    ASSAY_WEBHOOK_SECRET="$ASSAY_WEBHOOK_SECRET" "$BUILD_DIR/cli/assay" repo add quickstart/sample \
      --clone-url "file://$repo" >/dev/null
  fi

  log "sending a signed GitHub push webhook for $sha"
  local body sig resp
  body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","repository":{"full_name":"quickstart/sample","clone_url":"file://%s"},"pusher":{"name":"quickstart"}}' \
    "0000000000000000000000000000000000000000" "$sha" "$repo")
  sig=$(printf '%s' "$body" | ASSAY_WEBHOOK_SECRET="$ASSAY_WEBHOOK_SECRET" python3 -c 'import hmac,os,sys
print(hmac.new(os.environb[b"ASSAY_WEBHOOK_SECRET"], sys.stdin.buffer.read(), "sha256").hexdigest())')
  resp=$(curl -sS -X POST "$SERVER_URL/hooks/github" -H "Content-Type: application/json" \
    -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: quickstart-$sha" \
    -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body")
  echo "    server answered: $resp"

  log "waiting for the pipeline"
  local id="" state="" i
  # The pipeline of this run's commit: after a restart, the newest one may be an earlier run's.
  for i in $(seq 1 300); do
    id=$(api_get "pipelines?limit=10" \
      | python3 -c 'import json,sys; p=[x["id"] for x in json.load(sys.stdin)["pipelines"]
        if x["commit_sha"] == sys.argv[1]]; print(p[0] if p else "")' "$sha")
    if [ -n "$id" ]; then
      state=$(api_get "pipelines/$id" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
      [ "$state" != running ] && break
    fi
    sleep 0.1
  done
  [ -n "$id" ] || die "no pipeline for $sha within 30s (see $HOME_DIR/server.log)"
  "$BUILD_DIR/cli/assay" pipeline "$id"
  local job
  for job in $(api_get "pipelines/$id" \
      | python3 -c 'import json,sys; print(" ".join(str(j["id"]) for j in json.load(sys.stdin)["jobs"]))'); do
    log "log of job $job"
    "$BUILD_DIR/cli/assay" logs "$job"
  done
  cat <<MSG

Assay is running.
  API        $SERVER_URL/api/v1   (token in $HOME_DIR/env)
  Webhooks   $SERVER_URL/hooks/github
  Metrics    $SERVER_URL/metrics
  Health     $SERVER_URL/healthz
  Dashboard  $SERVER_URL/ui/   (user admin, password ASSAY_DASHBOARD_PASSWORD in $HOME_DIR/env)
  Logs       $HOME_DIR/server.log, $HOME_DIR/agent.log
  CLI        source $HOME_DIR/env && export ASSAY_SERVER ASSAY_TOKEN && $BUILD_DIR/cli/assay pipelines
  Stop       deploy/quickstart.sh stop
MSG
  [ "$state" = succeeded ] || die "sample pipeline ended '$state'"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
