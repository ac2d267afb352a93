#!/usr/bin/env bash
# GPU check (a few minutes on one H100/H200 with PyTorch preinstalled, no internet):
# Triton from the nvidia-pytriton wheel with our Python-backend models, the embedding model on
# CUDA, the gateway in front; prints sentences/s, tokens/s and TTFT. Needs the project's Python
# packages installed (pip install -e '.[cpu,test]' from carried wheels where there is no index).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/chungus-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" - <<'PYEOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
PYEOF
"$PY" -m build_engines stack --out "$OUT/stack"
# The embedding model picks CUDA by itself when torch sees a GPU.
"$PY" -m bench.bench_embeddings --sentences 4096 --clients 64 | tee "$OUT/embeddings.json"
"$PY" -m bench.bench_llama --runs 3 --configs 1x8x8 | tee "$OUT/llama.json"
