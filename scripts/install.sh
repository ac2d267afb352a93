#!/usr/bin/env bash
# Install everything into ./.venv: the package, the CPU stack (Triton, llama.cpp, torch CPU), tests.
# Idempotent and cached: the llama-cpp-python wheel is compiled once into $CHUNGUS_CACHE/wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
CACHE=${CHUNGUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chungus}
WHEELS="$CACHE/wheels"
LLAMA_VERSION=0.3.36
mkdir -p "$WHEELS"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
stamp=.venv/.chungus-installed
want=$(cat pyproject.toml constraints/cpu.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install: .venv is up to date"
  exit 0
fi

echo "install: torch (CPU) and numpy<2 first, so nothing pulls a CUDA build"
"${PIP[@]}" install -q -c constraints/cpu.txt "torch==2.13.0" "numpy<2"

if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "install: compiling llama-cpp-python $LLAMA_VERSION (portable, GGML_NATIVE=OFF; about 4 min, once)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "${PIP[@]}" wheel -q --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
fi

echo "install: chungus with the CPU stack and test tools"
"${PIP[@]}" install -q -c constraints/cpu.txt --find-links "$WHEELS" -e ".[cpu,test]"

if command -v npm >/dev/null && [ -f tests/js/package.json ]; then
  echo "install: the JavaScript openai SDK for the Node e2e test"
  (cd tests/js && npm install --no-audit --no-fund --silent) || echo "install: npm failed; the Node test will skip"
fi
CHROMIUM=/usr/lib/chromium/chromium-headless-shell
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null; then
  echo "install: Chromium (headless shell) for the console's browser tests"
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo -n)
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null 2>&1 \
    || echo "install: could not install chromium-headless-shell; the console browser tests will skip"
fi
echo "$want" > "$stamp"
echo "install: done"
