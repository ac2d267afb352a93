"""Test images made on the fly, and a loopback HTTP server that serves them (and misbehaves)."""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def make_image(fmt: str = "PNG", size: tuple[int, int] = (96, 72),
               color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    image = Image.new("RGB", size, color)
    for x in range(size[0] // 2):  # some structure, so preprocessing has something to do
        image.putpixel((x, x * size[1] // size[0]), (10, 200, 10))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow":
            time.sleep(10)
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def image_server() -> Iterator[str]:
    """Serve /cat.png, /cat.jpg, /text, /big, /slow and redirects on 127.0.0.1; yields the base URL."""
    png = make_image("PNG")
    routes = {
        "/cat.png": (200, {"Content-Type": "image/png"}, png),
        "/cat.jpg": (200, {"Content-Type": "image/jpeg"}, make_image("JPEG", (1024, 768))),
        "/mislabelled.png": (200, {"Content-Type": "image/png"}, make_image("WEBP")),
        "/text": (200, {"Content-Type": "image/png"}, b"this is not an image"),
        "/big": (200, {"Content-Type": "image/png"}, png + b"\0" * (3 * 1024 * 1024)),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (302, {"Location": "http://10.1.2.3/x.png"}, b""),
        "/to-cat": (302, {"Location": "/cat.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/slow": (200, {"Content-Type": "image/png"}, png),
    }
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
