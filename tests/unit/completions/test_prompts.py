"""The four prompt forms -> prompt texts, with a real (tiny) tokenizer for the token-id forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from gateway.completions.prompts import CHARS_PER_TOKEN_MAX, prompt_texts
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.tokens import Tokenizers

VOCAB = {"<s>": 0, "hello": 1, "world": 2, "again": 3, "<unk>": 4}


@pytest.fixture()
def tokens(tmp_path: Path) -> Tokenizers:
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<s>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    return Tokenizers(tmp_path)


ENTRY = ModelEntry(id="m", triton_model="m", tokenizer="tokenizer.json", context_length=8)
NO_TOKENIZER = ModelEntry(id="plain", triton_model="plain", context_length=8)


def _refusal(prompt: object, entry: ModelEntry, tokens: Tokenizers, max_prompts: int = 4) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        prompt_texts(prompt, entry, tokens, max_prompts)  # type: ignore[arg-type]
    assert info.value.param == "prompt"
    return info.value


def test_a_string_is_one_prompt_as_it_is(tokens: Tokenizers) -> None:
    assert prompt_texts("  <s>raw text\n", ENTRY, tokens, 4) == ["  <s>raw text\n"]


def test_strings_are_prompts_in_order(tokens: Tokenizers) -> None:
    assert prompt_texts(["b", "a", "c"], NO_TOKENIZER, tokens, 4) == ["b", "a", "c"]


def test_token_ids_are_one_prompt_decoded_with_specials_kept(tokens: Tokenizers) -> None:
    # WordLevel joins words with spaces; the special token comes back as its text.
    assert prompt_texts([0, 1, 2], ENTRY, tokens, 4) == ["<s> hello world"]


def test_lists_of_token_ids_are_several_prompts(tokens: Tokenizers) -> None:
    assert prompt_texts([[1], [2, 3]], ENTRY, tokens, 4) == ["hello", "world again"]


def test_token_ids_need_a_tokenizer(tokens: Tokenizers) -> None:
    assert "no tokenizer" in _refusal([1, 2], NO_TOKENIZER, tokens).message


@pytest.mark.parametrize("bad", [5, -1, 2**40])
def test_token_ids_outside_the_vocabulary_are_refused(tokens: Tokenizers, bad: int) -> None:
    err = _refusal([1, bad], ENTRY, tokens)
    assert err.message == f"token id {bad} is not in the vocabulary of model 'm' (0 to 4)"


@pytest.mark.parametrize("prompt", ["", [], [""], [[]], ["a", ""], [[1], []]])
def test_empty_prompts_are_refused(tokens: Tokenizers, prompt: object) -> None:
    assert _refusal(prompt, ENTRY, tokens).message == "prompt must not be empty"


@pytest.mark.parametrize("prompt", [["a", 1], [1, [2]], ["a", [1]]])
def test_mixed_forms_are_refused(tokens: Tokenizers, prompt: object) -> None:
    assert "not a mix" in _refusal(prompt, ENTRY, tokens).message


def test_more_prompts_than_allowed_are_refused(tokens: Tokenizers) -> None:
    assert prompt_texts(["a"] * 3, ENTRY, tokens, 3) == ["a"] * 3
    err = _refusal(["a"] * 4, ENTRY, tokens, max_prompts=3)
    assert err.message == "at most 3 prompts are allowed in one request, not 4"


def test_a_prompt_that_cannot_fit_is_refused_before_tokenizing(tokens: Tokenizers) -> None:
    fits = "x" * (8 * CHARS_PER_TOKEN_MAX)
    assert prompt_texts(fits, ENTRY, tokens, 1) == [fits]
    err = _refusal(fits + "x", ENTRY, tokens)
    assert err.code == "context_length_exceeded"
    ids = _refusal([1] * 9, ENTRY, tokens)
    assert ids.code == "context_length_exceeded"
    assert prompt_texts([1] * 8, ENTRY, tokens, 1) == [" ".join(["hello"] * 8)]
