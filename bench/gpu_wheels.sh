#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what bench/gpu_check.sh needs on a GPU node that has PyTorch,
# transformers, tokenizers, httpx, grpcio, protobuf, jinja2, pillow and uvloop but no index:
# CPython 3.12 manylinux wheels (about 26 MB) and a trimmed nvidia-pytriton 0.7.0 (about 25 MB:
# tritonserver, the Python backend, the 3.12 stub and the libraries they load). Run it here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl
PLATFORMS=()
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 \
         manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
WHEELS=(numpy==1.26.4 tritonclient==2.73.0 python-rapidjson==1.25 litestar==2.25.0 litestar-htmx==0.5.0
        multipart==2.0.1 polyfactory==3.5.0 faker==40.63.0 rich-click==1.9.9 sniffio==1.3.1 msgspec==0.22.0
        uvicorn==0.54.0 httptools==0.9.0 sqlalchemy==2.1.9 greenlet==3.5.6 aiosqlite==0.22.1)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_35_x86_64 -d "$TMP" nvidia-pytriton==0.7.0
"$PY" - "$TMP" <<'PYEOF'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("nvidia_pytriton-*.whl"))
keep = ("pytriton/tritonserver/bin/", "pytriton/tritonserver/backends/", "pytriton/tritonserver/caches/",
        "pytriton/tritonserver/python_backend_stubs/3.12/", "nvidia_pytriton.libs/")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(keep) and "/libpython3" not in name and "__pycache__" not in name:
            z.extract(name, tmp / "min")
(tmp / "min" / "pytriton" / "__init__.py").write_text("")
for f in (tmp / "min").rglob("*"):
    if f.is_file() and (f.suffix == ".so" or ".so." in f.name or f.name in ("tritonserver", "triton_python_backend_stub")):
        f.chmod(0o755)
PYEOF
tar -C "$TMP/min" -cf - pytriton nvidia_pytriton.libs | xz -9 -T2 > .whl/pytriton-min.tar.xz
du -ch .whl/* | tail -1
