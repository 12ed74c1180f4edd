#!/usr/bin/env bash
# Install what siyu needs on this machine, skipping whatever is already there.
#
#   scripts/bootstrap.sh python   .venv with siyu installed (what `make run` needs)
#   scripts/bootstrap.sh all      also what the tests need (`make test`): Debian packages,
#                                 dev dependencies, Synapse in .venv-synapse
#
# Everything the project needs must be installed by the project's own files: CI runs in a
# fresh clone on a machine that may have none of it. A second run finds everything in
# place and takes about a second.
#
# Environment: PYTHON (interpreter for a new .venv, default python3.11 or python3),
# SIYU_SKIP_APT=1 (you manage system packages yourself).
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${1:-all}
case "$mode" in
  python | all) ;;
  *) echo "usage: $0 python|all" >&2; exit 2 ;;
esac

# postgresql and redis-server: real servers for the database and queue tests;
# chromium + fonts-noto-cjk: browser tests render Chinese text; gettext: compilemessages;
# sqlite3: the CLI the operations guide uses for online backups.
SYSTEM_PACKAGES=(postgresql redis-server chromium fonts-noto-cjk gettext sqlite3 make)

say() { printf 'bootstrap: %s\n' "$*"; }

install_system_packages() {
  if [ "${SIYU_SKIP_APT:-0}" = 1 ]; then
    say "SIYU_SKIP_APT=1: not checking Debian packages"
    return
  fi
  local missing=() pkg
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages present"
    return
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "bootstrap: missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]}) or set SIYU_SKIP_APT=1" >&2
      exit 1
    fi
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
    return
  fi
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "bootstrap: siyu needs Python 3.11 (python3.11 or python3); set PYTHON=/path/to/python3.11" >&2
  exit 1
}

install_python() {
  local extras=$1
  # A venv is tied to the path it was made at: one copied from elsewhere must be remade.
  if ! .venv/bin/python -c 'import os, sys; sys.exit(os.path.realpath(sys.prefix) != os.path.realpath(sys.argv[1]))' .venv 2>/dev/null; then
    rm -rf .venv
    local python
    python=$(pick_python)
    say "creating .venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv .venv
  fi
  # The stamp names what was installed from which pyproject.toml; `dev` includes the base.
  local digest stamp
  digest=$(sha256sum pyproject.toml | cut -c1-16)
  for stamp in "$extras" dev; do
    if [ -x .venv/bin/siyu ] && [ "$(cat ".venv/.siyu-installed-$stamp" 2>/dev/null)" = "$digest" ]; then
      say ".venv up to date ($stamp)"
      return
    fi
  done
  local target=.
  [ "$extras" = dev ] && target=".[dev]"
  say "pip install -e '$target'"
  .venv/bin/pip install --disable-pip-version-check --progress-bar off -q -e "$target" </dev/null
  rm -f .venv/.siyu-installed-*
  echo "$digest" >".venv/.siyu-installed-$extras"
}

compile_messages() {
  # Translations are compiled from the .po files in the tree; the step is skipped where
  # gettext is missing (then the committed .mo files, if any, are used as they are).
  [ -n "$(find siyu -name '*.po' -print -quit 2>/dev/null)" ] || return 0
  if ! command -v msgfmt >/dev/null; then
    say "gettext missing: not compiling translations"
    return 0
  fi
  SIYU_HOME=${SIYU_HOME:-./var} .venv/bin/python manage.py compilemessages -v 0 --ignore='.venv*' --ignore=var --ignore=.ci-state --ignore=node_modules
}

start=$SECONDS
if [ "$mode" = all ]; then
  install_system_packages
  install_python dev
  # Synapse for the Matrix end-to-end tests, in its own .venv-synapse (see the script).
  [ ! -x scripts/synapse.sh ] || scripts/synapse.sh
else
  install_python base
fi
compile_messages
say "done in $((SECONDS - start))s"
