#!/usr/bin/env bash
# Sets up (idempotent) and runs the whole test suite, end-to-end tests on the real models included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The web page tests drive a real browser: Debian's Chromium (never a downloaded build).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "The browser tests need Debian's Chromium: sudo apt-get install chromium" >&2
  fi
fi
# The fleet tests (tests/fleet) run real PostgreSQL, Redis and nginx as plain processes on free ports,
# from Debian's packages. A policy-rc.d forbids the packages' own services during the install (a
# cluster on 5432, redis on 6379, nginx on 80): the tests never use them.
fleet_missing=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || fleet_missing+=(postgresql)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || fleet_missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || fleet_missing+=(nginx)
if [ ${#fleet_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
      fi
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q "${fleet_missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q "${fleet_missing[@]}" >/dev/null; }
    )
  else
    echo "The fleet tests need PostgreSQL, Redis and nginx: sudo apt-get install ${fleet_missing[*]}" >&2
  fi
fi
export TINGSHUO_PIPECAT_WHEEL="$(ls var/wheels/pipecat_ai-1.14.0-*.whl | head -n 1)"
# Everything was just installed, so a test that skips (a missing model or package) fails instead (tests/conftest.py).
export TINGSHUO_REQUIRE_MODELS=1
exec .venv/bin/python -m pytest -ra "$@"
