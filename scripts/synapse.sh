#!/usr/bin/env bash
# Install Synapse, the Matrix homeserver the end-to-end tests (tests/matrix/) run
# against, into its own virtualenv .venv-synapse. It never goes into .venv: Synapse pins
# its own versions of libraries siyu also uses (pydantic, cryptography, ...).
#
#   scripts/synapse.sh            install unless the right version is already there
#   scripts/synapse.sh --python   print the interpreter the tests use, install first
#
# A second run finds the pinned version in place and returns in well under a second.
# Environment: PYTHON (interpreter for a new venv, default python3.11 or python3).
set -euo pipefail

cd "$(dirname "$0")/.."
SYNAPSE_VERSION=1.163.2
VENV=.venv-synapse

say() { printf 'synapse: %s\n' "$*" >&2; }

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))' 2>/dev/null || true
}

venv_in_place() {
  # A venv is tied to the path it was made at: one copied or moved here must be remade.
  "$VENV/bin/python" -c 'import os, sys; sys.exit(os.path.realpath(sys.prefix) != os.path.realpath(sys.argv[1]))' "$VENV" 2>/dev/null
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
    return
  fi
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "synapse: no python3 found; set PYTHON=/path/to/python3" >&2
  exit 1
}

install() {
  if venv_in_place && [ "$(installed_version)" = "$SYNAPSE_VERSION" ]; then
    say "matrix-synapse $SYNAPSE_VERSION present in $VENV"
    return
  fi
  if ! venv_in_place; then
    rm -rf "$VENV"
    local python
    python=$(pick_python)
    say "creating $VENV with $python ($("$python" --version 2>&1))"
    "$python" -m venv "$VENV"
  fi
  say "pip install matrix-synapse==$SYNAPSE_VERSION into $VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -q "matrix-synapse==$SYNAPSE_VERSION" </dev/null
  [ "$(installed_version)" = "$SYNAPSE_VERSION" ] || { say "install finished but matrix-synapse $SYNAPSE_VERSION is not importable"; exit 1; }
  say "installed matrix-synapse $SYNAPSE_VERSION"
}

case "${1:-}" in
  "") install ;;
  --python)
    install
    echo "$PWD/$VENV/bin/python"
    ;;
  *)
    echo "usage: $0 [--python]" >&2
    exit 2
    ;;
esac
