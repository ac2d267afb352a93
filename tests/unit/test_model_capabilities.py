"""What /v1/models says a model supports: the registry entry's own word first, else its contract."""

from __future__ import annotations

from gateway.models.protocol import ModelCapabilities
from gateway.registry import ModelEntry


def test_by_contract_and_by_the_entrys_word() -> None:
    bls = ModelCapabilities.of(ModelEntry(id="a", triton_model="a", tool_parser="smollm2"))
    assert (bls.tools, bls.structured_outputs, bls.logprobs, bls.vision) == (True, True, True, False)
    llmapi = ModelCapabilities.of(ModelEntry(id="b", triton_model="b", contract="llmapi"))
    assert (llmapi.tools, llmapi.structured_outputs, llmapi.logprobs) == (False, False, False)
    # The CPU vision model's config has no guided-decoding or log-prob inputs: its entry says so.
    vision = ModelCapabilities.of(ModelEntry(id="v", triton_model="v", vision=True,
                                             structured_outputs=False, logprobs=False))
    assert (vision.structured_outputs, vision.logprobs, vision.vision) == (False, False, True)
    only_guided = ModelCapabilities.of(ModelEntry(id="g", triton_model="g", logprobs=False))
    assert (only_guided.structured_outputs, only_guided.logprobs) == (True, False)
    embedding = ModelCapabilities.of(ModelEntry(id="e", triton_model="e", kind="embedding",
                                                structured_outputs=True, logprobs=True))
    assert (embedding.structured_outputs, embedding.logprobs) == (False, False)
