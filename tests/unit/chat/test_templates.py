"""Chat templates render like Hugging Face's apply_chat_template, in a sandbox."""

from __future__ import annotations

import pytest

from gateway.chat.templates import TemplateError, compile_template, render

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_chatml_with_generation_prompt() -> None:
    out = render(compile_template(CHATML), [{"role": "user", "content": "hi"}])
    assert out == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_raise_exception_becomes_invalid_messages() -> None:
    tpl = compile_template("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must "
                           "be user') }}{% endif %}ok")
    with pytest.raises(TemplateError) as info:
        render(tpl, [{"role": "assistant", "content": "x"}])
    assert info.value.code == "invalid_messages" and "first must be user" in info.value.message


def test_sandbox_blocks_attribute_escapes() -> None:
    tpl = compile_template("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        render(tpl, [])


def test_bos_and_tojson_are_available() -> None:
    tpl = compile_template("{{ bos_token }}{{ messages | tojson }}")
    assert render(tpl, [{"role": "user", "content": "é"}], bos_token="<s>") == \
        '<s>[{"role": "user", "content": "é"}]'
