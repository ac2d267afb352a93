"""The web console in a real headless Chromium (Playwright) on the real stack: sign in, keys used
with the openai SDK and revoked, the usage plot, model activation, a streamed and an image chat,
embeddings, CSRF refused, a session that expires; page weight and time to interactive.

Screenshots of each page go to $CHUNGUS_SCREENSHOTS (e.g. docs/console) when it is set.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.triton.server import TritonServer, free_port
from tests.e2e.conftest import CHAT_MODEL
from tests.images import make_image
from tests.support import GatewayProcess

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHUNGUS_CHROMIUM", "/usr/lib/chromium/chromium-headless-shell"))
VISION = "tiny-llava-random"
EMBEDDING = "all-minilm-l6-v2"
SHOTS = os.environ.get("CHUNGUS_SCREENSHOTS")

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium-headless-shell)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser: Any, gateway: GatewayProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 800}, base_url=gateway.base_url)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]  # script errors on any page: none expected
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.set_default_timeout(30_000)
    page.goto("/console")
    page.fill("#key", gateway.admin_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/keys")
    yield page
    context.close()


def wait_js(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll ``expression`` until it is truthy (``wait_for_function`` evaluates strings with
    ``eval``, which the console's Content-Security-Policy forbids, as it should)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def sign_in(browser: Any, base_url: str, key: str) -> Any:
    page = browser.new_context(base_url=base_url).new_page()
    page.goto("/console/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    return page


def test_sign_in_refuses_a_wrong_key_with_the_api_message(browser: Any, gateway: GatewayProcess) -> None:
    page = browser.new_context(base_url=gateway.base_url, viewport={"width": 1366, "height": 800}).new_page()
    page.goto("/console/keys")
    assert page.url.endswith("/console/login")  # no session: to the sign-in page
    shot(page, "signin")
    page.fill("#key", "sk-chungus-not-a-real-key-0000000000")
    page.click("button[type=submit]")
    assert "Incorrect API key provided" in page.inner_text("#login-error")
    assert page.context.cookies() == []
    page.context.close()


def test_create_a_key_use_it_see_usage_then_revoke(page: Any, gateway: GatewayProcess) -> None:
    page.goto("/console/keys")
    page.click("#create-panel summary")
    page.fill("#create-key [name=name]", "browser-made")
    page.fill("#create-key [name=owner]", "e2e")
    page.fill("#create-key [name=rpm]", "100")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#secret")
    secret.wait_for()
    key = secret.inner_text()
    assert key.startswith("sk-chungus-")
    page.click("#copy-secret")
    wait_js(page, "document.getElementById('copy-status').textContent !== ''")
    copied = page.inner_text("#copy-status")
    assert copied == "Copied." and page.evaluate("navigator.clipboard.readText()") == key
    page.click("#secret-dialog form button")
    page.wait_for_load_state("load")
    row = page.locator("#keys-table tr", has_text="browser-made")
    assert "100 / ∞ / ∞" in row.inner_text() and "active" in row.inner_text()
    shot(page, "keys")
    assert key not in page.content()  # shown once only

    sdk = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0, timeout=120)
    out = sdk.chat.completions.create(model=CHAT_MODEL, max_tokens=4, temperature=0,
                                      messages=[{"role": "user", "content": "Hi"}])
    assert out.usage is not None and out.usage.completion_tokens >= 1

    page.goto("/console/usage")
    page.select_option("#range", "hour")
    page.select_option("#key-filter", label=page.locator("#key-filter option", has_text="browser-made").inner_text())
    wait_js(page, "document.querySelector('[data-total=requests]').textContent === '1'")
    assert page.inner_text("[data-total=completion_tokens]") == str(out.usage.completion_tokens)
    series = page.evaluate("window.usageSeries")
    assert sum(p["requests"] for p in series["data"]) == 1 and len(series["data"]) == 60
    assert page.errors == []
    assert page.locator("#chart-requests canvas").count() == 1  # the plot is drawn
    shot(page, "usage")

    page.goto("/console/keys")
    page.once("dialog", lambda d: d.accept())
    page.locator("#keys-table tr", has_text="browser-made").locator("button.revoke").click()
    page.wait_for_load_state("load")
    page.locator("#keys-table tr", has_text="browser-made").locator(".state-revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    log = gateway.log_path.read_text(errors="replace")
    assert key not in log and gateway.admin_key not in log  # never logged


def test_deactivate_and_reactivate_a_model(page: Any, client: openai.OpenAI) -> None:
    page.goto("/console/models")
    row = page.locator(f"#models-table tr[data-model-id='{EMBEDDING}']")
    assert "ready" in row.inner_text()
    row.locator("button[data-action=deactivate]").click()
    page.locator(f"#models-table tr[data-model-id='{EMBEDDING}'] button[data-action=activate]").wait_for()
    assert EMBEDDING not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=EMBEDDING, input="x")
    page.locator(f"#models-table tr[data-model-id='{EMBEDDING}'] button[data-action=activate]").click()
    page.locator(f"#models-table tr[data-model-id='{EMBEDDING}'] button[data-action=deactivate]").wait_for()
    assert EMBEDDING in [m.id for m in client.models.list()]
    shot(page, "models")


_WATCH = """() => { const out = document.getElementById('chat-output'); window.seen = [];
  new MutationObserver(() => window.seen.push([performance.now(), out.textContent.length, out.dataset.state]))
    .observe(out, {childList: true, characterData: true, subtree: true, attributes: true}); }"""


def test_playground_streams_tokens_as_they_arrive(page: Any) -> None:
    page.goto("/console/playground")
    page.select_option("#chat-model", CHAT_MODEL)
    page.fill("#chat-message", "Count from one to twenty in words.")
    page.fill("[name=max_tokens]", "32")
    page.fill("[name=seed]", "7")
    page.evaluate(_WATCH)
    page.click("#send")
    wait_js(page, "document.getElementById('chat-output').dataset.state === 'done'", timeout_s=120)
    chunks = int(page.get_attribute("#chat-output", "data-chunks") or "0")
    assert chunks >= 2
    seen = page.evaluate("window.seen")
    lengths = [length for _, length, state in seen if state == "streaming" and length > 0]
    assert len(set(lengths)) >= 2, seen  # text grew in steps while the stream was open
    assert page.inner_text("#chat-output").strip()
    curl = page.text_content("#snippet-curl") or ""
    assert '"seed": 7' in curl and "$CHUNGUS_API_KEY" in curl
    python = page.text_content("#snippet-python") or ""
    assert 'stream_options={"include_usage": True}' in python and "seed=7," in python
    assert page.locator("#alert").is_hidden()
    page.click("details:has(#snippet-python) summary")
    shot(page, "playground")


def test_playground_image_chat_with_the_vision_model(page: Any, tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(make_image("PNG", (64, 64)))
    page.goto("/console/playground")
    page.select_option("#chat-model", VISION)
    page.set_input_files("#image-file", str(image))
    page.locator("#image-preview").wait_for()
    page.fill("#chat-message", "What is in this image?")
    page.fill("[name=max_tokens]", "8")
    page.click("#send")
    wait_js(page, "['done', 'error'].includes(document.getElementById('chat-output').dataset.state)",
                           timeout_s=120)
    assert page.get_attribute("#chat-output", "data-state") == "done", page.inner_text("#alert")
    meta = page.inner_text("#chat-meta")
    assert int(meta.split(" prompt")[0]) > 16  # the image's tokens are in the prompt
    assert "base64 elided" in (page.text_content("#snippet-curl") or "")


def test_embeddings_view_compares_sentences(page: Any) -> None:
    page.goto("/console/playground")
    page.click("#tab-emb")
    page.click("#emb-form button[type=submit]")
    page.locator("#emb-matrix td[data-sim]").first.wait_for()
    sims = page.evaluate("[...document.querySelectorAll('#emb-matrix tbody tr')]"
                         ".map(r => [...r.querySelectorAll('td')].map(td => Number(td.dataset.sim)))")
    assert len(sims) == 3 and all(abs(sims[i][i] - 1) < 1e-3 for i in range(3))
    assert sims[0][1] > sims[0][2]  # cat/kitten closer than cat/stock market


def test_live_page_shows_the_gateways_figures(page: Any) -> None:
    page.goto("/console/live")
    wait_js(page, "document.querySelector('[data-stat=requests_per_s]').textContent !== '-'")
    assert page.locator("#endpoints tbody tr").count() >= 1
    assert "healthy" in page.inner_text("#endpoints")
    shot(page, "live")


class _Evil(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = (f'<form id="f" method="post" action="{self.target}"></form>'
                '<script>document.getElementById("f").submit()</script>').encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


def test_csrf_attempts_are_refused(page: Any, gateway: GatewayProcess) -> None:
    page.goto("/console/keys")
    created = page.evaluate("""async () => (await fetch('/console/api/keys', {method: 'POST',
        headers: {'Content-Type': 'application/json',
                  'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
        body: JSON.stringify({name: 'csrf-target'})})).json()""")
    # Same origin, cookie sent, no token: refused.
    status = page.evaluate(f"""async () => (await fetch('/console/api/keys/{created["id"]}/revoke',
        {{method: 'POST'}})).status""")
    assert status == 403
    # Another origin (same site: cookies still go) posting a form: refused.
    _Evil.target = f"{gateway.base_url}/console/api/keys/{created['id']}/revoke"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        evil = page.context.new_page()
        with evil.expect_response(lambda r: r.url == _Evil.target) as response:
            evil.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert response.value.status == 403
        evil.close()
    finally:
        server.shutdown()
    keys = page.evaluate("async () => (await fetch('/console/api/keys')).json()")
    assert [k["revoked"] for k in keys["data"] if k["id"] == created["id"]] == [False]


def test_a_session_expires(browser: Any, triton: TritonServer, stack_dir: Path) -> None:
    proc = GatewayProcess(triton.grpc_url, stack_dir / "registry.toml", stack_dir / "gateway-ttl",
                          env={"CHUNGUS_CONSOLE_SESSION_TTL_S": "3"})
    proc.start()
    try:
        page = sign_in(browser, proc.base_url, proc.admin_key)
        page.wait_for_url("**/console/keys")
        time.sleep(3.5)
        page.goto("/console/models")
        assert page.url.endswith("/console/login")
        page.context.close()
    finally:
        proc.stop()


def test_page_weight_and_time_to_interactive(browser: Any, gateway: GatewayProcess) -> None:
    context = browser.new_context(base_url=gateway.base_url)
    page = context.new_page()
    page.goto("/console/login")
    page.fill("#key", gateway.admin_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/keys")
    report = {}
    for name in ("keys", "models", "usage", "live", "playground"):
        fresh = browser.new_context(base_url=gateway.base_url)  # an empty cache: a first load
        fresh.add_cookies(context.cookies())
        p = fresh.new_page()
        sizes: list[int] = []
        p.on("requestfinished", lambda r, sizes=sizes: sizes.append(r.sizes()["responseBodySize"]
                                                                   + r.sizes()["responseHeadersSize"]))
        p.goto(f"/console/{name}", wait_until="load")
        timing = p.evaluate("(() => { const t = performance.getEntriesByType('navigation')[0];"
                            " return [t.domInteractive, t.loadEventEnd]; })()")
        report[name] = (round(sum(sizes) / 1024, 1), round(timing[0]), round(timing[1]))
        fresh.close()
    context.close()
    print("\nconsole first load: page -> (KB transferred, DOM interactive ms, load ms)", report)
    for name, (kb, interactive, _) in report.items():
        assert kb < 150, (name, kb)
        assert interactive < 2000, (name, interactive)


_UNLABELLED = """[...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id)"""


def test_keyboard_sign_in_and_every_control_labelled(browser: Any, gateway: GatewayProcess) -> None:
    page = browser.new_context(base_url=gateway.base_url).new_page()
    page.goto("/console/login")
    # The key field takes the focus (autofocus, applied once the page has rendered).
    page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    page.keyboard.type(gateway.admin_key)
    with page.expect_navigation(url="**/console/keys"):
        page.keyboard.press("Enter")
    for name in ("keys", "models", "usage", "live", "playground"):
        page.goto(f"/console/{name}")
        assert page.evaluate(_UNLABELLED) == [], name
        assert page.locator("h1").count() == 1
        assert page.get_attribute(f"nav a[href='/console/{name}']", "aria-current") == "page"
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.context.close()
