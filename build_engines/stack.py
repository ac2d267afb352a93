"""The default CPU stack: every reference model the README's `make run` serves."""

from __future__ import annotations

from pathlib import Path

from build_engines.cpu import build_chat
from build_engines.embedding import build_embedding
from build_engines.progress import Progress
from build_engines.vision import build_vision
from gateway.registry import ModelEntry


def build_cpu_stack(out: Path, *, progress: Progress | None = None) -> list[ModelEntry]:
    """Build the chat, embedding and vision reference models into ``out``.

    Returns:
        The registry entries written to ``out/registry.toml``.
    """
    progress = progress or Progress()
    entries = [build_chat(out, progress=progress), build_embedding(out, progress=progress),
               build_vision(out, progress=progress)]
    return entries
