#!/usr/bin/env bash
# GPU check of CHUNGUS's own CUDA code paths on a node with PyTorch and no internet (about 3 minutes
# on one H100/H200): our Python-backend vision-chat model on CUDA behind the nvidia-pytriton Triton
# binary and the gateway; prints and writes $OUT/gpu_check.json (TTFT, tokens/s: direct, 1 stream,
# N streams, image). It does NOT check TensorRT-LLM (engines, NVIDIA's Triton models, the C++
# backend): that needs NVIDIA's container, see docs/gpu.md.
#
# Everything it installs goes into its own virtual environment ($VENV, default var/gpucheck-venv),
# created with --system-site-packages so the node's PyTorch and transformers are used as they are:
# the wheels carried in .whl/ (made by bench/gpu_wheels.sh where a package index is reachable:
# numpy 1.26, tritonclient, litestar, ...) and a trimmed nvidia-pytriton (pytriton-min.tar.xz)
# land in that venv and shadow the node's copies there only. Triton's Python stub needs numpy 1.x
# and finds site-packages through the python first on PATH, so the venv's bin leads PATH.
# The node's own Python environment is not modified. Remove the venv with `rm -rf $VENV`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/var/gpucheck-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --without-pip --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
if [ -d .whl ]; then
  # The node's pip, run by the venv's python, installs into the venv (sys.prefix).
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --ignore-installed .whl/*.whl
  tar -xJf .whl/pytriton-min.tar.xz -C "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi
"$PY" - <<'PYEOF'
import sys
import numpy
assert sys.prefix != sys.base_prefix, "not running in the check's venv"
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__} in the venv: Triton's stub needs 1.x"
PYEOF
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" -m bench.gpu_check --out "${OUT:-/tmp/chungus-gpu}" "$@"
