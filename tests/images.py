"""Test images made on the fly, and loopback HTTP(S) servers that serve them (and misbehave)."""

from __future__ import annotations

import base64
import contextlib
import io
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image


def make_image(fmt: str = "PNG", size: tuple[int, int] = (96, 72),
               color: tuple[int, int, int] = (200, 30, 30), mode: str = "RGB") -> bytes:
    """An encoded image with a little structure (a diagonal line)."""
    image = Image.new("RGB", size, color)
    for x in range(size[0] // 2):  # some structure, so preprocessing has something to do
        image.putpixel((x, x * size[1] // size[0]), (10, 200, 10))
    if mode != "RGB":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def big_png(size: tuple[int, int] = (5792, 5792), mode: str = "RGBA") -> bytes:
    """A large 8-bit PNG written row by row (no full image in memory), compressing to little.

    A moving band gives the decoder real work; 5792x5792 RGBA (34 Mpx, 128 MiB decoded) is about
    170 KB, like the one in issue 12.
    """
    width, height = size
    bands = {"RGBA": 4, "RGB": 3, "L": 1}[mode]
    color_type = {"RGBA": 6, "RGB": 2, "L": 0}[mode]
    pixel = bytes([200, 30, 30, 128][:bands]) if bands > 1 else b"\x80"
    base = bytearray(pixel * width)
    packer = zlib.compressobj(6)
    idat = []
    for y in range(height):
        row = bytearray(base)
        x = (y * 7) % width
        row[x * bands:(x + 16) * bands] = b"\x10" * len(row[x * bands:(x + 16) * bands])
        idat.append(packer.compress(b"\x00" + bytes(row)))
    idat.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(idat))
            + _chunk(b"IEND", b""))


def png_claiming(size: tuple[int, int]) -> bytes:
    """A valid-looking PNG header for ``size`` pixels and almost no data: a bomb's first bytes."""
    ihdr = struct.pack(">IIBBBBB", size[0], size[1], 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def webp_claiming(size: tuple[int, int]) -> bytes:
    """A tiny lossless WebP whose header says ``size`` (up to 16384 a side): a WebP bomb's header."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, format="WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    bits = struct.unpack("<I", data[21:25])[0] & ~((1 << 28) - 1)
    data[21:25] = struct.pack("<I", bits | (size[0] - 1) | ((size[1] - 1) << 14))
    return bytes(data)


def animated(fmt: str, frames: int, size: tuple[int, int] = (32, 32)) -> bytes:
    """An animated PNG, WebP or GIF of ``frames`` frames, each a different colour."""
    images = [Image.new("RGB", size, (i % 256, 255 - i % 256, (7 * i) % 256)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format=fmt, save_all=True, append_images=images[1:], duration=10, loop=0)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@dataclass
class ImageServer:
    """A running server: its base URL and the paths it was asked for, in order."""

    base: str
    port: int
    hits: list[str] = field(default_factory=list)


def _routes(png: bytes) -> dict[str, tuple[int, dict[str, str], bytes]]:
    return {
        "/cat.png": (200, {"Content-Type": "image/png"}, png),
        "/cat.jpg": (200, {"Content-Type": "image/jpeg"}, make_image("JPEG", (1024, 768))),
        "/mislabelled.png": (200, {"Content-Type": "image/png"}, make_image("WEBP")),
        "/text": (200, {"Content-Type": "image/png"}, b"this is not an image"),
        "/big": (200, {"Content-Type": "image/png"}, png + b"\0" * (3 * 1024 * 1024)),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (302, {"Location": "http://10.1.2.3/x.png"}, b""),
        "/to-localhost": (302, {"Location": "http://localhost/x.png"}, b""),
        "/to-mapped": (307, {"Location": "http://[::ffff:127.0.0.1]/x.png"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/to-cat": (302, {"Location": "/cat.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/slow": (200, {"Content-Type": "image/png"}, png),
    }


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    hits: list[str] = []
    redirects: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802
        self.hits.append(self.path)
        if self.path == "/slow":
            time.sleep(10)
        if self.path in ("/endless", "/drip"):
            return self._stream(chunk=b"\0" * (64 * 1024 if self.path == "/endless" else 1),
                                pause=0.0 if self.path == "/endless" else 0.2)
        if self.path in self.redirects:
            status, headers, body = 302, {"Location": self.redirects[self.path]}, b""
        else:
            status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _stream(self, chunk: bytes, pause: float) -> None:
        """No Content-Length: bytes until the client hangs up (caps must hold while reading)."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            for _ in range(100_000):
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(pause)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed TLS handshakes are part of the tests


@contextmanager
def image_server(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                 redirects: dict[str, str] | None = None) -> Iterator[ImageServer]:
    """Serve test images (and redirects, slow and endless bodies) on ``host``, port chosen freely.

    Args:
        host: the loopback address to listen on (127.0.0.2 works for a "blocked" second server).
        tls: a server-side context to serve HTTPS.
        redirects: extra ``path -> Location`` redirects.
    """
    hits: list[str] = []
    attrs = {"routes": _routes(make_image("PNG")), "hits": hits, "redirects": redirects or {}}
    server = _Server((host, 0), type("Handler", (_Handler,), attrs))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    try:
        yield ImageServer(f"{scheme}://{host}:{port}", port, hits)
    finally:
        server.shutdown()
        server.server_close()


def make_certificates(folder: Path, names: tuple[str, ...]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for ``names`` (DNS SANs), made with openssl.

    Returns:
        (CA certificate, leaf certificate, leaf key) paths.
    """
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "leaf.key",
                                                       "leaf.csr", "leaf.pem"))
    ext = folder / "leaf.ext"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=chungus test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={names[0]}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key
