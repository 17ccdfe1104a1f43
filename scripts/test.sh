#!/usr/bin/env bash
# Install what the tests need (Debian's Chromium, the Python packages in a virtual environment of
# their own) and run the whole suite. Extra arguments go to pytest, e.g. `scripts/test.sh tests/core -x`.
#
# The suite runs from .venv-test, never from whatever the machine has installed globally, so a
# package missing from requirements-dev.txt fails here instead of passing by luck. CI (CI=true)
# rebuilds that environment from nothing on every run; elsewhere it is reused, and
# CUTOVER_FRESH_VENV=1 rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ ! -x /usr/bin/chromium ]; then
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "scripts/test.sh: Cutover needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 2
}
venv=.venv-test
if [ "${CI:-}" = true ] || [ "${CUTOVER_FRESH_VENV:-}" = 1 ] || [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec "$venv/bin/python" -m pytest "$@"
