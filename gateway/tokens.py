"""One tokenizer service for the whole gateway: each registry tokenizer.json loaded once, real counts.

Counting must not pad or truncate (all-MiniLM-L6-v2's tokenizer.json pads to 128), so every
tokenizer is loaded with both turned off, whatever its file says.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.registry import ModelEntry

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class Tokenizers:
    """Token counts with each model's own tokenizer; models without one count as ``None``."""

    def __init__(self, base_dir: Path | str) -> None:
        self.base = Path(base_dir)
        self._cache: dict[str, Tokenizer] = {}
        self._specials: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # counts may run on worker threads

    def get(self, entry: ModelEntry) -> Tokenizer | None:
        """The model's tokenizer, loaded on first use; ``None`` when the registry names none."""
        if entry.tokenizer is None:
            return None
        tok = self._cache.get(entry.id)
        if tok is not None:
            return tok
        from tokenizers import Tokenizer  # heavy: only when a model has a tokenizer

        path = entry.resolve(self.base, entry.tokenizer)
        with self._lock:
            tok = self._cache.get(entry.id)
            if tok is None:
                tok = Tokenizer.from_file(str(path))
                tok.no_truncation()
                tok.no_padding()
                self._cache[entry.id] = tok
        return tok

    def specials(self, entry: ModelEntry) -> tuple[str, ...]:
        """Strings the model reads as control tokens: its tokenizer's special added tokens, BOS,
        EOS and the image token (longest first, so a longer one is broken before its prefix)."""
        cached = self._specials.get(entry.id)
        if cached is not None:
            return cached
        found = {entry.bos_token, entry.eos_token}
        if entry.vision:
            found.add(entry.image_token)
        tok = self.get(entry)
        if tok is not None:
            found |= {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
        result = tuple(sorted((t for t in found if len(t) > 1), key=len, reverse=True))
        self._specials[entry.id] = result
        return result

    def count(self, entry: ModelEntry, text: str, *, special: bool = False) -> int | None:
        """Tokens in ``text``; ``special`` adds the model's special tokens (BOS, CLS/SEP)."""
        tok = self.get(entry)
        if tok is None:
            return None
        return len(tok.encode(text, add_special_tokens=special).ids)

    def count_batch(self, entry: ModelEntry, texts: Sequence[str], *,
                    special: bool = True) -> list[int] | None:
        """Tokens in each of ``texts`` (embeddings count with special tokens, as the model reads)."""
        tok = self.get(entry)
        if tok is None:
            return None
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=special)]

    def vocab_size(self, entry: ModelEntry) -> int | None:
        """How many token ids the model's tokenizer knows (added tokens included)."""
        tok = self.get(entry)
        if tok is None:
            return None
        return int(tok.get_vocab_size(with_added_tokens=True))

    def decode(self, entry: ModelEntry, ids: Sequence[int]) -> str | None:
        """Token ids -> text, special tokens kept as their text (the model reads them back)."""
        tok = self.get(entry)
        if tok is None:
            return None
        return str(tok.decode(list(ids), skip_special_tokens=False))
