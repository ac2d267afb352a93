"""Image input through the whole stack: the openai SDK sends URL and base64 images to the vision model
(tiny-llava-random on Triton), and every refusal is a 400 naming the part.

The gateway fixture allows http and exactly 127.0.0.1 for images; a second image server listens on
127.0.0.2, which stays blocked, to prove that nothing ever fetches from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput
from tritonclient.utils import InferenceServerException

from gateway.settings import Settings
from gateway.triton.server import TritonServer
from tests.e2e.conftest import CHAT_MODEL
from tests.images import ImageServer, animated, big_png, data_uri, image_server, make_image, png_claiming, webp_claiming
from tests.support import GatewayProcess

MODEL = "tiny-llava-random"
PER_IMAGE = 16  # 64x64 pixels in 16x16 patches, CLS dropped


@pytest.fixture(scope="module")
def blocked() -> Iterator[ImageServer]:
    with image_server("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def images(blocked: ImageServer) -> Iterator[ImageServer]:
    with image_server(redirects={"/to-blocked": blocked.base + "/cat.png"}) as server:
        yield server


def _parts(*urls: str, text: str = "What is in this image?") -> list[dict[str, Any]]:
    return [*({"type": "image_url", "image_url": {"url": u}} for u in urls),
            {"type": "text", "text": text}]


def test_base64_image(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, max_tokens=8, messages=[
        {"role": "user", "content": _parts(data_uri(make_image("PNG")))}])
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > PER_IMAGE


def test_url_and_base64_images_in_any_order_streaming(client: openai.OpenAI,
                                                      images: ImageServer) -> None:
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": images.base + "/cat.jpg",
                                                   "detail": "low"}},
               {"type": "text", "text": "with"},
               {"type": "image_url", "image_url": {"url": data_uri(make_image("WEBP"),
                                                                   "image/webp")}}]
    chunks = list(client.chat.completions.create(
        model=MODEL, max_tokens=6, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": content}]))  # type: ignore[misc]
    assert chunks[0].choices[0].delta.role == "assistant"
    one = client.chat.completions.create(model=MODEL, max_tokens=1, messages=[
        {"role": "user", "content": [*content[:3], {"type": "text", "text": ""}]}])  # type: ignore[misc]
    assert chunks[-1].usage is not None and one.usage is not None
    assert chunks[-1].usage.prompt_tokens == one.usage.prompt_tokens + PER_IMAGE
    assert "/cat.jpg" in images.hits


def test_seeded_answers_depend_on_the_pixels(client: openai.OpenAI) -> None:
    def ask(color: tuple[int, int, int]) -> str | None:
        return client.chat.completions.create(
            model=MODEL, max_tokens=24, temperature=1.5, seed=3, messages=[
                {"role": "user", "content": _parts(data_uri(make_image("PNG", color=color)))}],
        ).choices[0].message.content

    assert ask((255, 0, 0)) == ask((255, 0, 0))
    assert ask((255, 0, 0)) != ask((0, 0, 255))


def test_redirect_to_an_allowed_image_is_followed(client: openai.OpenAI,
                                                  images: ImageServer) -> None:
    out = client.chat.completions.create(model=MODEL, max_tokens=2, messages=[
        {"role": "user", "content": _parts(images.base + "/to-cat")}])
    assert out.choices[0].message.content is not None


@pytest.mark.parametrize(("path_or_url", "code"), [
    ("/to-metadata", "image_url_blocked"),
    ("/to-private", "image_url_blocked"),
    ("/to-localhost", "image_url_blocked"),
    ("/to-mapped", "image_url_blocked"),
    ("/to-blocked", "image_url_blocked"),
    ("/to-file", "invalid_image_url"),
    ("/loop", "image_fetch_failed"),
    ("/missing", "image_fetch_failed"),
    ("/text", "unsupported_image_format"),
    ("/big", "image_too_large"),
    ("/endless", "image_too_large"),
    ("/slow", "image_fetch_timeout"),
    ("http://127.0.0.1:1/x.png", "image_url_unreachable"),
    ("http://127.0.0.2/x.png", "image_url_blocked"),
    ("http://localhost:1/x.png", "image_url_blocked"),
    ("http://2130706434/x.png", "image_url_blocked"),  # 127.0.0.2 in decimal
    ("http://169.254.169.254/latest/meta-data/", "image_url_blocked"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "image_url_blocked"),
    ("http://[::ffff:10.0.0.1]/x.png", "image_url_blocked"),
    ("file:///etc/passwd", "invalid_image_url"),
    ("ftp://example.com/x.png", "invalid_image_url"),
    ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "unsupported_image_format"),
    ("data:image/png;base64,@@@not-base64@@@", "invalid_image"),
    ("data:image/png;base64," + "A" * 40, "unsupported_image_format"),
    (data_uri(make_image("GIF"), "image/png"), "unsupported_image_format"),  # claims png
    (data_uri(make_image("PNG")[:80]), "invalid_image"),  # a truncated PNG
])
def test_image_errors_are_400_with_param(gateway: GatewayProcess, images: ImageServer,
                                         blocked: ImageServer, path_or_url: str,
                                         code: str) -> None:
    url = images.base + path_or_url if path_or_url.startswith("/") else path_or_url
    body = {"model": MODEL, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                     {"type": "image_url", "image_url": {"url": url}}]}]}
    r = httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, "messages[1].content[1].image_url.url")
    assert error["type"] == "invalid_request_error"
    assert "base64," not in error["message"]
    assert blocked.hits == []


def test_sdk_sees_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": _parts("https://169.254.169.254/latest/meta-data/")}])
    assert info.value.code == "image_url_blocked"
    assert info.value.param == "messages[0].content[0].image_url.url"


def test_too_many_images(gateway: GatewayProcess) -> None:
    uri = data_uri(make_image("PNG"))
    body = {"model": MODEL, "messages": [{"role": "user", "content": _parts(*[uri] * 5)}]}
    r = httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {gateway.admin_key}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"


def test_images_to_a_text_model_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=CHAT_MODEL, messages=[
            {"role": "user", "content": _parts(data_uri(make_image()))}])
    assert info.value.code == "invalid_model_type"


async def test_client_disconnect_cancels_the_vision_request(aclient: openai.AsyncOpenAI,
                                                            triton: TritonServer) -> None:
    marker = "llava_vision: request cancelled"
    before = triton.log_path.read_text().count(marker)
    stream = await aclient.chat.completions.create(
        model=MODEL, max_tokens=1000, temperature=1.5, stream=True,
        messages=[{"role": "user", "content": _parts(data_uri(make_image()))}])  # type: ignore[arg-type]
    got = 0
    async for _chunk in stream:
        got += 1
        if got == 3:
            break
    await stream.close()
    for _ in range(100):
        if triton.log_path.read_text().count(marker) > before:
            break
        await asyncio.sleep(0.1)
    assert triton.log_path.read_text().count(marker) > before


# The vision model's Triton contract, over gRPC streaming without the gateway.

TRITON_MODEL = "tiny_llava_random"
IMAGE_PROMPT = ("<|im_start|>user\n" + "<image>" * PER_IMAGE + "Describe it.<|im_end|>\n"
                "<|im_start|>assistant\n")


def _pixels(n: int = 1, value: float = 0.5, seed: int | None = None) -> np.ndarray:
    if seed is not None:
        return np.random.default_rng(seed).normal(size=(1, n, 3, 64, 64)).astype(np.float16)
    return np.full((1, n, 3, 64, 64), value, dtype=np.float16)


def _tensor(name: str, array: np.ndarray, dtype: str) -> InferInput:
    tensor = InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def _request(prompt: str = IMAGE_PROMPT, pixels: np.ndarray | None = None, max_tokens: int = 12,
             stream: bool = False, seed: int = 5, temperature: float = 1.2) -> list[InferInput]:
    tensors = [_tensor("text_input", np.array([[prompt.encode()]], dtype=np.object_), "BYTES"),
               _tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
               _tensor("stream", np.array([[stream]], dtype=np.bool_), "BOOL"),
               _tensor("temperature", np.array([[temperature]], dtype=np.float32), "FP32"),
               _tensor("seed", np.array([[seed]], dtype=np.uint64), "UINT64")]
    if pixels is not None:
        tensors.append(_tensor("image_input", pixels, "FP16"))
    return tensors


async def _infer(url: str, inputs: list[InferInput]) -> dict[str, Any]:
    client = grpcclient.InferenceServerClient(url)

    async def requests():  # type: ignore[no-untyped-def]
        yield {"model_name": TRITON_MODEL, "inputs": inputs, "enable_empty_final_response": True}

    out: dict[str, Any] = {"pieces": []}
    try:
        async for result, error in client.stream_infer(requests()):
            if error is not None:
                raise error
            text = result.as_numpy("text_output")
            if text is not None:
                out["pieces"].append(b"".join(text.reshape(-1)).decode("utf-8"))
            for name in ("num_input_tokens", "num_output_tokens", "finish_reason"):
                if (value := result.as_numpy(name)) is not None:
                    out[name] = value.reshape(-1)[0]
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
    finally:
        await client.close()
    out["text"] = "".join(out["pieces"])
    return out


async def test_vision_model_streams_what_it_returns_whole(triton: TritonServer) -> None:
    streamed = await _infer(triton.grpc_url, _request(pixels=_pixels(seed=1), stream=True))
    whole = await _infer(triton.grpc_url, _request(pixels=_pixels(seed=1)))
    assert streamed["text"] == whole["text"] and len(streamed["pieces"]) > 2
    assert whole["finish_reason"] in (b"stop", b"length")
    assert 0 < whole["num_output_tokens"] <= 12 and whole["num_input_tokens"] > PER_IMAGE
    # The pixels reach the model: greedy answers (random weights, near-flat logits) change.
    one = await _infer(triton.grpc_url, _request(pixels=_pixels(seed=1), temperature=0.0))
    two = await _infer(triton.grpc_url, _request(pixels=_pixels(seed=2), temperature=0.0))
    assert one["text"] != two["text"]


@pytest.mark.parametrize(("prompt", "pixels", "message"), [
    (IMAGE_PROMPT.replace("<image>", "", 1), _pixels(), "image tokens"),
    (IMAGE_PROMPT, None, "image tokens"),
    ("no image here", _pixels(), "image tokens"),
    (IMAGE_PROMPT, _pixels(value=float("nan")), "NaN"),
    (IMAGE_PROMPT * 5, _pixels(5), "images per request"),
])
async def test_bad_vision_requests_get_errors_and_the_stub_lives(
        triton: TritonServer, prompt: str, pixels: np.ndarray | None, message: str) -> None:
    with pytest.raises(InferenceServerException, match=message):
        await _infer(triton.grpc_url, _request(prompt, pixels))
    ok = await _infer(triton.grpc_url, _request(pixels=_pixels(), max_tokens=2))
    assert ok["finish_reason"] in (b"stop", b"length")


# --- Issue 12: image bombs and big images against the real gateway process ----------------------

def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _post_while_probing(gateway: GatewayProcess, content: list[dict[str, Any]],
                              ) -> tuple[httpx.Response, float, float, float]:
    """POST one chat request; meanwhile probe /health/live and sample the gateway's RSS.

    Returns:
        The response, its seconds, the slowest /health/live in seconds, the RSS growth in MiB.
    """
    pid = gateway.process.pid  # type: ignore[union-attr]  # started by the fixture
    body = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": content}]}
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    base, peak, slowest, done = _rss_mib(pid), 0.0, 0.0, False
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=120) as http:
        async def probe() -> None:
            nonlocal peak, slowest
            while not done:
                start = asyncio.get_running_loop().time()
                assert (await http.get("/health/live")).status_code == 200
                slowest = max(slowest, asyncio.get_running_loop().time() - start)
                peak = max(peak, _rss_mib(pid))
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        start = asyncio.get_running_loop().time()
        response = await http.post("/v1/chat/completions", json=body, headers=headers)
        seconds = asyncio.get_running_loop().time() - start
        done = True
        await prober
    growth = max(peak, _rss_mib(pid)) - base
    print(f"status {response.status_code} in {seconds:.2f} s; slowest /health/live "
          f"{slowest * 1000:.0f} ms; gateway RSS {base:.0f} MiB +{growth:.0f} MiB")  # -s: the numbers
    return response, seconds, slowest, growth


async def test_four_34_mpx_pngs_are_a_fast_400_and_memory_stays_flat(gateway: GatewayProcess) -> None:
    """Issue 12: four 5792x5792 RGBA PNGs (about 870 KB of data URIs) raised RSS by 1.99 GiB."""
    uri = data_uri(big_png((5792, 5792)))
    response, seconds, slowest, growth = await _post_while_probing(gateway, _parts(*[uri] * 4))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("image_too_large", "messages[0].content[0].image_url.url")
    assert "5792x5792" in error["message"]
    assert seconds < 3 and slowest < 0.1 and growth < 50, (seconds, slowest, growth)


async def test_four_images_at_the_pixel_cap_are_served_within_the_budget(gateway: GatewayProcess) -> None:
    """Four 4096x4096 RGBA PNGs (the default cap, 256 MiB decoded in all) decode within the
    default budget, reduced by 4 as they decode; the gateway stays live meanwhile. Measured:
    +88 MiB with one decode thread; the budget bounds it on machines with more."""
    uri = data_uri(big_png((4096, 4096)))
    response, seconds, slowest, growth = await _post_while_probing(gateway, _parts(*[uri] * 4))
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] > 4 * PER_IMAGE
    budget = Settings().image_decode_memory_mb
    assert growth < budget and slowest < 0.1 and seconds < 60, (seconds, slowest, growth)


@pytest.mark.parametrize(("data", "code"), [
    (png_claiming((100_000, 100_000)), "image_too_large"),
    (webp_claiming((16384, 16384)), "image_too_large"),
    (webp_claiming((8000, 8000)), "image_too_large"),
    (animated("PNG", 2000), "image_too_large"),
    (animated("WEBP", 2000), "image_too_large"),
    (animated("GIF", 2000), "unsupported_image_format"),
    (big_png((2048, 2048))[:20_000], "invalid_image"),  # truncated: cut before its end
], ids=["png-100k-side", "webp-16k-side", "webp-8k-side", "apng-2000-frames",
        "webp-2000-frames", "gif-2000-frames", "truncated-png"])
async def test_image_bombs_are_fast_400s(gateway: GatewayProcess, data: bytes, code: str) -> None:
    assert len(data) < 250_000
    response, seconds, slowest, growth = await _post_while_probing(gateway, _parts(data_uri(data)))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert seconds < 2 and slowest < 0.1 and growth < 50, (seconds, slowest, growth)
