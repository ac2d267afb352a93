"""The service's plan for a request: one generation per choice in OpenAI's index order (prompt i,
choice j -> index i * n + j), seed + j per choice, admission reserving prompts x n x max_tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.auth.principal import OpenAdmission, Principal
from gateway.backends.fake import FakeBackend
from gateway.catalog import ModelCatalog
from gateway.completions.protocol import CompletionRequest
from gateway.completions.service import CompletionService
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry, Registry
from gateway.tokens import Tokenizers

MODELS = (ModelEntry(id="m", triton_model="m", context_length=64, max_tokens_limit=50),
          ModelEntry(id="v", triton_model="v", vision=True),
          ModelEntry(id="e", triton_model="e", kind="embedding", contract="embedding"))


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
def guard() -> RecordingGuard:
    return RecordingGuard()


@pytest.fixture()
def service(guard: RecordingGuard) -> CompletionService:
    registry = Registry(models=MODELS, base_dir=".")
    backend = FakeBackend(ready={"m", "v", "e"})
    return CompletionService(ModelCatalog(registry, backend), backend, guard, Tokenizers("."))


async def test_prompts_times_n_in_index_order_with_seeds(service: CompletionService,
                                                         guard: RecordingGuard) -> None:
    req = CompletionRequest(model="m", prompt=["one", "two two", "three"], n=2, seed=41, max_tokens=5)
    prep = await service.prepare(Principal(), req, "r1")
    got = [(g.prompt, g.seed, g.max_tokens, g.request_id) for g in prep.generations]
    assert got == [("one", 41, 5, "r1"), ("one", 42, 5, "r1"), ("two two", 41, 5, "r1"),
                   ("two two", 42, 5, "r1"), ("three", 41, 5, "r1"), ("three", 42, 5, "r1")]
    # estimates: len // 4 + 1 per prompt (no tokenizer) = 1 + 2 + 2; plus 3 prompts x 2 x 5
    assert guard.reserved == [5 + 30]
    runs = prep.runs()
    assert [(r.index, r.prompt_index) for r in runs] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]


async def test_unseeded_choices_stay_unseeded_and_the_top_seed_wraps(service: CompletionService) -> None:
    prep = await service.prepare(Principal(), CompletionRequest(model="m", prompt="p", n=2), "r")
    assert [g.seed for g in prep.generations] == [None, None]
    top = 2**63 - 1
    prep = await service.prepare(Principal(), CompletionRequest(model="m", prompt="p", n=2, seed=top), "r")
    assert [g.seed for g in prep.generations] == [top, -(2**63)]


async def test_sampling_and_logprobs_reach_the_backend_request(service: CompletionService) -> None:
    req = CompletionRequest(model="m", prompt="p", temperature=0.3, top_p=0.9, top_k=7, stop="\n",
                            presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.1,
                            min_tokens=2, logprobs=3, stream=True)
    g = (await service.prepare(Principal(), req, "r")).generations[0]
    assert (g.temperature, g.top_p, g.top_k, tuple(g.stop)) == (0.3, 0.9, 7, ("\n",))
    assert (g.presence_penalty, g.frequency_penalty, g.repetition_penalty, g.min_tokens) == (0.5, -0.5, 1.1, 2)
    assert (g.logprobs, g.top_logprobs, g.stream, g.max_tokens) == (True, 3, True, 16)
    g = (await service.prepare(Principal(), CompletionRequest(model="m", prompt="p"), "r")).generations[0]
    assert (g.logprobs, g.top_logprobs, g.images, g.guide) == (False, 0, None, None)


@pytest.mark.parametrize(("model", "prompt", "param"), [
    ("e", "p", "model"),
    ("v", "look <image> here", "prompt"),
    ("m", ["a"] * 5, "prompt"),  # n=16 leaves room for 4 prompts
])
async def test_refusals(service: CompletionService, guard: RecordingGuard, model: str, prompt: object,
                        param: str) -> None:
    req = CompletionRequest(model=model, prompt=prompt, n=16)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        await service.prepare(Principal(), req, "r")
    assert info.value.param == param
    assert guard.reserved == []  # refused before admission


async def test_a_context_overflow_is_refused_after_admission_and_released(tmp_path: object) -> None:
    from pathlib import Path

    from tokenizers import Tokenizer, models, pre_tokenizers

    base = Path(str(tmp_path))
    tok = Tokenizer(models.WordLevel({"w": 0, "<unk>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(base / "tok.json"))
    entry = ModelEntry(id="t", triton_model="t", tokenizer="tok.json", context_length=10)
    registry = Registry(models=(entry,), base_dir=str(base))
    backend = FakeBackend(ready={"t"})
    guard = RecordingGuard()
    service = CompletionService(ModelCatalog(registry, backend), backend, guard, Tokenizers(base))
    ok = await service.prepare(Principal(), CompletionRequest(model="t", prompt="w w", max_tokens=8), "r")
    assert ok.generations[0].prompt_tokens == 2 and ok.estimates == [2]
    with pytest.raises(InvalidRequestError) as info:
        await service.prepare(Principal(), CompletionRequest(model="t", prompt="w w w", max_tokens=8), "r")
    assert (info.value.param, info.value.code) == ("prompt", "context_length_exceeded")
    assert "messages" not in info.value.message and "11 tokens" in info.value.message
    assert guard.finished == [(0, 0)]
