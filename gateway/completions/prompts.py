"""The four forms of ``prompt`` (a string, strings, token ids, lists of token ids) -> prompt texts.

Token ids are decoded with the model's own tokenizer (special tokens kept as text, so the model
reads them back as the same control tokens); a model without a tokenizer here cannot take them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.completions.protocol import Prompt
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.tokens import Tokenizers

# Characters one token of context may stand for, at most, in any tokenizer we know of: more text
# than this cannot fit the context, whatever it says (refused before tokenizing).
CHARS_PER_TOKEN_MAX = 32


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="prompt", code="invalid_value")


def _too_long(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="prompt", code="context_length_exceeded")


def prompt_texts(prompt: Prompt, entry: ModelEntry, tokens: Tokenizers, max_prompts: int) -> list[str]:
    """Every prompt of the request as text, in order.

    Args:
        prompt: the request's ``prompt`` field as decoded.
        entry: the model (its tokenizer decodes token ids; its context bounds the size).
        tokens: the gateway's tokenizers.
        max_prompts: how many prompts one request may carry.

    Returns:
        One text per prompt (one for a string or a single list of token ids).

    Raises:
        InvalidRequestError: under ``prompt``: empty, mixed forms, too many or too long prompts,
            token ids out of the vocabulary or for a model without a tokenizer.
    """
    if isinstance(prompt, str):
        return [_checked_text(prompt, entry)]
    if not prompt:
        raise _bad("prompt must not be empty")
    if all(isinstance(p, str) for p in prompt):
        items: list[str | list[int]] = [p for p in prompt if isinstance(p, str)]
    elif all(isinstance(p, int) for p in prompt):
        items = [[p for p in prompt if isinstance(p, int)]]
    elif all(isinstance(p, list) for p in prompt):
        items = [p for p in prompt if isinstance(p, list)]
    else:
        raise _bad("prompt must be a string, an array of strings, an array of token ids or an "
                   "array of arrays of token ids, not a mix of them")
    if len(items) > max_prompts:
        raise _bad(f"at most {max_prompts} prompts are allowed in one request, not {len(items)}")
    return [_checked_text(p, entry) if isinstance(p, str) else _decoded(p, entry, tokens)
            for p in items]


def _checked_text(text: str, entry: ModelEntry) -> str:
    if not text:
        raise _bad("prompt must not be empty")
    if len(text) > entry.context_length * CHARS_PER_TOKEN_MAX:
        raise _too_long(f"a prompt of {len(text)} characters cannot fit the context of model "
                        f"'{entry.id}' ({entry.context_length} tokens)")
    return text


def _decoded(ids: Sequence[int], entry: ModelEntry, tokens: Tokenizers) -> str:
    if not ids:
        raise _bad("prompt must not be empty")
    if len(ids) > entry.context_length:
        raise _too_long(f"a prompt of {len(ids)} tokens cannot fit the context of model "
                        f"'{entry.id}' ({entry.context_length} tokens)")
    vocab = tokens.vocab_size(entry)
    if vocab is None:
        raise _bad(f"model '{entry.id}' takes no token ids here (the gateway has no tokenizer "
                   "for it): send the prompt as text")
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise _bad(f"token id {bad} is not in the vocabulary of model '{entry.id}' "
                   f"(0 to {vocab - 1})")
    text = tokens.decode(entry, ids)
    assert text is not None  # the model has a tokenizer: vocab_size said so
    return _checked_text(text, entry)
