#!/usr/bin/env bash
# Install everything the test suite needs (Debian packages and pip packages), then run it.
# Usage: bash scripts/test.sh [pytest args...]     (as root, or with sudo available)
#        VIGIL_TEST_WORKERS=N  parallel workers (default: one per core; 0: none)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(redis-server postgresql prometheus prometheus-alertmanager victoria-metrics
              docker-compose openssl jsonnet)

need_apt=0
for bin in redis-server /usr/lib/postgresql/15/bin/postgres prometheus promtool \
           prometheus-alertmanager amtool victoria-metrics docker-compose openssl jsonnet; do
  command -v "$bin" >/dev/null 2>&1 || [[ -x $bin ]] || need_apt=1
done
if [[ $need_apt == 1 ]]; then
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  # Install the binaries only: no service may start on its own during the tests.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

# The three distributions of the checkout (docs/architecture.md), editable.
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' \
  -e ./packages/vigil-instrument -e ./packages/vigil-demo
# Tests wait on servers more than they compute: one worker per core, a test file per worker
# (module fixtures start their servers once). VIGIL_TEST_WORKERS=0 runs in this process.
exec python3 -m pytest -n "${VIGIL_TEST_WORKERS:-auto}" --dist loadfile "$@"
