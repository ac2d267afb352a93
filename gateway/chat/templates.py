"""Chat templates: the model's own Jinja template, rendered in a sandbox like HF's apply_chat_template."""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.errors import InvalidRequestError


class TemplateError(InvalidRequestError):
    """The conversation cannot be rendered with the model's template (e.g. roles out of order)."""


def _raise(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}", code="invalid_messages",
                        param="messages")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """Compile a chat template once (sandboxed, immutable, as Hugging Face does)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


@functools.lru_cache(maxsize=64)
def load_template(path: Path) -> jinja2.Template:
    """Compile the template stored at ``path``."""
    return compile_template(path.read_text(encoding="utf-8"))


def render(template: jinja2.Template, messages: list[dict[str, Any]], *, bos_token: str = "",
           eos_token: str = "", add_generation_prompt: bool = True,
           tools: list[dict[str, Any]] | None = None) -> str:
    """Render a conversation into the prompt string the model expects.

    Raises:
        TemplateError: the template raised, or failed on this conversation.
    """
    try:
        return template.render(messages=messages, bos_token=bos_token, eos_token=eos_token,
                               add_generation_prompt=add_generation_prompt, tools=tools)
    except TemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise TemplateError(f"chat template failed: {exc.message}", code="invalid_messages",
                            param="messages") from exc
