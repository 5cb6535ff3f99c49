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
export TINGSHUO_PIPECAT_WHEEL="$(ls var/wheels/pipecat_ai-1.14.0-*.whl | head -n 1)"
# Everything was just installed, so a test that skips (a missing model or package) fails instead (tests/conftest.py).
export TINGSHUO_REQUIRE_MODELS=1
exec .venv/bin/python -m pytest -ra "$@"
