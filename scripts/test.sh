#!/usr/bin/env bash
# Install what the tests need (Debian's Chromium, the Python packages) and run the whole suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ ! -x /usr/bin/chromium ]; then
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium
fi
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
python -m pytest "$@"
