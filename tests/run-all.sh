#!/usr/bin/env bash
# Builds Assay and runs test tiers against a PostgreSQL that this script starts in a temporary
# directory and stops again. Usage:
#   tests/run-all.sh            # unit db e2e faults (the default build, BUILD_DIR)
#   tests/run-all.sh all        # every tier: format unit db e2e faults asan tsan fuzz (CI's)
#   tests/run-all.sh format     # every tracked C++ file is as clang-format (.clang-format) has it
#   tests/run-all.sh unit db    # only these tiers (CTest labels)
#   tests/run-all.sh faults     # faults tier: its own PostgreSQL, killed and restarted, with
#                               # agents and the server; knobs in tests/faults/faults.h
#   tests/run-all.sh asan       # clang ASan+UBSan build (build-asan), with -Wthread-safety as
#                               # an error: unit, db and e2e
#   tests/run-all.sh tsan       # clang TSan build (build-tsan): the unit tests of everything
#                               # with threads (server, http, agent, common); TSAN_FULL=1:
#                               # db and e2e too
#   tests/run-all.sh clang      # clang build of common, server and agent with -Wthread-safety
#                               # -Werror (build-clang); compiles, runs nothing
#   tests/run-all.sh fuzz       # libFuzzer targets of tests/fuzz, each for FUZZ_SECONDS
#                               # (default 30); fails on any crash. Built in build-asan: one
#                               # compile (ASan+UBSan, coverage) serves both tiers
# Tiers combine: `tests/run-all.sh unit db e2e asan tsan fuzz` runs them all, in that order,
# and fails when any failed.
# Environment: BUILD_DIR (default build), ASSAY_TEST_PG_DSN (use this server instead of
# starting one), CTEST_ARGS (extra ctest arguments), FUZZ_SECONDS.
# A sanitizer report from any process (tests, and the servers and agents e2e starts) fails the
# tier; reports are collected under BUILD_DIR/sanitizer-logs and printed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source deploy/lib/deps.sh
source deploy/lib/pg.sh

TIERS=("$@")
[ ${#TIERS[@]} -gt 0 ] || TIERS=(unit db e2e faults)
[ "${TIERS[*]}" != all ] || TIERS=(format unit db e2e faults asan tsan fuzz)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
SUPP=$ROOT/tests/sanitizers
NO_RETURN_WARNING='__asan_handle_no_return|^False positive error reports may follow'
NO_RETURN_WARNING+='|^For details see https://github.com/google/sanitizers/issues/189'

LABELS=()
EXTRA=()
for t in "${TIERS[@]}"; do
  case "$t" in
    unit|db|e2e|faults) LABELS+=("$t") ;;
    asan|tsan|clang|fuzz|format) EXTRA+=("$t") ;;
    *) echo "unknown tier '$t' (unit, db, e2e, faults, asan, tsan, clang, fuzz, format)" >&2; exit 2 ;;
  esac
done

# shellcheck disable=SC2086
if [ ${#EXTRA[@]} -gt 0 ]; then
  install_deps $ASSAY_TEST_PACKAGES $ASSAY_CLANG_PACKAGES
else
  install_deps $ASSAY_TEST_PACKAGES
fi
setup_podman  # the e2e container tests (issue 9); idempotent
prefer_debian_python  # examples/finetune's e2e test
# The dashboard (issue 11): its e2e browser test serves web/dist and drives web/node_modules'
# playwright-core.
if [[ " ${TIERS[*]} " =~ \ (e2e|asan|tsan)\  ]]; then
  start=$SECONDS
  build_web "$ROOT"
  echo "build web: $((SECONDS - start)) s"
fi

PGDIR=""
BG_PID=""
cleanup() {
  local rc=$?
  if [ -n "$BG_PID" ]; then kill -- "-$BG_PID" 2>/dev/null; wait "$BG_PID" 2>/dev/null; fi
  if [ -n "$PGDIR" ]; then pg_stop "$PGDIR/data"; rm -rf "$PGDIR"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_pg() {
  [ -z "${ASSAY_TEST_PG_DSN:-}" ] || return 0
  PGDIR=$(mktemp -d /tmp/assay-test-pg.XXXXXX)
  chmod 755 "$PGDIR"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Throw-away data: trade durability for speed (never done for anything a user runs).
  pg_start --fast-unsafe "$PGDIR/data" "$PORT"
  export ASSAY_TEST_PG_DSN=$(pg_dsn "$PORT")
  echo "PostgreSQL for tests: $ASSAY_TEST_PG_DSN"
}

# run_ctest BUILD LABELS... [-- CTEST_OPTIONS...]: one ctest run so there is one summary; db
# and e2e tests are RUN_SERIAL (one at a time), unit tests run in parallel. A test is killed
# after 300 s (the slowest, under TSan, take about 60 s): a hang costs minutes, not the run.
run_ctest() {
  local build=$1; shift
  local labels=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do labels+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  local joined
  joined=$(IFS='|'; echo "${labels[*]}")
  # shellcheck disable=SC2086
  ctest --test-dir "$build" -L "^(${joined})\$" -j "$(nproc)" --output-on-failure \
    --timeout 300 "${extra[@]}" ${CTEST_ARGS:-}
}

# Tests the sanitizer tiers leave out: their time goes to code that is not ours (PyTorch
# training a model on the CPU), and the default tiers run them. The train step's own code runs
# under the sanitizers in the `train:` tests.
SANITIZER_SKIP='^e2e:finetune example'

# configure_clang BUILD CMAKE_OPTIONS...: a clang build directory. -O1 and line tables only:
# what sanitizer reports need, and the quickest to compile.
configure_clang() {
  local build=$1; shift
  CXX=clang++ cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    -DASSAY_BUILD_BENCH=OFF "$@" >/dev/null
}

# sanitized_ctest BUILD SKIP LABELS...: run_ctest, leaving out the tests SKIP matches, with
# every sanitizer writing its reports to BUILD/sanitizer-logs (so that reports from e2e's server
# and agent processes are seen too); fails when the tests fail or when any report was written.
sanitized_ctest() {
  local build=$1 skip=$2; shift 2
  local logs=$build/sanitizer-logs rc=0
  rm -rf "$logs"; mkdir -p "$logs"
  # Writable by every user (sticky, like /tmp): a process the tests run as a job user writes
  # its reports here too. Why it matters: ASan that cannot open its log file dies with exit
  # code 1, and a job-user child that ASan warns about (see NO_RETURN_WARNING) would end so.
  chmod 1777 "$logs"
  local common="log_path=$logs/report:print_suppressions=0"
  export ASAN_OPTIONS="$common:detect_leaks=1:detect_stack_use_after_return=1"
  ASAN_OPTIONS+=":strict_string_checks=1:check_initialization_order=1"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp"
  export UBSAN_OPTIONS="$common:print_stacktrace=1:halt_on_error=1:suppressions=$SUPP/ubsan.supp"
  export TSAN_OPTIONS="$common:halt_on_error=0:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
  run_ctest "$build" "$@" -- -E "$skip" || rc=$?
  unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  local reports=() f
  for f in "$logs"/report.*; do
    [ -e "$f" ] || continue
    # The child of SpawnProcess's clone runs on its own small stack until it execs, and ASan
    # warns that it ignores __asan_handle_no_return there; that warning alone is no finding.
    if grep -qvE "$NO_RETURN_WARNING" "$f"; then reports+=("$f"); fi
  done
  if [ ${#reports[@]} -gt 0 ]; then
    echo "sanitizer reports (${#reports[@]} files in $logs):" >&2
    head -c 20000 "${reports[@]}" >&2
    rc=1
  fi
  return $rc
}

# build-asan serves the asan and fuzz tiers: ASan+UBSan, -Wthread-safety, and libFuzzer's
# coverage (-fsanitize=fuzzer-no-link, a small cost to the tests) so that one compile does both.
configure_asan() {
  configure_clang "$ROOT/build-asan" -DASSAY_SANITIZE=address,undefined \
    -DASSAY_THREAD_SAFETY=ON -DASSAY_FUZZ=ON
}

configure_tsan() {
  configure_clang "$ROOT/build-tsan" -DASSAY_SANITIZE=thread -DASSAY_THREAD_SAFETY=ON
}
# TSan runs the unit tests of everything with threads (server, http, agent, common): what fits
# CI's 90 minutes beside two other full builds. TSAN_FULL=1 adds the db and e2e tiers (the
# servers and agents e2e starts run under TSan too); they were in CI until issue 10.
TSAN_TARGETS=(unit_server_tests unit_http_tests unit_agent_tests unit_common_tests)
TSAN_LABELS=(unit)
if [ "${TSAN_FULL:-0}" = 1 ]; then
  TSAN_TARGETS+=(db_tests e2e_tests)
  TSAN_LABELS+=(db e2e)
fi

# Prebuilding: a later tier's build runs in the background at idle priority (SCHED_IDLE, nice
# 19) while the tests of the tier before it run, on the CPU those tests leave idle (db and e2e
# tests run one at a time and mostly wait). The tier then waits for it and builds what is left
# in the foreground, where a compile error is reported as usual. One at a time.
# prebuild NAME CONFIGURE_FUNCTION BUILD_DIR [cmake --build arguments...]
prebuild() {
  local name=$1 conf=$2 build=$3; shift 3
  [[ " ${EXTRA[*]} " == *" $name "* ]] || return 0
  "$conf" || return 0
  local idle=()
  chrt -i 0 true 2>/dev/null && idle=(chrt -i 0)
  # setsid: its own process group, so that an early exit (cleanup) stops the compilers too.
  setsid "${idle[@]}" nice -n 19 cmake --build "$build" -j "$(nproc)" "$@" \
    >"$build/prebuild.log" 2>&1 &
  BG_PID=$!
  echo "prebuilding $build in the background (log: $build/prebuild.log)"
}
await_prebuild() {
  [ -n "$BG_PID" ] || return 0
  wait "$BG_PID" || true  # whatever failed is built again, and reported, in the foreground
  BG_PID=""
}

tier_asan() {
  local build=$ROOT/build-asan
  local start=$SECONDS
  await_prebuild
  configure_asan || return
  cmake --build "$build" -j "$(nproc)" || return
  echo "build $build: $((SECONDS - start)) s"
  start_pg || return
  prebuild tsan configure_tsan "$ROOT/build-tsan" --target "${TSAN_TARGETS[@]}"
  sanitized_ctest "$build" "$SANITIZER_SKIP" unit db e2e
}

tier_tsan() {
  local build=$ROOT/build-tsan
  local start=$SECONDS
  await_prebuild
  configure_tsan || return
  cmake --build "$build" -j "$(nproc)" --target "${TSAN_TARGETS[@]}" || return
  echo "build $build: $((SECONDS - start)) s"
  start_pg || return
  sanitized_ctest "$build" "$SANITIZER_SKIP" "${TSAN_LABELS[@]}"
}

tier_clang() {
  local build=$ROOT/build-clang
  configure_clang "$build" -DASSAY_THREAD_SAFETY=ON || return
  cmake --build "$build" -j "$(nproc)" --target assay-server assay-agent
}

# fuzz_one BUILD FUZZER: runs one fuzzer for FUZZ_SECONDS and prints its line; fails on a
# crash (its input left in BUILD/fuzz-crashes).
fuzz_one() {
  local build=$1 fuzzer=$2
  local name forge seeds opts
  name=$(basename "$fuzzer")
  seeds=()
  [ -d "tests/fuzz/seeds/$name" ] && seeds+=("tests/fuzz/seeds/$name")
  opts=(-max_len=4096)
  case "$name" in
    webhook_*_fuzz)
      forge=${name#webhook_}
      seeds+=("tests/fixtures/${forge%_fuzz}")
      opts=(-max_len=65536) ;;
    pipeline_spec_fuzz)
      seeds+=(examples/hello examples/llm-app)
      opts=(-max_len=16384) ;;
  esac
  mkdir -p "$build/fuzz-corpus/$name"
  if "$fuzzer" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "${opts[@]}" \
      -artifact_prefix="$build/fuzz-crashes/$name-" -print_final_stats=1 \
      "$build/fuzz-corpus/$name" "${seeds[@]}" >"$build/fuzz-crashes/$name.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' \
      "$build/fuzz-crashes/$name.log" | grep -o '[0-9]*$') runs in ${FUZZ_SECONDS}s)"
  else
    echo "fuzz $name: FAILED; the input is in $build/fuzz-crashes/$name-*" >&2
    tail -n 60 "$build/fuzz-crashes/$name.log" >&2
    return 1
  fi
}

# Each fuzzer starts from its hand seeds (tests/fuzz/seeds/NAME) and the fixtures that fit it;
# what it finds stays in BUILD/fuzz-corpus (not in the repository); a crash leaves its input
# in BUILD/fuzz-crashes and fails the tier. As many run at once as there are cores (each
# fuzzer is one process on one core), so the tier takes FUZZ_SECONDS x fuzzers / cores.
tier_fuzz() {
  local build=$ROOT/build-asan
  await_prebuild
  configure_asan || return
  cmake --build "$build" -j "$(nproc)" --target fuzzers || return
  mkdir -p "$build/fuzz-crashes"
  local rc=0 running=0
  export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  for fuzzer in "$build"/tests/fuzz/*_fuzz; do
    if [ "$running" -ge "$(nproc)" ]; then
      wait -n || rc=1
      running=$((running - 1))
    fi
    fuzz_one "$build" "$fuzzer" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do
    wait -n || rc=1
    running=$((running - 1))
  done
  unset ASAN_OPTIONS UBSAN_OPTIONS
  return $rc
}

# Lists the files clang-format would change (and how, at most 200 lines); fails if any.
tier_format() {
  local files
  mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cpp')
  local out
  out=$(clang-format --dry-run "${files[@]}" 2>&1) || return
  [ -z "$out" ] && return 0
  echo "$out" | head -n 200 >&2
  echo "run: git ls-files '*.cc' '*.h' '*.cpp' | xargs clang-format -i" >&2
  return 1
}

FAILED=()
DIGESTS=()  # build directories whose last ctest run failed: their digest ends the output
if [ ${#LABELS[@]} -gt 0 ]; then
  start=$SECONDS
  build_assay "$ROOT" "$BUILD_DIR"
  echo "build $BUILD_DIR: $((SECONDS - start)) s"
  start=$SECONDS
  if [[ " ${LABELS[*]} " == *" db "* || " ${LABELS[*]} " == *" e2e "* ]]; then start_pg; fi
  prebuild asan configure_asan "$ROOT/build-asan"
  FAULT_RUNS=$BUILD_DIR/faults-runs.log  # one line of figures per faults run (with its seed)
  seen=$( [ -f "$FAULT_RUNS" ] && wc -l <"$FAULT_RUNS" || echo 0)
  run_ctest "$BUILD_DIR" "${LABELS[@]}" || { FAILED+=("${LABELS[@]}"); DIGESTS+=("$BUILD_DIR"); }
  echo "tiers ${LABELS[*]}: $((SECONDS - start)) s"
  if [ -f "$FAULT_RUNS" ]; then tail -n +"$((seen + 1))" "$FAULT_RUNS"; fi
fi
for t in "${EXTRA[@]}"; do
  start=$SECONDS
  if "tier_$t"; then
    echo "tier $t: passed in $((SECONDS - start)) s"
  else
    echo "tier $t: FAILED after $((SECONDS - start)) s" >&2
    FAILED+=("$t")
    case $t in asan | tsan | clang) DIGESTS+=("$ROOT/build-$t") ;; esac
  fi
done
if [ ${#FAILED[@]} -gt 0 ]; then
  # What failed and its last lines, at the very end: a CI log may keep only its tail.
  for b in "${DIGESTS[@]}"; do python3 "$ROOT/tests/support/failure_digest.py" "$b" >&2 || true; done
  echo "failed tiers: ${FAILED[*]}" >&2
  exit 1
fi
