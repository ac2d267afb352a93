"""The real stack for e2e tests: reference + test models built once, real Triton on CPU, the gateway
over real HTTP in its own process, and the official openai SDK as client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from build_engines.progress import Progress
from build_engines.stack import build_cpu_stack
from gateway.triton.server import TritonServer, free_port
from tests.models.build import build_test_models, build_trtllm_mimics
from tests.support import GatewayProcess

CHAT_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stack")
    build_cpu_stack(out, progress=Progress(quiet=True))
    build_test_models(out)
    build_trtllm_mimics(out)
    return out


@pytest.fixture(scope="session")
def triton(stack_dir: Path) -> Iterator[TritonServer]:
    server = TritonServer(stack_dir / "model_repository", stack_dir / "triton",
                          http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_verbose=0)
    server.start(timeout_s=300)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(triton: TritonServer, stack_dir: Path) -> Iterator[GatewayProcess]:
    # Test images are served from loopback: allow http and 127.0.0.1 for this gateway only.
    env = {"CHUNGUS_IMAGE_ALLOW_HTTP": "true", "CHUNGUS_IMAGE_ALLOWED_HOSTS": "127.0.0.1",
           "CHUNGUS_IMAGE_FETCH_TIMEOUT_S": "3", "CHUNGUS_IMAGE_MAX_BYTES": str(2 * 1024 * 1024)}
    proc = GatewayProcess(triton.grpc_url, stack_dir / "registry.toml", stack_dir / "gateway", env=env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=gateway.admin_key,
                         max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def aclient(gateway: GatewayProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=gateway.admin_key,
                              max_retries=0, timeout=120)
