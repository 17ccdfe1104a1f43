#!/usr/bin/env bash
# Install what the tests need (Debian's Chromium and PostgreSQL server, the Python packages in a
# virtual environment of their own) and run the whole suite. Extra arguments go to pytest, e.g. `scripts/test.sh tests/core -x`.
#
# The suite runs from .venv-test, never from whatever the machine has installed globally, so a
# package missing from requirements-dev.txt fails here instead of passing by luck. CI (CI=true)
# rebuilds that environment from nothing on every run; elsewhere it is reused, and
# CUTOVER_FRESH_VENV=1 rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
packages=""
[ -x /usr/bin/chromium ] || packages="chromium"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages="$packages postgresql"
if [ -n "$packages" ]; then
  $sudo apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $packages
fi
# The suite starts its own throwaway PostgreSQL cluster (tests/pgserver.py); initdb refuses to
# run as root, so as root the cluster runs as an unprivileged user of its own.
if [ "$(id -u)" = 0 ] && ! id cutoverpg >/dev/null 2>&1; then
  useradd --create-home cutoverpg
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
# One worker per core (pytest-xdist); each test file stays on one worker so module fixtures
# are built once. `scripts/test.sh -n 0` runs in a single process.
exec "$venv/bin/python" -m pytest -n auto --dist loadfile "$@"
