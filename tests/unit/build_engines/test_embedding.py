"""The embedding builder: source checks, instance layout, the filled Triton config, the registry entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from build_engines.embedding import build_embedding, default_source, instance_layout, read_source
from build_engines.progress import Progress
from gateway.registry import load_registry


@pytest.mark.parametrize(("device", "cpus", "want"), [
    ("cpu", 1, ("KIND_CPU", 1, 1)), ("cpu", 2, ("KIND_CPU", 2, 1)),
    ("cpu", 16, ("KIND_CPU", 4, 4)), ("cuda", 16, ("KIND_GPU", 1, 1)),
])
def test_instance_layout(device: str, cpus: int, want: tuple[str, int, int]) -> None:
    assert instance_layout(device, cpus) == want


def test_read_source_of_the_default_model() -> None:
    assert read_source(default_source()) == (384, 256)


def test_read_source_refuses_a_folder_that_is_not_sentence_transformers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match="not a sentence-transformers model"):
        read_source(tmp_path)


def _config(out: Path, name: str) -> str:
    return (out / "model_repository" / name / "config.pbtxt").read_text()


def test_build_writes_a_batched_model_and_its_entry(tmp_path: Path) -> None:
    entry = build_embedding(tmp_path, model_id="mini-lm", device="cpu", instances=3, n_threads=2,
                            queue_delay_us=1234, progress=Progress(quiet=True))
    config = _config(tmp_path, "mini_lm")
    assert "$" not in config
    assert 'name: "mini_lm"' in config and "max_batch_size: 64" in config
    assert "max_queue_delay_microseconds: 1234" in config
    assert re.search(r'name: "text_input" data_type: TYPE_STRING dims: \[ 1 \]', config)
    assert re.search(r'name: "embedding" data_type: TYPE_FP32 dims: \[ 384 \]', config)
    assert "kind: KIND_CPU count: 3" in config and 'string_value: "2"' in config
    model_dir = tmp_path / "model_repository" / "mini_lm"
    assert (model_dir / "1" / "model.py").exists()
    assert (model_dir / "model" / "modules.json").exists()
    assert (entry.kind, entry.contract, entry.embedding_dim, entry.max_input_tokens) == (
        "embedding", "embedding", 384, 256)
    assert load_registry(tmp_path / "registry.toml").get("mini-lm") == entry
    assert (tmp_path / "models" / "mini-lm" / "tokenizer.json").exists()


def test_cuda_build_places_one_instance_per_gpu(tmp_path: Path) -> None:
    build_embedding(tmp_path, device="cuda", progress=Progress(quiet=True))
    assert "kind: KIND_GPU count: 1" in _config(tmp_path, "all_minilm_l6_v2")


def test_rebuild_replaces_the_model(tmp_path: Path) -> None:
    build_embedding(tmp_path, device="cpu", instances=1, progress=Progress(quiet=True))
    build_embedding(tmp_path, device="cpu", instances=2, progress=Progress(quiet=True))
    assert "count: 2" in _config(tmp_path, "all_minilm_l6_v2")
    assert [e.id for e in load_registry(tmp_path / "registry.toml").models] == ["all-minilm-l6-v2"]
