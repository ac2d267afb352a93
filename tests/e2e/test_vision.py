"""Image input through the whole stack: the openai SDK sends URL and base64 images to the vision model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL
from tests.images import data_uri, image_server, make_image
from tests.support import GatewayProcess

MODEL = "tiny-llava-random"


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    with image_server() as base:
        yield base


def _parts(*urls: str, text: str = "What is in this image?") -> list[dict]:
    return [*({"type": "image_url", "image_url": {"url": u}} for u in urls), {"type": "text", "text": text}]


def test_base64_image(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, max_tokens=8, messages=[
        {"role": "user", "content": _parts(data_uri(make_image("PNG")))}])
    assert out.choices[0].finish_reason in ("stop", "length")
    # 16 image tokens stand for the image in the prompt the model saw
    assert out.usage.prompt_tokens > 16


def test_url_image_streaming_and_several_images_in_any_order(client: openai.OpenAI, images: str) -> None:
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": images + "/cat.png"}},
               {"type": "text", "text": "with"},
               {"type": "image_url", "image_url": {"url": data_uri(make_image("JPEG"), "image/jpeg")}}]
    chunks = list(client.chat.completions.create(model=MODEL, max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": content}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    one = client.chat.completions.create(model=MODEL, max_tokens=1, messages=[
        {"role": "user", "content": content[:3] + [{"type": "text", "text": ""}]}])
    assert chunks[-1].usage.prompt_tokens == one.usage.prompt_tokens + 16  # 16 tokens per image


def test_seeded_answers_depend_on_the_image(client: openai.OpenAI) -> None:
    def ask(color: tuple[int, int, int]) -> str:
        return client.chat.completions.create(
            model=MODEL, max_tokens=24, temperature=1.5, seed=3, messages=[
                {"role": "user", "content": _parts(data_uri(make_image("PNG", color=color)))}],
        ).choices[0].message.content

    assert ask((255, 0, 0)) == ask((255, 0, 0))
    assert ask((255, 0, 0)) != ask((0, 0, 255))


def test_redirect_to_an_allowed_image_is_followed(client: openai.OpenAI, images: str) -> None:
    out = client.chat.completions.create(model=MODEL, max_tokens=2, messages=[
        {"role": "user", "content": _parts(images + "/to-cat")}])
    assert out.choices[0].message.content is not None


@pytest.mark.parametrize(("path_or_url", "code"), [
    ("/to-metadata", "image_url_blocked"),
    ("/to-private", "image_url_blocked"),
    ("/loop", "image_fetch_failed"),
    ("/text", "unsupported_image_format"),
    ("/big", "image_too_large"),
    ("/slow", "image_fetch_timeout"),
    ("/missing", "image_fetch_failed"),
    ("http://localhost:1/x.png", "image_url_blocked"),
    ("http://169.254.169.254/latest/meta-data/", "image_url_blocked"),
    ("http://[::ffff:10.0.0.1]/x.png", "image_url_blocked"),
    ("file:///etc/passwd", "invalid_image_url"),
    ("ftp://example.com/x.png", "invalid_image_url"),
    ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "unsupported_image_format"),
    ("data:image/png;base64,@@@not-base64@@@", "invalid_image"),
    ("data:image/png;base64," + "A" * 40, "unsupported_image_format"),
    (data_uri(make_image("PNG")[:80]), "invalid_image"),  # a truncated PNG
])
def test_image_errors_are_400_with_param(gateway: GatewayProcess, images: str, path_or_url: str,
                                         code: str) -> None:
    url = images + path_or_url if path_or_url.startswith("/") else path_or_url
    body = {"model": MODEL, "messages": [{"role": "user", "content": _parts(url)}]}
    r = httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert error["param"] == "messages[0].content[0].image_url.url"
    assert "base64," not in error["message"]


def test_too_many_images(gateway: GatewayProcess) -> None:
    uri = data_uri(make_image("PNG"))
    body = {"model": MODEL, "messages": [{"role": "user", "content": _parts(*[uri] * 5)}]}
    r = httpx.post(gateway.base_url + "/v1/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"


def test_images_to_a_text_model_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=CHAT_MODEL, messages=[
            {"role": "user", "content": _parts(data_uri(make_image()))}])
    assert info.value.code == "invalid_model_type"
