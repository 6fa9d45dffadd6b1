#!/usr/bin/env bash
# Self-test of the canary example: two model servers with different settings on port 0,
# their /metrics through `promtool check metrics`, load.py for 3 s, /control turning a good
# version bad and back, the features endpoint, and SIGTERM. Exits non-zero on the first
# failure. Every wait is bounded. Needs python3 (3.11), curl and promtool (Debian: prometheus).
#
#   examples/canary/selftest.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
TMP="$(mktemp -d)"
PIDS=()

cleanup() {
  # Only the servers this script started, by pid: TERM, up to 1 s, then KILL.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 20); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# json_get FILE EXPR: prints the Python expression EXPR evaluated with d = the JSON in FILE.
json_get() {
  "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(eval("(" + sys.argv[2] + ")"))' "$1" "$2"
}

# start NAME ARGS...: starts a server on port 0, waits (10 s at most) for its ready file and
# sets PORT_<NAME> and PID_<NAME>.
start() {
  local name="$1"; shift
  "$PY" "$HERE/model_server.py" --host 127.0.0.1 --port 0 --ready-file "$TMP/$name.port" "$@" \
    2>"$TMP/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    [ -s "$TMP/$name.port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "server $name exited: $(cat "$TMP/$name.log")"
    sleep 0.1
  done
  [ -s "$TMP/$name.port" ] || fail "server $name wrote no ready file within 10 s"
  printf -v "PORT_$name" '%s' "$(cat "$TMP/$name.port")"
  printf -v "PID_$name" '%s' "$pid"
}

# http METHOD URL [BODY]: prints the status code, the body goes to $TMP/body.
http() {
  local args=(-sS --max-time 5 -o "$TMP/body" -w '%{http_code}' -X "$1" "$2")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}"
}

expect_status() {  # expect_status WANT METHOD URL [BODY]
  local want="$1"; shift
  local got
  got="$(http "$@")" || fail "$1 $2: curl failed"
  [ "$got" = "$want" ] || fail "$1 $2: status $got, want $want: $(head -c 300 "$TMP/body")"
}

# metric PORT SERIES: prints the value of one exact series line from /metrics.
metric() {
  curl -sS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { print $2; found = 1 }
                   END { if (!found) print "missing" }'
}

load() {  # load PORT SECONDS -> summary JSON in $TMP/load.json
  timeout 30 "$PY" "$HERE/load.py" --url "http://127.0.0.1:$1/v1/completions" \
    --concurrency 4 --duration "$2" --seed 7 >"$TMP/load.json" || fail "load.py failed"
  cat "$TMP/load.json"
}

command -v promtool >/dev/null || fail "promtool not found (apt-get install prometheus)"

step "start two servers"
start good --version 1 --seed 1 --latency-ms 5 --ttft-ms 2 --tokens-per-answer 8
start bad --version 2 --seed 2 --latency-ms 30 --latency-jitter-ms 5 --error-rate 0.3 \
  --prompt-length-shift 40 --judge-score 0.4 --judge-sample-rate 1
echo "good on $PORT_good, bad on $PORT_bad"

step "health and completions"
for p in "$PORT_good" "$PORT_bad"; do
  expect_status 200 GET "http://127.0.0.1:$p/healthz"
  [ "$(cat "$TMP/body")" = "ok" ] || fail "/healthz body: $(cat "$TMP/body")"
done
expect_status 200 POST "http://127.0.0.1:$PORT_good/v1/completions" \
  '{"prompt": "what is the capital of france", "max_tokens": 3}'
[ "$(json_get "$TMP/body" 'd["model_version"] == "1" and len(d["text"].split()) == 3 and
  d["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}')" = True ] ||
  fail "completion body: $(cat "$TMP/body")"
expect_status 200 GET "http://127.0.0.1:$PORT_good/v1/completions?prompt=hello%20world"
[ "$(json_get "$TMP/body" 'd["usage"]["completion_tokens"]')" = 8 ] || fail "GET completion"
expect_status 400 POST "http://127.0.0.1:$PORT_good/v1/completions" '{"prompt": '
expect_status 400 POST "http://127.0.0.1:$PORT_good/v1/completions" '{"prompt": 3}'
head -c 2000000 /dev/zero | tr '\0' 'a' >"$TMP/big"
expect_status 413 POST "http://127.0.0.1:$PORT_good/v1/completions" "@$TMP/big"
echo "200 POST, 200 GET, 400 malformed, 400 bad field, 413 too large: ok"

step "promtool check metrics"
for p in "$PORT_good" "$PORT_bad"; do
  curl -sS --max-time 5 -o "$TMP/metrics.$p" "http://127.0.0.1:$p/metrics"
  promtool check metrics <"$TMP/metrics.$p" || fail "promtool rejects /metrics of port $p"
done
echo "promtool accepts both ($(grep -c '^llm_' "$TMP/metrics.$PORT_good") series each)"

step "load.py on good for 3 s"
load "$PORT_good" 3
[ "$(json_get "$TMP/load.json" 'd["total"] > 0 and d["transport_errors"] == 0 and
  d["by_status"] == {"200": d["total"]} and d["versions"] == {"1": d["total"]}')" = True ] ||
  fail "good version under load"

step "load.py on bad for 2 s (error rate 0.3)"
load "$PORT_bad" 2
[ "$(json_get "$TMP/load.json" '0.1 < d["by_status"].get("500", 0) / d["total"] < 0.5 and
  d["versions"] == {"2": d["total"]}')" = True ] || fail "bad version error rate"

step "promtool check metrics after load"
for p in "$PORT_good" "$PORT_bad"; do
  curl -sS --max-time 5 -o "$TMP/metrics.$p" "http://127.0.0.1:$p/metrics"
  promtool check metrics <"$TMP/metrics.$p" || fail "promtool rejects /metrics of port $p"
done
grep -E '^llm_(requests_total|judge_score_count|cost_usd_total)' "$TMP/metrics.$PORT_bad"

step "features on bad (prompt_length_shift 40)"
expect_status 200 GET "http://127.0.0.1:$PORT_bad/assay/features?limit=50"
[ "$(json_get "$TMP/body" 'd["version"] == "2" and len(d["features"]["prompt_length"]) == 50
  and min(d["features"]["prompt_length"]) >= 44 and sum(d["categorical"]["language"].values())
  == 50')" = True ] || fail "features: $(head -c 300 "$TMP/body")"
echo "50 samples, prompt_length >= 44," \
  "language $(json_get "$TMP/body" 'd["categorical"]["language"]')"

step "/control turns good bad and back"
before="$(metric "$PORT_good" 'llm_requests_total{version="1",code="500"}')"
[ "$before" = 0 ] || fail "500s before control: $before"
expect_status 200 POST "http://127.0.0.1:$PORT_good/control" \
  '{"error_rate": 1.0, "latency_ms": 1}'
[ "$(json_get "$TMP/body" 'd["settings"]["error_rate"] == 1 and
  d["settings"]["latency_ms"] == 1')" = True ] || fail "control answer: $(cat "$TMP/body")"
expect_status 400 POST "http://127.0.0.1:$PORT_good/control" '{"error_rate": 2}'
expect_status 400 POST "http://127.0.0.1:$PORT_good/control" '{"nonsense": 1}'
load "$PORT_good" 1
[ "$(json_get "$TMP/load.json" 'd["total"] > 0 and d["by_status"] == {"500": d["total"]}')" = \
  True ] || fail "error_rate 1.0 did not fail every request"
after="$(metric "$PORT_good" 'llm_requests_total{version="1",code="500"}')"
[ "$after" = "$(json_get "$TMP/load.json" 'd["total"]')" ] ||
  fail "llm_requests_total 500 is $after, load.py saw $(json_get "$TMP/load.json" 'd["total"]')"
echo "llm_requests_total{code=\"500\"}: $before -> $after"
expect_status 200 POST "http://127.0.0.1:$PORT_good/control" '{"error_rate": 0}'
load "$PORT_good" 1
[ "$(json_get "$TMP/load.json" 'd["by_status"] == {"200": d["total"]}')" = True ] ||
  fail "error_rate 0 still fails"

step "SIGTERM"
for name in good bad; do
  pid_var="PID_$name"
  pid="${!pid_var}"
  kill -TERM "$pid"
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && fail "server $name still running 1 s after SIGTERM"
  rc=0; wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "server $name exited $rc on SIGTERM"
done
echo "both exited 0 within 1 s"
echo "PASS"
