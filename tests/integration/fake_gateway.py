"""A uvicorn factory for tests: the real app (settings from CHUNGUS_* variables) over the fake
backend, with an instant model ``chat-a`` and a slow streaming model ``slow`` (50 ms a token)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path

from litestar import Litestar

from gateway.app import create_app
from gateway.backends.base import Delta, GenerationRequest
from gateway.backends.fake import FakeBackend
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings


class TwoSpeedBackend(FakeBackend):
    """The fake backend, except that model ``slow`` answers 400 tokens, one per 50 ms."""

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        if request.model.id != "slow":
            async for delta in super().generate(request):
                yield delta
            return
        slow = FakeBackend(pieces=["w "] * 400, delay_s=0.05)
        async for delta in slow.generate(request):
            yield delta


def create() -> Litestar:
    """Build the app; ``FAKE_GATEWAY_DIR`` is a folder for the chat template."""
    folder = Path(os.environ["FAKE_GATEWAY_DIR"])
    (folder / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    registry = Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja"),
        ModelEntry(id="slow", triton_model="slow", chat_template="t.jinja", max_tokens_limit=400),
    ), base_dir=str(folder))
    backend = TwoSpeedBackend(ready={"chat_a", "slow"})
    return create_app(Settings.from_env(os.environ), backend, registry=registry)
