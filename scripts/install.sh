#!/usr/bin/env bash
# Install ChatWarden into a cached virtual environment (default ~/.cache/chatwarden/venv).
#
# The environment outlives the checkout: torch (a CUDA build of several GB from PyPI, which runs
# on CPU too) and the other dependencies are downloaded once per machine; a later install, a
# fresh clone or a CI run only re-links this checkout into it (seconds, no download).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${WARDEN_VENV:-$HOME/.cache/chatwarden/venv}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "install: creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip wheel setuptools
fi
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)

# A stamp of the dependency list: pip is asked to resolve only when pyproject.toml changed.
stamp="$venv/.chatwarden-deps"
want=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch first and on its own, so that nothing else pulls a different build of it.
  # The dependency itself ("torch>=..."), not a tool's mention of torch's modules ("torch.*").
  torch_spec=$(grep -o '"torch[<>=!~][^"]*"' "$repo/pyproject.toml" | tr -d '"')
  [ "$(echo "$torch_spec" | wc -l)" = 1 ] && [ -n "$torch_spec" ] || {
    echo "install: expected one torch requirement in pyproject.toml, found: ${torch_spec:-none}" >&2
    exit 1
  }
  echo "install: resolving dependencies ($torch_spec first; the first time downloads several GB)"
  "${pip[@]}" "$torch_spec"
  "${pip[@]}" -e "$repo[dev]"
  echo "$want" > "$stamp"
fi
# Point the environment's `warden` at this checkout (fast, no download).
"${pip[@]}" --no-deps --no-build-isolation -e "$repo"
echo "install: ready ($venv)"
