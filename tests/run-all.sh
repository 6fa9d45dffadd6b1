#!/usr/bin/env bash
# Builds Assay and runs every test tier (unit, db, e2e) against a PostgreSQL that this
# script starts in a temporary directory and stops again. Usage:
#   tests/run-all.sh            # unit, db and e2e
#   tests/run-all.sh unit db    # only these tiers (CTest labels)
#   tests/run-all.sh faults     # faults tier: its own PostgreSQL; knobs in tests/faults/faults.h
# Environment: BUILD_DIR (default build), ASSAY_TEST_PG_DSN (use this server instead of
# starting one), CTEST_ARGS (extra ctest arguments).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source deploy/lib/deps.sh
source deploy/lib/pg.sh

TIERS=("$@")
[ ${#TIERS[@]} -gt 0 ] || TIERS=(unit db e2e)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}

install_deps
build_assay "$ROOT" "$BUILD_DIR"

PGDIR=""
cleanup() {
  local rc=$?
  if [ -n "$PGDIR" ]; then pg_stop "$PGDIR/data"; rm -rf "$PGDIR"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${ASSAY_TEST_PG_DSN:-}" ]; then
  PGDIR=$(mktemp -d /tmp/assay-test-pg.XXXXXX)
  chmod 755 "$PGDIR"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Throw-away data: trade durability for speed (never done for anything a user runs).
  pg_start --fast-unsafe "$PGDIR/data" "$PORT"
  export ASSAY_TEST_PG_DSN=$(pg_dsn "$PORT")
  echo "PostgreSQL for tests: $ASSAY_TEST_PG_DSN"
fi

LABELS=$(IFS='|'; echo "${TIERS[*]}")
# One ctest run so there is one summary; db and e2e tests are RUN_SERIAL (one at a time),
# unit tests run in parallel.
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" -L "^(${LABELS})\$" -j "$(nproc)" --output-on-failure --timeout 600 \
  ${CTEST_ARGS:-}
