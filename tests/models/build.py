"""Write the test models into a model repository and register them."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from gateway.registry import ModelEntry, upsert_entry
from tests.models.trtllm import build_trtllm_mimics  # noqa: F401  (tests/e2e/conftest.py)

HERE = Path(__file__).resolve().parent

# public id -> (triton name, mode, instances)
TEST_MODELS = {
    "echo": ("echo", "echo", 2),
    "slow-echo": ("slow_echo", "slow", 2),
    "failing": ("failing", "fail", 1),
    "hanging": ("hanging", "hang", 1),
}


def build_test_models(out: Path) -> list[ModelEntry]:
    """Add the echo-family test models to ``out/model_repository`` and ``out/registry.toml``."""
    entries = []
    template = Template((HERE / "echo" / "config.pbtxt.tmpl").read_text())
    side = out / "models" / "test"
    side.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "plain_template.jinja", side / "plain_template.jinja")
    for model_id, (name, mode, instances) in TEST_MODELS.items():
        target = out / "model_repository" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(HERE / "echo" / "1", target / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (target / "config.pbtxt").write_text(
            template.substitute(name=name, mode=mode, instances=instances))
        entry = ModelEntry(id=model_id, triton_model=name, chat_template="models/test/plain_template.jinja",
                           default_max_tokens=64, max_tokens_limit=512, context_length=1024)
        upsert_entry(out / "registry.toml", entry)
        entries.append(entry)
    return entries
