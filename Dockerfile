# The gateway image (no models inside: Triton serves them). Build: docker build -t chungus-gateway .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY build_engines ./build_engines
COPY model_repository ./model_repository
RUN pip install . && useradd --uid 10001 --create-home chungus
USER 10001
EXPOSE 8080
ENTRYPOINT ["chungus"]
CMD ["serve", "--external-triton", "triton:8001"]
