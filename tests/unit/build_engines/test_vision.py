"""The vision build: tiny-llava-random's registry entry makes the gateway produce exactly the
input ids and pixel values that Hugging Face's LlavaProcessor produces, and the model takes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import numpy as np
import pytest

from build_engines.progress import Progress
from build_engines.vision import build_vision, read_checkpoint
from gateway.chat.messages import flatten_messages
from gateway.chat.protocol import ChatMessage
from gateway.chat.templates import load_template, render
from gateway.images.decode import decode_image
from gateway.images.preprocess import pixel_values
from gateway.registry import ModelEntry, load_registry
from tests.images import make_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelEntry]:
    out = tmp_path_factory.mktemp("vision")
    build_vision(out, progress=Progress(quiet=True))
    registry = load_registry(out / "registry.toml")
    entry = registry.get("tiny-llava-random")
    assert entry is not None
    return out, entry


def test_registry_entry_and_triton_config(built: tuple[Path, ModelEntry]) -> None:
    out, entry = built
    assert entry.vision and entry.image_token == "<image>" and entry.image_token_repeat == 16
    assert entry.image_processor is not None and entry.image_processor.crop_height == 64
    config = (out / "model_repository" / "tiny_llava_random" / "config.pbtxt").read_text()
    assert "dims: [ -1, 3, 64, 64 ]" in config and '"2048"' in config
    assert (out / "model_repository" / "tiny_llava_random" / "hf" / "config.json").exists()


def test_gateway_prompt_and_pixels_match_the_hf_processor(built: tuple[Path, ModelEntry]) -> None:
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    out, entry = built
    source = (out / "model_repository" / "tiny_llava_random" / "hf").resolve()
    processor = AutoProcessor.from_pretrained(source)
    jpeg, png = make_image("JPEG", (1024, 768)), make_image("PNG", (90, 200), color=(0, 0, 250))
    body = {"role": "user", "content": [
        {"type": "text", "text": "Compare"}, {"type": "image_url", "image_url": {"url": "a"}},
        {"type": "text", "text": "with"}, {"type": "image_url", "image_url": {"url": "b"}}]}
    messages, refs = flatten_messages([msgspec.convert(body, ChatMessage)], entry)
    assert [p for _, p in refs] == ["messages[0].content[1].image_url.url",
                                    "messages[0].content[3].image_url.url"]
    prompt = render(load_template(entry.resolve(out, entry.chat_template)), messages,  # type: ignore[arg-type]
                    bos_token=entry.bos_token, eos_token=entry.eos_token)
    ours_pixels = np.stack([pixel_values(decode_image(b, 10**8, "x"), entry.image_processor)  # type: ignore[arg-type]
                            for b in (jpeg, png)]).astype(np.float16)
    # HF: one <image> per image in the text, expanded by the processor.
    hf_text = prompt.replace(entry.image_token * entry.image_token_repeat, entry.image_token)
    images = [decode_image(b, 10**8, "x") for b in (jpeg, png)]
    hf = processor(text=hf_text, images=images, return_tensors="pt")
    ours_ids = processor.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    assert ours_ids.tolist() == hf["input_ids"].tolist()
    assert np.abs(ours_pixels.astype(np.float32) - hf["pixel_values"].numpy()).max() < 4e-3
    model = LlavaForConditionalGeneration.from_pretrained(source).eval()
    with torch.inference_mode():
        logits = model(input_ids=ours_ids, pixel_values=torch.from_numpy(ours_pixels).float()).logits
    assert logits.shape[:2] == ours_ids.shape and torch.isfinite(logits).all()


def _checkpoint(folder: Path, vision: dict, pre: dict, strategy: str = "default",
                template: str = "{{ messages[0]['content'] }}") -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llava", "vision_config": vision, "vision_feature_select_strategy": strategy,
        "text_config": {"max_position_embeddings": 4096}}))
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    return folder


def test_token_counts_for_clip_and_siglip_towers(tmp_path: Path) -> None:
    clip = {"model_type": "clip_vision_model", "image_size": 336, "patch_size": 14}
    pre = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336},
           "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    assert read_checkpoint(_checkpoint(tmp_path / "a", clip, pre)).image_token_repeat == 576
    assert read_checkpoint(_checkpoint(tmp_path / "b", clip, pre, "full")).image_token_repeat == 577
    siglip = {"model_type": "siglip_vision_model", "image_size": 384, "patch_size": 14}
    spre = {"size": {"height": 384, "width": 384}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    ckpt = read_checkpoint(_checkpoint(tmp_path / "c", siglip, spre, "full"))
    assert ckpt.image_token_repeat == 729 and ckpt.image_processor.resize_mode == "fixed"
    assert ckpt.context_length == 4096


def test_unservable_checkpoints_say_why(tmp_path: Path) -> None:
    clip = {"model_type": "clip_vision_model", "image_size": 336, "patch_size": 14}
    pre = {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}
    with pytest.raises(ValueError, match="vision tower takes 336"):
        read_checkpoint(_checkpoint(tmp_path / "a", clip, pre))
    ok = {"size": {"shortest_edge": 336}, "crop_size": 336}
    structured = "{% for c in messages[0]['content'] | selectattr('type', 'equalto', 'image') %}"
    with pytest.raises(ValueError, match="--chat-template"):
        read_checkpoint(_checkpoint(tmp_path / "b", clip, ok, template=structured))
    (tmp_path / "plain.jinja").write_text("{{ messages[0]['content'] }}")
    assert read_checkpoint(tmp_path / "b", tmp_path / "plain.jinja").image_token_repeat == 576
    folder = _checkpoint(tmp_path / "c", clip, ok)
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_next",
                                                    "vision_config": clip}))
    with pytest.raises(ValueError, match="not a LLaVA checkpoint"):
        read_checkpoint(folder)
