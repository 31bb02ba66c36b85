#!/usr/bin/env bash
# Issue 18's loaded passes: `tests/runtime tests/operator tests/realnode tests/e2e` in one pytest run per pass
# (tests/e2e since a fresh machine's CI found a race there on 2026-12-07), beside
# `stress-ng --cpu 2` at nice 10, so every timer in the product and the tests runs on a machine short of CPU.
# A test that fails here once would fail some fresh machine's CI. Installs what the tests need first (as
# hack/test does), then runs the passes in a row, whatever each one's outcome.
#
#   bench/loaded_passes.sh [PASSES (default 5)] [LOG_DIR (default $TMPDIR/lsml-loaded-passes)] [FIRST (default 1)]
#
# One line per pass goes to stdout and to LOG_DIR/summary (the head it started on, exit code, wall time,
# pytest's last line); each pass's whole output is LOG_DIR/pass-N.log. FIRST numbers the passes of a run that
# continues an earlier one into the same LOG_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

passes="${1:-5}"
logs="${2:-${TMPDIR:-/tmp}/lsml-loaded-passes}"
first="${3:-1}"
#: A pass took 25-37 min on 2 loaded cores (bench/README); one stuck past this is ended (and counted as failed).
pass_limit_seconds="${LSML_LOADED_PASS_LIMIT:-5400}"
mkdir -p "$logs"

hack/install-system-deps.sh >&2   # stress-ng among them
hack/venv.sh >&2
# shellcheck source=hack/service-deps.sh
source hack/service-deps.sh
lsml_service_deps   # no tests/compat in a pass: its interpreters are not needed

load_pid=""
stop_load() {
  if [[ -n "$load_pid" ]]; then
    kill "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    load_pid=""
  fi
}
trap stop_load EXIT

for pass in $(seq "$first" $(( first + passes - 1 ))); do
  head="$(git rev-parse --short HEAD)"   # what the pass tests: leave the checkout alone while it runs
  nice -n 10 stress-ng --cpu 2 --timeout 0 --quiet &
  load_pid=$!
  started=$(date +%s)
  rc=0
  timeout -k 60 "$pass_limit_seconds" .venv/bin/python -m pytest -q -p no:cacheprovider -rfE --durations=25 \
    tests/runtime tests/operator tests/realnode tests/e2e > "$logs/pass-$pass.log" 2>&1 || rc=$?
  stop_load
  wall=$(( $(date +%s) - started ))
  echo "pass $pass head $head rc $rc wall ${wall}s: $(tail -n 1 "$logs/pass-$pass.log")" \
    | tee -a "$logs/summary"
done
