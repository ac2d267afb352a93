"""Vision target: a local Hugging Face LLaVA checkpoint -> a Triton vision-chat model + registry entry.

No vision-language weights can be downloaded on our machines, so the default builds
``tiny-llava-random``: a LLaVA-architecture model (CLIP vision tower, 2-layer Llama) with seeded
random weights and the SmolLM2 tokenizer plus ``<image>``. It proves the whole image path; its
answers are noise. Any real HF LLaVA checkpoint a user has builds the same way with ``--source``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from string import Template

from build_engines.cpu import SOURCE_DIR, cache_dir, fetch_smollm2, read_gguf, triton_name
from build_engines.progress import Progress
from gateway.registry import ImageProcessorConfig, ModelEntry, upsert_entry

DEFAULT_ID = "tiny-llava-random"
TINY_VERSION = "v1"


def build_tiny_llava(target: Path, progress: Progress) -> Path:
    """Write the seeded random tiny LLaVA to ``target`` (cached: same seed, same weights)."""
    if (target / "config.json").exists():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    gguf = fetch_smollm2(progress)
    with progress.step("building the SmolLM2 tokenizer from the GGUF"):
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.add_special_tokens({"extra_special_tokens": ["<image>"]},
                               replace_extra_special_tokens=False)
    with progress.step("building tiny-llava-random (seed 0)"):
        vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=64, patch_size=16,
                                  projection_dim=64)
        text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
        config = LlavaConfig(vision_config=vision, text_config=text,
                             image_token_id=tok.convert_tokens_to_ids("<image>"),
                             vision_feature_select_strategy="default", vision_feature_layer=-1,
                             projector_hidden_act="gelu")
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).eval()
        processor = CLIPImageProcessor(
            size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711])
        tmp = target.with_name(target.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "chat_template.jinja").write_text(read_gguf(gguf).chat_template)
        tmp.rename(target)
    return target


def read_checkpoint(source: Path) -> tuple[ImageProcessorConfig, str, int]:
    """(image processor settings, image token, tokens per image) of a LLaVA checkpoint.

    Raises:
        ValueError: not a LLaVA-style checkpoint.
    """
    config = json.loads((source / "config.json").read_text())
    if "vision_config" not in config:
        raise ValueError(f"{source} is not a LLaVA-style checkpoint (no vision_config)")
    pp = json.loads((source / "preprocessor_config.json").read_text())
    vision = config["vision_config"]
    per_side = int(vision.get("image_size", 336)) // int(vision.get("patch_size", 14))
    strategy = config.get("vision_feature_select_strategy", "default")
    repeat = per_side * per_side + (1 if strategy == "full" and "clip" in
                                    vision.get("model_type", "clip") else 0)
    size, crop = pp.get("size", {}), pp.get("crop_size", {})
    if "shortest_edge" in size:
        cfg = ImageProcessorConfig(
            resize_mode="shortest_edge", shortest_edge=int(size["shortest_edge"]),
            crop_height=int(crop.get("height", size["shortest_edge"])),
            crop_width=int(crop.get("width", size["shortest_edge"])),
            do_center_crop=bool(pp.get("do_center_crop", True)),
            resample=int(pp.get("resample", 3)), rescale_factor=float(pp.get("rescale_factor", 1 / 255)),
            image_mean=tuple(pp["image_mean"]), image_std=tuple(pp["image_std"]))  # type: ignore[arg-type]
    else:
        cfg = ImageProcessorConfig(
            resize_mode="fixed", height=int(size["height"]), width=int(size["width"]),
            do_center_crop=False, resample=int(pp.get("resample", 3)),
            rescale_factor=float(pp.get("rescale_factor", 1 / 255)),
            image_mean=tuple(pp["image_mean"]), image_std=tuple(pp["image_std"]))  # type: ignore[arg-type]
    tok_config = json.loads((source / "tokenizer_config.json").read_text()) \
        if (source / "tokenizer_config.json").exists() else {}
    image_token = str(tok_config.get("image_token", "<image>"))
    return cfg, image_token, repeat


def build_vision(out: Path, *, source: Path | None = None, model_id: str = DEFAULT_ID,
                 max_images: int = 4, progress: Progress | None = None) -> ModelEntry:
    """Write ``out/model_repository/<name>`` and the registry entry for a LLaVA-style model."""
    progress = progress or Progress()
    if source is None:
        source = build_tiny_llava(cache_dir() / "models" / f"tiny-llava-random-{TINY_VERSION}", progress)
    source = source.resolve()
    cfg, image_token, repeat = read_checkpoint(source)
    name = triton_name(model_id)
    model_dir = out / "model_repository" / name
    with progress.step(f"writing Triton vision model {name}"):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(SOURCE_DIR / "llava_vision" / "1", model_dir / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(SOURCE_DIR / "llamacpp_chat" / "1" / "textstream.py", model_dir / "1")
        (model_dir / "hf").symlink_to(source)
        template = Template((SOURCE_DIR / "llava_vision" / "config.pbtxt.tmpl").read_text())
        (model_dir / "config.pbtxt").write_text(template.substitute(
            name=name, height=cfg.crop_height if cfg.do_center_crop else cfg.height,
            width=cfg.crop_width if cfg.do_center_crop else cfg.width, max_images=max_images))
        side = out / "models" / model_id
        side.mkdir(parents=True, exist_ok=True)
        chat = source / "chat_template.jinja"
        shutil.copy(chat, side / "chat_template.jinja")
    tok_config = json.loads((source / "tokenizer_config.json").read_text())

    def token(key: str) -> str:
        value = tok_config.get(key) or ""
        return value.get("content", "") if isinstance(value, dict) else str(value)

    entry = ModelEntry(id=model_id, kind="chat", vision=True, triton_model=name, contract="bls",
                       text_mode="delta", chat_template=f"models/{model_id}/chat_template.jinja",
                       bos_token=token("bos_token"), eos_token=token("eos_token"),
                       image_token=image_token, image_token_repeat=repeat, max_images=max_images,
                       image_processor=cfg, default_max_tokens=64, max_tokens_limit=512,
                       context_length=2048, created=int((source / "config.json").stat().st_mtime))
    upsert_entry(out / "registry.toml", entry)
    return entry


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("vision", help="HF LLaVA checkpoint -> Triton vision-chat model")
    p.add_argument("--source", type=Path, help="local HF LLaVA folder (default: tiny-llava-random)")
    p.add_argument("--id", default=DEFAULT_ID)
    p.add_argument("--out", type=Path, default=Path("var"))
    p.add_argument("--max-images", type=int, default=4)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entry = build_vision(args.out, source=args.source, model_id=args.id, max_images=args.max_images)
    print(f"registered {entry.id} -> {args.out / 'registry.toml'}")
    return 0
