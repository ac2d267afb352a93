"""The gateway's registry entry for a TensorRT-LLM model, and the files it needs beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from build_engines.cpu import triton_name
from build_engines.trtllm.config import TrtllmModel
from gateway.registry import ModelEntry

# NVIDIA's LLaVA preprocessing wraps the text itself ("USER:\n" <image> text " ASSISTANT:"), so
# the gateway sends the plain system and user text, and no image tokens for a single image.
LLAVA_ENGINE_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] in ('system', 'user') %}"
    "{{ m['content'] }}{% if not loop.last %}\n{% endif %}{% endif %}{% endfor %}")


def _tokenizer_config(hf: Path) -> dict[str, Any]:
    path = hf / "tokenizer_config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _special(config: dict[str, Any], key: str) -> str:
    value = config.get(key) or ""
    return value.get("content", "") if isinstance(value, dict) else str(value)


def chat_template(m: TrtllmModel) -> str | None:
    """The Jinja chat template the gateway renders for this model, if the checkpoint has one."""
    if m.vision and m.path == "engine":
        return LLAVA_ENGINE_TEMPLATE
    hf = Path(m.hf_model)
    if (hf / "chat_template.jinja").exists():
        return (hf / "chat_template.jinja").read_text()
    template = _tokenizer_config(hf).get("chat_template")
    return template if isinstance(template, str) else None


def _vision_fields(m: TrtllmModel, template: Path) -> dict[str, Any]:
    if not m.vision:
        return {}
    from build_engines.vision import read_checkpoint  # noqa: PLC0415  (vision pulls in more)

    processor = read_checkpoint(Path(m.hf_model), chat_template=template).image_processor
    # One "<image>" per image when NVIDIA's preprocessing splits on it (max_num_images > 1);
    # none for a single image, whose place the preprocessing fixes itself.
    return {"vision": True, "image_processor": processor, "max_images": m.max_images,
            "image_token": "<image>", "image_token_repeat": 1 if m.max_images > 1 else 0}


def registry_entry(m: TrtllmModel, out: Path) -> ModelEntry:
    """The gateway's entry; writes ``out/models/<id>/{chat_template.jinja,tokenizer.json}``.

    Raises:
        ValueError: a vision checkpoint that is not LLaVA-style, or whose image processor does
            not fit its vision tower.
    """
    side = out / "models" / m.id
    side.mkdir(parents=True, exist_ok=True)
    hf = Path(m.hf_model)
    template = chat_template(m)
    if template is not None:
        (side / "chat_template.jinja").write_text(template)
    has_tokenizer = (hf / "tokenizer.json").exists()
    if has_tokenizer:
        shutil.copy(hf / "tokenizer.json", side / "tokenizer.json")
    config = _tokenizer_config(hf)
    engine = m.path == "engine"
    return ModelEntry(
        id=m.id, kind="chat",
        triton_model=("tensorrt_llm_bls" if m.frontend == "bls" else "ensemble") if engine
        else triton_name(m.id),
        contract="bls" if engine else "llmapi",
        text_mode="delta" if engine and m.frontend == "ensemble" else "cumulative",
        chat_template=f"models/{m.id}/chat_template.jinja" if template is not None else None,
        tokenizer=f"models/{m.id}/tokenizer.json" if has_tokenizer else None,
        # The LLM API tokenizes with SamplingParams.add_special_tokens (default true, and NVIDIA's
        # Triton model has no input to turn it off): the tokenizer adds BOS itself, so the template
        # must render none. The engine path's preprocessing runs with add_special_tokens false
        # for text models (see repository.engine_values), so there the template renders BOS.
        bos_token=_special(config, "bos_token") if engine else "",
        eos_token=_special(config, "eos_token"),
        default_max_tokens=min(m.default_max_tokens, m.max_seq_len - m.max_input_len),
        max_tokens_limit=m.max_seq_len - 1,
        # Prompt + completion must fit max_seq_len; the engine takes prompts up to max_input_len.
        # The LLM API (PyTorch backend, no chunked prefill in our model.yaml) refuses prompts over
        # max_num_tokens as well as over max_seq_len.
        context_length=m.max_seq_len,
        max_input_tokens=m.max_input_len if engine else min(m.max_seq_len, m.max_num_tokens),
        **_vision_fields(m, side / "chat_template.jinja"))
