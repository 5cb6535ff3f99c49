#!/usr/bin/env bash
# Builds llama.cpp's own HTTP server (`llama-server`), the embedded LLM engine, into var/bin.
# There is no binary wheel for it, so it is compiled from the llama.cpp source vendored in the
# llama-cpp-python sdist we already pin: one llama.cpp version for both engines, from the same
# package index. Native CPU flags: the binary is built on this machine for this machine, and
# prompt processing runs about twice as fast as a portable build. About 12 minutes on 2 idle cores;
# skipped when var/bin/llama-server exists and its stamp names this version.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP_PYTHON_VERSION=0.3.36
STAMP="llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} native"
BIN=var/bin/llama-server
if [ -x "$BIN" ] && [ "$(cat "$BIN.version" 2>/dev/null)" = "$STAMP" ]; then
  exit 0
fi
PY=.venv/bin/python
mkdir -p var/wheels var/bin
SDIST="var/wheels/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz"
if [ ! -f "$SDIST" ]; then
  "$PY" -m pip download -q --no-deps --no-binary :all: -d var/wheels "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}"
fi
CMAKE=cmake
if ! command -v cmake >/dev/null; then
  "$PY" -m pip install -q cmake
  CMAKE=.venv/bin/cmake
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"
echo "Building llama-server from llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} (about 12 minutes on 2 cores)..." >&2
# Static, CPU only, no network at build time: no prebuilt web UI download, no HTTPS client.
"$CMAKE" -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$WORK/configure.log" 2>&1 \
  || { tail -n 40 "$WORK/configure.log" >&2; exit 1; }
"$CMAKE" --build "$WORK/build" --target llama-server -j "$(nproc)" >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log" >&2; exit 1; }
install -m 0755 "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$STAMP" >"$BIN.version"
