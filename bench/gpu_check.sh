#!/usr/bin/env bash
# GPU check on a node with PyTorch and no internet (about 3 minutes on one H100/H200): our
# Python-backend chat model on CUDA behind the nvidia-pytriton Triton binary and the gateway;
# prints and writes $OUT/gpu_check.json (TTFT, tokens/s: direct, 1 stream, N streams, image).
# Carry .whl/ (made by bench/gpu_wheels.sh where a package index is reachable): the wheels the
# node lacks, numpy<2 and a trimmed nvidia-pytriton (pytriton-min.tar.xz).
# They go into python3's own environment, not a --target folder: Triton's Python stub ignores
# PYTHONPATH and crashes on numpy 2, so that environment's numpy must be 1.x. Use a throwaway node.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade .whl/*.whl
  tar -xJf .whl/pytriton-min.tar.xz -C "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python3 -m bench.gpu_check --out "${OUT:-/tmp/chungus-gpu}" "$@"
