#!/usr/bin/env bash
# Sets up (idempotent) and runs the whole test suite, end-to-end tests on the real models included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TINGSHUO_PIPECAT_WHEEL="$(ls var/wheels/pipecat_ai-1.14.0-*.whl | head -n 1)"
exec .venv/bin/python -m pytest -ra "$@"
