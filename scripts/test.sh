#!/usr/bin/env bash
# `make test`: lint, type-check, then unit and integration tests against the local stack.
# Starts the stack when it is not running and then stops what it started (and only that).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${WARDEN_VENV:-$HOME/.cache/chatwarden/venv}
cd "$repo"
export PATH="$venv/bin:$PATH"

started=0
if ! warden stack status --check >/dev/null 2>&1; then
  warden stack up
  started=1
fi
mypy_pid=
mypy_log=
cleanup() {
  # A background mypy ignores Ctrl-C (as every job of a script does): stop it with the script.
  if [ -n "$mypy_pid" ]; then kill "$mypy_pid" 2>/dev/null || true; fi
  if [ -n "$mypy_log" ]; then rm -f "$mypy_log"; fi
  if [ "$started" = 1 ]; then warden stack down; fi
}
trap cleanup EXIT

# `--no-lint` (make chaos): only the tests named after it.
if [ "${1:-}" = "--no-lint" ]; then
  shift
  python -m pytest "$@"
  exit
fi

ruff check .
ruff format --check .
# mypy (a minute of one core) runs beside the first tests: the fault trials of tests/reliability,
# which mostly wait out outages and check what was lost, not how fast. Its report and its exit
# status come after pytest's; either failing fails `make test`.
mypy_log=$(mktemp)
mypy >"$mypy_log" 2>&1 &
mypy_pid=$!
if [ "$#" = 0 ]; then
  set -- tests/reliability tests/integration tests/unit
fi
pytest_status=0
interrupted=0
trap 'interrupted=1' INT
python -m pytest "$@" || pytest_status=$?
if [ "$interrupted" = 1 ]; then
  exit 130  # Ctrl-C: the clean-up stops mypy (and the stack it started) without waiting
fi
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
mypy_pid=
echo "mypy:"
cat "$mypy_log"
if [ "$mypy_status" != 0 ]; then
  echo "make test: mypy failed (exit $mypy_status)" >&2
fi
[ "$pytest_status" = 0 ] && [ "$mypy_status" = 0 ]
