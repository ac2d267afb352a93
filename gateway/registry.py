"""The model registry: which public model ids the gateway serves, and how each maps onto Triton.

The registry is one TOML file with one ``[[models]]`` table per model. ``build_engines``
writes it; operators may edit it. Activation at run time lives in the key store's database
and overrides ``active`` here.

Example::

    [[models]]
    id = "smollm2-135m-instruct"
    kind = "chat"                      # chat | embedding
    triton_model = "smollm2_135m_instruct"
    contract = "bls"                   # bls | llmapi | embedding
    text_mode = "delta"                # delta | cumulative (streamed text_output)
    chat_template = "smollm2-135m-instruct/chat_template.jinja"   # relative to the registry file
    bos_token = "<|im_start|>"
    eos_token = "<|im_end|>"
    default_max_tokens = 256
    max_tokens_limit = 2048
    context_length = 2048
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

Kind = Literal["chat", "embedding"]
Contract = Literal["bls", "llmapi", "embedding"]
TextMode = Literal["delta", "cumulative"]


class ImageProcessorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The subset of a Hugging Face image processor the gateway reproduces without torch."""

    # "shortest_edge" resizes the short side then centre-crops (CLIP); "fixed" resizes to
    # height x width directly (SigLIP).
    resize_mode: Literal["shortest_edge", "fixed"] = "shortest_edge"
    shortest_edge: int = 336
    height: int = 336
    width: int = 336
    crop_height: int = 336
    crop_width: int = 336
    do_center_crop: bool = True
    resample: int = 3  # PIL.Image.Resampling.BICUBIC
    rescale_factor: float = 1 / 255
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One served model."""

    id: str
    kind: Kind = "chat"
    triton_model: str
    contract: Contract = "bls"
    text_mode: TextMode = "delta"
    vision: bool = False
    active: bool = True
    created: int = 0
    owned_by: str = "chungus"
    # Prompt rendering (chat models). Paths are relative to the registry file.
    chat_template: str | None = None
    tokenizer: str | None = None  # a tokenizer.json, for token counts when the model gives none
    bos_token: str = ""
    eos_token: str = ""
    default_max_tokens: int = 256
    max_tokens_limit: int = 4096
    context_length: int = 4096
    default_temperature: float | None = None
    # Tool calls: the parser of the model's call format (hermes | llama3_json | mistral | smollm2);
    # unset: the model takes no tools.
    tool_parser: str | None = None
    # Constrained decoding (response_format, forced tools) and per-token logprobs: unset means
    # "as the contract gives" (every generating contract but the LLM API model's); a model whose
    # Triton config lacks those inputs says false (the gateway refuses them either way).
    structured_outputs: bool | None = None
    logprobs: bool | None = None
    # Vision models
    image_token: str = "<image>"
    image_token_repeat: int = 1  # how many image tokens stand for one image in the prompt
    max_images: int = 4
    image_processor: ImageProcessorConfig | None = None
    # Embedding models
    embedding_dim: int | None = None
    max_input_tokens: int | None = None
    supports_dimensions: bool = False

    def resolve(self, base: Path, path: str | None) -> Path | None:
        """Resolve a registry-relative path."""
        if path is None:
            return None
        p = Path(path)
        return p if p.is_absolute() else base / p


class Registry(msgspec.Struct, frozen=True, kw_only=True):
    models: tuple[ModelEntry, ...] = ()
    base_dir: str = "."

    @property
    def base(self) -> Path:
        return Path(self.base_dir)

    def get(self, model_id: str) -> ModelEntry | None:
        for entry in self.models:
            if entry.id == model_id:
                return entry
        return None


class _RegistryFile(msgspec.Struct, kw_only=True):
    models: list[ModelEntry] = msgspec.field(default_factory=list)


def load_registry(path: str | Path) -> Registry:
    """Load and validate a registry TOML file.

    Raises:
        FileNotFoundError: the file does not exist.
        msgspec.ValidationError: an entry is malformed.
    """
    path = Path(path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    parsed = msgspec.convert(data, _RegistryFile)
    ids = [m.id for m in parsed.models]
    if len(ids) != len(set(ids)):
        raise msgspec.ValidationError(f"duplicate model ids in {path}")
    return Registry(models=tuple(parsed.models), base_dir=str(path.parent.resolve()))


def upsert_entry(path: str | Path, entry: ModelEntry) -> None:
    """Add or replace one entry in a registry file (used by build_engines)."""
    path = Path(path)
    models: list[ModelEntry] = []
    if path.exists():
        models = [m for m in load_registry(path).models if m.id != entry.id]
    models.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump_toml(models), encoding="utf-8")


def _dump_toml(models: list[ModelEntry]) -> str:
    """Write entries as TOML (msgspec's TOML encoder needs tomli_w; ours is small enough)."""
    out: list[str] = ["# Written by build_engines. Edit freely; ids must be unique.\n"]
    for m in models:
        out.append("[[models]]\n")
        sub: list[str] = []
        for key, value in msgspec.structs.asdict(m).items():
            if value is None:
                continue
            if isinstance(value, ImageProcessorConfig):
                sub.append("[models.image_processor]\n")
                for k2, v2 in msgspec.structs.asdict(value).items():
                    sub.append(f"{k2} = {_toml_value(v2)}\n")
                continue
            out.append(f"{key} = {_toml_value(value)}\n")
        out.extend(sub)
        out.append("\n")
    return "".join(out)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return msgspec.json.encode(str(value)).decode()
