# The CHUNGUS gateway image: the OpenAI-compatible gateway only. No models and no Triton inside:
# Triton serves the models (helm/chungus deploys both; docs/helm.md).
#
#   docker build -t chungus-gateway:0.1.0 .
#   docker run --rm -p 8080:8080 -e CHUNGUS_ADMIN_KEY=sk-chungus-... \
#     -v "$PWD/out/registry.toml:/etc/chungus/registry.toml:ro" -v "$PWD/out/models:/etc/chungus/models:ro" \
#     chungus-gateway:0.1.0 serve --external-triton triton-host:8001
#
# Other subcommands work the same way (`... chungus-gateway:0.1.0 keys list`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY build_engines ./build_engines
# Base dependencies only: the CPU reference stack (torch, llama.cpp, pytriton) stays out.
RUN python -m venv /opt/chungus && /opt/chungus/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/chungus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHUNGUS_HOST=0.0.0.0 \
    CHUNGUS_PORT=8080 \
    CHUNGUS_REGISTRY_PATH=/etc/chungus/registry.toml \
    CHUNGUS_DATABASE_URL=sqlite+aiosqlite:////data/chungus.db
COPY --from=build /opt/chungus /opt/chungus
# The source too: the chart's engine build Job installs it inside NVIDIA's Triton image, whose
# Python differs from this one (docs/helm.md, "Engines into the cluster").
COPY --from=build /src /opt/chungus/src
RUN groupadd --gid 10001 chungus \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin chungus \
    && mkdir -p /data /etc/chungus \
    && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["chungus"]
CMD ["serve", "--external-triton", "triton:8001"]
