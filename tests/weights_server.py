"""A real HTTP server on 127.0.0.1 for the weights tests, with faults injected per path, and the ``wenv``
fixture: that server, a test manifest pointing at it and an empty cache, all through the environment.

Test modules load it with ``pytest_plugins = ["weights_server"]``. After each test the fixture checks that the
cache holds nothing but verified, complete files (plus the locks and remembered hashes in ``.state``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

PAGE = b"<!DOCTYPE html><html><head><title>Quota exceeded</title></head><body>Too many users</body></html>"
SPLIT = 64 * 1024
ENV_CLEARED = ("HAT_PLUGIN_OFFLINE", "HAT_PLUGIN_MIRROR", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Route:
    """What the server does for one path. ``fault`` names the misbehaviour (see ``_Handler.do_GET``)."""

    body: bytes
    fault: str = "ok"
    cut: int = SPLIT
    delay: float = 0.0
    to: str = ""


@dataclass
class Hit:
    """One request as the server saw it: the path, its Range header, the status and the body bytes sent."""

    path: str
    range: str | None
    proxied: bool
    status: int = 0
    sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes, hit: Hit, *, length: int | None = None, ctype: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        hit.status = status
        self._write(body, hit)

    def _write(self, body: bytes, hit: Hit, delay: float = 0.0) -> None:
        step = 16 * 1024
        for start in range(0, len(body), step):
            if delay and self.server.stopping.wait(delay):
                return
            self.wfile.write(body[start : start + step])
            self.wfile.flush()
            hit.sent += len(body[start : start + step])

    def _serve(self, body: bytes, hit: Hit, honour_range: bool, ctype: str = "") -> None:
        wanted = self.headers.get("Range", "")
        if honour_range and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(body):
                self._send(416, b"", hit, length=0)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Content-Type", ctype or "application/octet-stream")
            self.end_headers()
            hit.status = 206
            self._write(body[start:], hit)
            return
        self._send(200, body, hit, length=len(body), ctype=ctype)

    def _chunked(self, body: bytes, hit: Hit, finish: bool = True) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n")
        self.wfile.write(b"Content-Type: application/octet-stream\r\n\r\n")
        hit.status = 200
        step = 16 * 1024
        for start in range(0, len(body), step):
            piece = body[start : start + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            hit.sent += len(piece)
        if finish:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        hit = Hit(parts.path, self.headers.get("Range"), proxied=self.path.startswith("http"))
        with self.server.lock:
            self.server.hits.append(hit)
            route = self.server.routes.get(parts.path)
            first = sum(h.path == parts.path for h in self.server.hits) == 1
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(route, hit, first, parse_qs(parts.query))

    def _answer(self, route: Route | None, hit: Hit, first: bool, query: dict) -> None:
        fault = route.fault if route else "404"
        body = route.body if route else b""
        if fault == "404":
            self._send(404, b"not found", hit, length=9, ctype="text/plain")
        elif fault == "ok":
            self._serve(body, hit, honour_range=True)
        elif fault == "norange":
            self._serve(body, hit, honour_range=False)
        elif fault == "truncate":  # announces the whole file, sends part of it, never honours Range
            self._send(200, body[: route.cut], hit, length=len(body))
        elif fault in ("drop_once", "drop_once_norange"):
            if first:
                self._send(200, body[: route.cut], hit, length=len(body))
            else:
                self._serve(body, hit, honour_range=fault == "drop_once")
        elif fault == "stall_once":  # the first answer stops sending mid-way, longer than the read timeout
            if first:
                self._send(200, body[: route.cut], hit, length=len(body))
                self.server.stopping.wait(route.delay)
            else:
                self._serve(body, hit, honour_range=True)
        elif fault == "paced":  # headers at once, then route.delay seconds of silence before each 16 KiB
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            hit.status = 200
            self._write(body, hit, delay=route.delay)
        elif fault == "chunked":  # HTTP/1.1 chunked transfer, no Content-Length, no Range
            self._chunked(body, hit)
        elif fault == "chunked_drop_once":  # the first chunked answer stops without its last chunk
            if first:
                self._chunked(body[: route.cut], hit, finish=False)
            else:
                self._serve(body, hit, honour_range=True)
        elif fault == "bad_range":  # whole-file answers are right, resumed answers send other bytes
            if first:
                self._send(200, body[: route.cut], hit, length=len(body))
            elif self.headers.get("Range"):
                self._serve(bytes(255 - b for b in body), hit, honour_range=True)
            else:
                self._serve(body, hit, honour_range=False)
        elif fault == "html":
            self._send(200, PAGE, hit, length=len(PAGE), ctype="text/html; charset=utf-8")
        elif fault == "html_as_binary":
            self._send(200, PAGE, hit, length=len(PAGE))
        elif fault == "empty":
            self._send(200, b"", hit, length=0)
        elif fault == "overlong":  # no Content-Length, and more bytes than the file has
            self._send(200, body + body, hit)
        elif fault == "announce_more":
            self._send(200, body, hit, length=len(body) + 1000)
        elif fault == "redirect":
            self.send_response(302)
            self.send_header("Location", route.to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            hit.status = 302
        elif fault == "drive_form":  # Google Drive's "can't scan for viruses" page
            form = (
                f'<!DOCTYPE html><html><body><form id="download-form" action="{route.to}" method="get">'
                '<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="abc">'
                '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
                '<input type="hidden" name="uuid" value="u-123"></form></body></html>'
            ).encode()
            self._send(200, form, hit, length=len(form), ctype="text/html; charset=utf-8")
        elif fault == "drive_file":  # serves the file only to the confirmed request
            if query.get("confirm") == ["t"] and query.get("uuid") == ["u-123"]:
                self._serve(body, hit, honour_range=True)
            else:
                self._send(200, PAGE, hit, length=len(PAGE), ctype="text/html")
        else:
            raise AssertionError(f"unknown fault {fault!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()


class WeightsServer:
    """The running server: add routes, read back what was requested and sent."""

    def __init__(self) -> None:
        self._httpd = _Server()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(
        self, path: str, body: bytes = b"", fault: str = "ok", cut: int = SPLIT, delay: float = 0.0, to: str = ""
    ) -> str:
        """Serve ``body`` at ``path`` with ``fault`` (``cut``, ``delay``, ``to``: see ``Route``); returns the URL."""
        self._httpd.routes[path] = Route(body, fault, cut, delay, to)
        return self.base + path

    def hits(self, path: str) -> list[Hit]:
        with self._httpd.lock:
            return [h for h in self._httpd.hits if h.path == path]

    @property
    def all_hits(self) -> list[Hit]:
        with self._httpd.lock:
            return list(self._httpd.hits)

    def close(self) -> None:
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class WeightsEnv:
    """A test manifest, cache folder and server, wired up through HAT_PLUGIN_MANIFEST and HAT_PLUGIN_CACHE."""

    server: WeightsServer
    cache: Path
    manifest: Path
    models: list[dict] = field(default_factory=list)

    def add_model(self, name: str, data: bytes, urls: list[str], *, known_size: bool = True) -> dict:
        """Add a model whose real content is ``data``, fetched from ``urls``; rewrites the manifest."""
        entry = {
            "name": name,
            "variant": "HAT-S",
            "scale": 4,
            "description": f"test model {name}",
            "filename": f"{name}.pth",
            "size": len(data) if known_size else None,
            "sha256": sha256(data),
            "urls": urls,
            "license": "Apache-2.0",
        }
        return self.put(entry)

    def put(self, entry: dict) -> dict:
        """Add or replace a raw manifest entry and rewrite the manifest."""
        self.models = [m for m in self.models if m["name"] != entry["name"]] + [entry]
        self.manifest.write_text(json.dumps({"format": 1, "models": self.models}), encoding="utf-8")
        return entry

    def files(self) -> set[str]:
        """Every file under the cache, as paths relative to it."""
        return {p.relative_to(self.cache).as_posix() for p in self.cache.rglob("*") if p.is_file()}

    def assert_clean(self) -> None:
        """The cache holds verified, complete files under their names, and only bookkeeping in ``.state``."""
        expected = {m["filename"]: m["sha256"] for m in self.models}
        for rel in self.files():
            if rel.startswith(".state/"):
                assert rel.endswith((".lock", ".sha256.json")), f"unexpected bookkeeping file {rel}"
                continue
            assert rel in expected, f"stray file in the cache: {rel}"
            assert sha256((self.cache / rel).read_bytes()) == expected[rel], f"unverified file in the cache: {rel}"


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WeightsEnv]:
    """A fresh server, manifest and cache; afterwards the cache must hold nothing but verified files."""
    for name in ENV_CLEARED + PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    env = WeightsEnv(WeightsServer(), tmp_path / "cache", tmp_path / "manifest.json")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(env.cache))
    monkeypatch.setenv("HAT_PLUGIN_MANIFEST", str(env.manifest))
    try:
        yield env
        env.assert_clean()
    finally:
        env.server.close()
