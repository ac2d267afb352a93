"""The xgrammar tokenizer-info file TensorRT-LLM's guided decoding reads, written at build time.

NVIDIA's C++ ``tensorrt_llm`` model builds its xgrammar guided decoder from the JSON file named by
``xgrammar_tokenizer_info_path`` and reads three keys: ``encoded_vocab`` (every token's string,
in id order), ``tokenizer_str`` (the Hugging Face fast tokenizer's ``tokenizer.json`` text, from
which xgrammar learns how tokens map to bytes) and ``stop_token_ids``. NVIDIA generates it with
``examples/generate_xgrammar_tokenizer_info.py``; we write the same keys from the model folder's
``tokenizer.json`` with the ``tokenizers`` library, so a build needs neither xgrammar nor torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILE_NAME = "xgrammar_tokenizer_info.json"


def _stop_ids(hf: Path, vocab: dict[str, int]) -> list[int]:
    """``generation_config.json``'s eos ids, else ``tokenizer_config.json``'s eos token."""
    generation = hf / "generation_config.json"
    if generation.exists():
        eos = json.loads(generation.read_text()).get("eos_token_id")
        if isinstance(eos, int):
            return [eos]
        if isinstance(eos, list) and eos:
            return [int(x) for x in eos]
    config = hf / "tokenizer_config.json"
    token: Any = json.loads(config.read_text()).get("eos_token") if config.exists() else None
    if isinstance(token, dict):
        token = token.get("content")
    if not isinstance(token, str) or token not in vocab:
        raise ValueError(f"{hf}: no end-of-sequence token in generation_config.json or tokenizer_config.json")
    return [vocab[token]]


def tokenizer_info(hf_model: str) -> dict[str, Any]:
    """The file's content for the Hugging Face model folder ``hf_model``.

    Raises:
        ValueError: no ``tokenizer.json`` (xgrammar needs a fast tokenizer), or no eos token.
    """
    from tokenizers import Tokenizer  # noqa: PLC0415 (build-time only)

    hf = Path(hf_model)
    path = hf / "tokenizer.json"
    if not path.exists():
        raise ValueError(f"{hf}: no tokenizer.json; guided decoding needs a fast tokenizer")
    tokenizer = Tokenizer.from_file(str(path))
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    encoded = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        encoded[index] = token
    return {"encoded_vocab": encoded, "tokenizer_str": tokenizer.to_str(),
            "stop_token_ids": _stop_ids(hf, vocab)}


def write_tokenizer_info(hf_model: str, target: Path) -> Path:
    """Write the file to ``target`` (its folder is created)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(tokenizer_info(hf_model)))
    return target
