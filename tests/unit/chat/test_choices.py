"""n choices: admission reserves n times the completion budget, usage counts the prompt once and
every choice's tokens, and a stream the client leaves stops every choice and bills what was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.auth.principal import OpenAdmission, Principal
from gateway.backends.fake import FakeBackend
from gateway.catalog import ModelCatalog
from gateway.chat.protocol import ChatCompletionRequest, ChatMessage
from gateway.chat.service import ChatService
from gateway.registry import ModelEntry, Registry
from gateway.tokens import Tokenizers


@dataclass
class RecordingGuard:
    reserved: list[int] = field(default_factory=list)
    finished: list[tuple[int, int]] = field(default_factory=list)

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        return Principal()

    async def admit(self, principal: Principal, entry: ModelEntry, reserve_tokens: int) -> OpenAdmission:
        self.reserved.append(reserve_tokens)
        guard = self

        class Recorded(OpenAdmission):
            async def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
                guard.finished.append((prompt_tokens, completion_tokens))

        return Recorded()


@pytest.fixture()
def parts(tmp_path: Path) -> tuple[ChatService, RecordingGuard, FakeBackend]:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    registry = Registry(models=(ModelEntry(id="m", triton_model="m", chat_template="t.jinja"),),
                        base_dir=str(tmp_path))
    backend = FakeBackend(ready={"m"}, pieces=["a "] * 10)
    guard = RecordingGuard()
    return ChatService(ModelCatalog(registry, backend), backend, guard, Tokenizers(str(tmp_path))), guard, backend


def _req(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[ChatMessage("user", "x" * 40)], **fields)  # type: ignore[arg-type]


async def test_admission_reserves_n_times_max_tokens(parts: tuple[ChatService, RecordingGuard, FakeBackend]) -> None:
    service, guard, _ = parts
    prep = await service.prepare(Principal(), _req(n=3, max_tokens=20), "r")
    assert guard.reserved == [40 // 4 + 1 + 3 * 20]
    done = await service.complete(prep)
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (1, 30)
    assert guard.finished == [(1, 30)]


async def test_a_left_stream_stops_every_choice_and_bills_what_was_made(
        parts: tuple[ChatService, RecordingGuard, FakeBackend]) -> None:
    service, guard, backend = parts
    backend.delay_s = 0.01
    prep = await service.prepare(Principal(), _req(n=2, max_tokens=10, stream=True), "r")
    events = await service.stream(prep)
    seen = [await anext(events) for _ in range(6)]  # two role chunks, then four pieces
    assert all(e.startswith(b"data: {") for e in seen)
    await events.aclose()  # type: ignore[attr-defined]
    assert backend.cancelled == 2
    assert len(guard.finished) == 1 and 3 <= guard.finished[0][1] < 20


def test_held_back_text_is_sent_when_a_generation_ends_without_a_finish_reason() -> None:
    from gateway.backends.base import Delta
    from gateway.chat.choices import ChoiceRun
    from gateway.chat.protocol import ChatCompletionTool, FunctionDefinition
    from gateway.chat.tools.definitions import check_tools

    plan = check_tools([ChatCompletionTool("function", FunctionDefinition("f"))], None, None)
    run = ChoiceRun(0, plan, "hermes", None)
    assert [e.text for e in run.add(Delta(text="a <tool"))] == ["a "]
    assert [e.text for e in run.flush()] == ["<tool"]
    assert run.flush() == []
    assert run.choice().message.content == "a <tool"
