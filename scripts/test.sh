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
cleanup() { if [ "$started" = 1 ]; then warden stack down; fi; }
trap cleanup EXIT

# `--no-lint` (make chaos): only the tests named after it.
if [ "${1:-}" = "--no-lint" ]; then
  shift
else
  ruff check .
  ruff format --check .
  mypy
fi
python -m pytest "$@"
