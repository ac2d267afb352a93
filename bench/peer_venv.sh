#!/usr/bin/env bash
# A peer's own virtual environment for `make bench` (LiteLLM's proxy, NVIDIA's AIPerf): their
# dependencies clash with ours, so each lives apart under var/. Created once; prints its bin/.
#   bench/peer_venv.sh DIR 'litellm[proxy]==1.108.7'
set -euo pipefail
DIR=$1; shift
if [[ ! -f "$DIR/.ready" ]]; then
  rm -rf "$DIR"
  PYTHON=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
  "$PYTHON" -m venv "$DIR" >&2
  "$DIR/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2
  echo "$*" > "$DIR/.ready"
fi
echo "$DIR/bin"
