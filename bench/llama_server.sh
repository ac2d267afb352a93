#!/usr/bin/env bash
# Build llama.cpp's own llama-server from the sources vendored in the llama-cpp-python sdist we pin
# (the same llama.cpp our CPU chat model runs), for bench/bench_aiperf.py. About 6 minutes on 2
# cores; the binary is cached. Prints the binary's path.
#   bench/llama_server.sh [CACHE_DIR]     (default: ~/.cache/chungus/llama-server)
set -euo pipefail
VERSION=0.3.36
CACHE=${1:-${CHUNGUS_CACHE:-$HOME/.cache/chungus}/llama-server}
BIN="$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp/build/bin/llama-server"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
PIP=${PIP:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/pip}
mkdir -p "$CACHE"
cd "$CACHE"
if [[ ! -f llama_cpp_python-$VERSION.tar.gz ]]; then
  "$PIP" download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d . >&2
fi
[[ -d llama_cpp_python-$VERSION ]] || tar xzf "llama_cpp_python-$VERSION.tar.gz"
cd "llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -B build -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build build --target llama-server -j"${JOBS:-2}" >&2
echo "$BIN"
