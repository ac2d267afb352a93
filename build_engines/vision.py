"""Vision target: a local Hugging Face LLaVA checkpoint -> a Triton vision-chat model + registry entry.

No vision-language weights can be downloaded on our machines, so the default builds
``tiny-llava-random``: a LLaVA-architecture model (CLIP vision tower, 2-layer Llama) with seeded
random weights and the SmolLM2 tokenizer plus ``<image>``. It proves the whole image path; its
answers are noise. Any HF LLaVA checkpoint (``LlavaForConditionalGeneration``, CLIP or SigLIP
tower) a user has builds the same way with ``--source``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from build_engines.cpu import SOURCE_DIR, cache_dir, fetch_smollm2, read_gguf, triton_name
from build_engines.progress import Progress
from gateway.registry import ImageProcessorConfig, ModelEntry, upsert_entry

DEFAULT_ID = "tiny-llava-random"
TINY_VERSION = "v2"
TINY_SIDE, TINY_PATCH = 64, 16  # 4x4 patches: 16 image tokens per image
# Templates that walk structured content parts; the gateway renders text with image tokens in it.
_STRUCTURED = re.compile(r"""\[\s*['"]type['"]\s*\]|selectattr\(\s*['"]type['"]|\.type\b""")


def build_tiny_llava(target: Path, progress: Progress) -> Path:
    """Write the seeded random tiny LLaVA to ``target`` (cached: same seed, same weights)."""
    if (target / "config.json").exists():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: PLC0415 (heavy, build-time only)
    from transformers import (  # noqa: PLC0415
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    gguf = fetch_smollm2(progress)
    with progress.step("building the SmolLM2 tokenizer from the GGUF"):
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.add_special_tokens({"extra_special_tokens": ["<image>"]},
                               replace_extra_special_tokens=False)
    with progress.step(f"building {DEFAULT_ID} (seed 0)"):
        vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=TINY_SIDE,
                                  patch_size=TINY_PATCH, projection_dim=64)
        text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
        image_id = tok.convert_tokens_to_ids("<image>")
        assert isinstance(image_id, int), "one token, one id"
        config = LlavaConfig(vision_config=vision, text_config=text,
                             image_token_index=image_id,
                             image_seq_length=(TINY_SIDE // TINY_PATCH) ** 2,
                             vision_feature_select_strategy="default", vision_feature_layer=-1,
                             projector_hidden_act="gelu")
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).eval()
        images = CLIPImageProcessor(
            size={"shortest_edge": TINY_SIDE}, crop_size={"height": TINY_SIDE, "width": TINY_SIDE},
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711])
        processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=TINY_PATCH,
                                   vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1,
                                   chat_template=read_gguf(gguf).chat_template)
        tmp = target.with_name(target.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        tmp.rename(target)
    return target


@dataclass(frozen=True)
class Checkpoint:
    """What the gateway needs to know about a LLaVA checkpoint."""

    image_processor: ImageProcessorConfig
    image_token: str
    image_token_repeat: int
    chat_template: str
    bos_token: str
    eos_token: str
    context_length: int


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _processor_config(pp: dict[str, Any]) -> ImageProcessorConfig:
    size, crop = pp.get("size", {}), pp.get("crop_size", {})
    size = {"shortest_edge": size} if isinstance(size, int) else size
    crop = {"height": crop, "width": crop} if isinstance(crop, int) else crop
    common: dict[str, Any] = {
        "resample": int(pp.get("resample", 3)),
        "rescale_factor": float(pp.get("rescale_factor", 1 / 255)) if pp.get("do_rescale", True) else 1.0,
        "image_mean": tuple(pp.get("image_mean", (0.0,) * 3)) if pp.get("do_normalize", True) else (0.0,) * 3,
        "image_std": tuple(pp.get("image_std", (1.0,) * 3)) if pp.get("do_normalize", True) else (1.0,) * 3,
    }
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        return ImageProcessorConfig(
            resize_mode="shortest_edge", shortest_edge=edge, do_center_crop=bool(pp.get("do_center_crop", True)),
            crop_height=int(crop.get("height", edge)), crop_width=int(crop.get("width", edge)), **common)
    return ImageProcessorConfig(resize_mode="fixed", height=int(size["height"]), width=int(size["width"]),
                                do_center_crop=False, **common)


def _chat_template(source: Path, tok_config: dict[str, Any]) -> str:
    if (source / "chat_template.jinja").exists():
        return (source / "chat_template.jinja").read_text(encoding="utf-8")
    for name in ("chat_template.json", "processor_config.json"):
        if isinstance(template := _json(source / name).get("chat_template"), str):
            return template
    if isinstance(template := tok_config.get("chat_template"), str):
        return template
    raise ValueError(f"{source} has no chat template; pass --chat-template")


def read_checkpoint(source: Path, chat_template: Path | None = None) -> Checkpoint:
    """Read a LLaVA checkpoint's image settings, image token count, template and special tokens.

    Raises:
        ValueError: not a plain LLaVA checkpoint, a tower input size that the image processor does
            not produce, or a chat template that needs structured content (pass another).
    """
    config = _json(source / "config.json")
    if config.get("model_type") != "llava" or "vision_config" not in config:
        raise ValueError(f"{source} is not a LLaVA checkpoint (model_type "
                         f"{config.get('model_type')!r}; LLaVA-NeXT and others are not supported)")
    # transformers 5 keeps the image processor inside processor_config.json; older ones beside it.
    pre = (_json(source / "preprocessor_config.json")
           or _json(source / "processor_config.json").get("image_processor"))
    if not pre:
        raise ValueError(f"{source} has no preprocessor_config.json (image processor settings)")
    cfg = _processor_config(pre)
    vision = config["vision_config"]
    side, patch = int(vision.get("image_size", 336)), int(vision.get("patch_size", 14))
    out_h, out_w = (cfg.crop_height, cfg.crop_width) if cfg.do_center_crop else (cfg.height, cfg.width)
    if (out_h, out_w) != (side, side):
        raise ValueError(f"image processor makes {out_h}x{out_w} but the vision tower takes {side}")
    # What the model produces per image: the patches, plus CLIP's CLS token, minus the first
    # token when the feature strategy is "default" (the same count LlavaProcessor inserts).
    cls = 1 if "clip" in str(vision.get("model_type", "clip_vision_model")) else 0
    drop = 1 if config.get("vision_feature_select_strategy", "default") == "default" else 0
    tok_config = _json(source / "tokenizer_config.json")

    def token(key: str) -> str:
        value = tok_config.get(key) or ""
        return str(value.get("content", "")) if isinstance(value, dict) else str(value)

    template = (chat_template.read_text(encoding="utf-8") if chat_template
                else _chat_template(source, tok_config))
    if _STRUCTURED.search(template):
        raise ValueError("the chat template walks structured content parts; the gateway renders "
                         "text with image tokens in place: pass --chat-template with a template "
                         "that reads message['content'] as a string")
    image_token = str(_json(source / "processor_config.json").get("image_token")
                      or tok_config.get("image_token") or "<image>")
    text = config.get("text_config", {})
    return Checkpoint(cfg, image_token, (side // patch) ** 2 + cls - drop, template,
                      token("bos_token"), token("eos_token"),
                      int(text.get("max_position_embeddings", 4096)))


def build_vision(out: Path, *, source: Path | None = None, model_id: str = DEFAULT_ID,
                 max_images: int = 4, chat_template: Path | None = None,
                 progress: Progress | None = None) -> ModelEntry:
    """Write ``out/model_repository/<name>`` and the registry entry for a LLaVA checkpoint.

    Args:
        out: build output folder (holds model_repository/, models/, registry.toml).
        source: a local HF LLaVA folder; default the seeded random ``tiny-llava-random``.
        model_id: public model id.
        max_images: the most images one request may carry.
        chat_template: a Jinja file to use instead of the checkpoint's template.
        progress: progress display.

    Returns:
        The registry entry written.

    Raises:
        ValueError: the checkpoint cannot be served (see ``read_checkpoint``).
    """
    progress = progress or Progress()
    if source is None:
        source = build_tiny_llava(cache_dir() / "models" / f"{DEFAULT_ID}-{TINY_VERSION}", progress)
    source = source.resolve()
    ckpt = read_checkpoint(source, chat_template)
    cfg = ckpt.image_processor
    name = triton_name(model_id)
    model_dir = out / "model_repository" / name
    with progress.step(f"writing Triton vision model {name}"):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(SOURCE_DIR / "llava_vision" / "1", model_dir / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for shared in ("textstream.py", "inputs.py"):  # shared with the llama.cpp model
            shutil.copy(SOURCE_DIR / "llamacpp_chat" / "1" / shared, model_dir / "1")
        (model_dir / "hf").symlink_to(source)
        template = Template((SOURCE_DIR / "llava_vision" / "config.pbtxt.tmpl").read_text())
        side = cfg.crop_height if cfg.do_center_crop else cfg.height
        (model_dir / "config.pbtxt").write_text(template.substitute(
            name=name, height=side, width=cfg.crop_width if cfg.do_center_crop else cfg.width,
            max_images=max_images, context_length=ckpt.context_length))
        (out / "models" / model_id).mkdir(parents=True, exist_ok=True)
        (out / "models" / model_id / "chat_template.jinja").write_text(ckpt.chat_template,
                                                                      encoding="utf-8")
    entry = ModelEntry(
        id=model_id, kind="chat", vision=True, triton_model=name, contract="bls", text_mode="delta",
        chat_template=f"models/{model_id}/chat_template.jinja", bos_token=ckpt.bos_token,
        eos_token=ckpt.eos_token, image_token=ckpt.image_token,
        image_token_repeat=ckpt.image_token_repeat, max_images=max_images, image_processor=cfg,
        default_max_tokens=min(256, ckpt.context_length // 4),
        max_tokens_limit=min(1024, ckpt.context_length // 2), context_length=ckpt.context_length,
        max_input_tokens=ckpt.context_length, created=int((source / "config.json").stat().st_mtime),
        # The CPU vision model declares no guided-decoding or log-prob inputs.
        structured_outputs=False, logprobs=False)
    upsert_entry(out / "registry.toml", entry)
    return entry


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("vision", help="HF LLaVA checkpoint -> Triton vision-chat model")
    p.add_argument("--source", type=Path, help="local HF LLaVA folder (default: tiny-llava-random)")
    p.add_argument("--id", default=DEFAULT_ID, help="public model id")
    p.add_argument("--out", type=Path, default=Path("var"), help="build output folder")
    p.add_argument("--max-images", type=int, default=4, help="most images per request")
    p.add_argument("--chat-template", type=Path, help="Jinja chat template to use instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entry = build_vision(args.out, source=args.source, model_id=args.id,
                         max_images=args.max_images, chat_template=args.chat_template)
    print(f"registered {entry.id} -> {args.out / 'registry.toml'}")
    return 0
