"""Shared helpers for the tests that drive real headless Chromium (local backend, CDP, browsing)."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from chaser_mcp.api import ChaserClient, Session
from chaser_mcp.browser.browsing import NavigationResult, PageText, navigate, read_page
from chaser_mcp.browser.page import open_page
from chaser_mcp.local import LocalAPIServer
from chaser_mcp.local.chromium import BrowserNotFound, BrowserProcess, find_chromium, group_pids


def _chromium_or_none() -> str | None:
    try:
        return find_chromium()
    except BrowserNotFound:
        return None


CHROMIUM = _chromium_or_none()
requires_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found: apt-get install --no-install-recommends chromium, or set CHASER_CHROME",
)

# The emulated phone (see chaser_mcp.local.emulation.pixel_7).
DPR = 2.625
VIEWPORT = (412, 915)

# A block of a known colour at a known place, in CSS pixels.
BLOCK_COLOUR = (0, 153, 255)
BLOCK_BOX = (40, 120, 200, 160)  # left, top, width, height

_HEAD = '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'


def _page(title: str, body: str, style: str = "") -> str:
    return (
        f"<!doctype html><html><head>{_HEAD}<title>{title}</title>"
        f"<style>html,body{{margin:0;background:#fff}}{style}</style></head><body>{body}</body></html>"
    )


def colour_page() -> str:
    left, top, width, height = BLOCK_BOX
    r, g, b = BLOCK_COLOUR
    return _page(
        "Colour block",
        '<div id="block"></div>',
        f"#block{{position:absolute;left:{left}px;top:{top}px;width:{width}px;height:{height}px;"
        f"background:rgb({r},{g},{b})}}",
    )


def text_page(paragraphs: int) -> str:
    body = "".join(
        f"<p>Paragraph {i:03d}:   the   quick brown fox\tjumps over the lazy dog.</p>"
        for i in range(paragraphs)
    )
    return _page("Long read", f"<h1>Long   read</h1>{body}<script>var hidden = 'not visible text';</script>")


def button_page() -> str:
    return _page(
        "Button",
        "<button id=\"go\" onclick=\"this.textContent = 'clicked ' + (++window.clicks) + 'x'; "
        "document.body.style.background = 'rgb(0,200,0)'\">press me</button>"
        "<script>window.clicks = 0;</script>",
        "#go{position:absolute;left:100px;top:300px;width:200px;height:100px;font-size:24px}",
    )


def animated_page() -> str:
    return _page(
        "Spinner",
        '<div id="spin"></div>',
        "#spin{width:150px;height:150px;margin:100px auto;background:linear-gradient(90deg,red,blue);"
        "animation:spin 1s linear infinite}@keyframes spin{to{transform:rotate(360deg)}}",
    )


@dataclass
class LoopbackSite:
    """A loopback web site for the browser to visit; ``url(path)`` gives full addresses."""

    base_url: str
    requests: list[str]

    def url(self, path: str) -> str:
        return self.base_url + path


def _handler(requests: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            routes: dict[str, Callable[[], tuple[int, str]]] = {
                "/colour": lambda: (200, colour_page()),
                "/text": lambda: (200, text_page(int(query.get("n", ["40"])[0]))),
                "/button": lambda: (200, button_page()),
                "/spinner": lambda: (200, animated_page()),
                "/missing": lambda: (404, _page("Not here", "<p>nothing at this address</p>")),
                "/hang": lambda: (200, _page("Hanging", '<p>loading forever</p><img src="/sleep?s=5">')),
                "/sleep": lambda: (200, ""),
            }
            if parts.path == "/sleep":
                time.sleep(float(query.get("s", ["3"])[0]))
            if parts.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/colour")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = routes.get(parts.path, lambda: (404, _page("404", "not found")))()
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler], name: str) -> Iterator[str]:
    """An HTTP server for ``handler`` on a free loopback port, in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def serve_test_site() -> Iterator[LoopbackSite]:
    requests: list[str] = []
    with serving(_handler(requests), "test-site") as base_url:
        yield LoopbackSite(base_url, requests)


def refused_url() -> str:
    """An http URL on a loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


async def wait_until_ready(client: ChaserClient, session_id: str, timeout: float = 30.0) -> Session:
    with anyio.fail_after(timeout):
        while True:
            session = await client.get_session(session_id)
            if session.status != "creating":
                return session
            await anyio.sleep(0.02)


async def wait_for_status(
    client: ChaserClient, session_id: str, status: str, timeout: float = 15.0
) -> Session:
    with anyio.fail_after(timeout):
        while True:
            session = await client.get_session(session_id)
            if session.status == status:
                return session
            await anyio.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; TimeoutError after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polling process state, which has no event
            await anyio.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Await ``check()`` until it returns True; TimeoutError after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - the page offers no event to wait on
            await anyio.sleep(interval)


@asynccontextmanager
async def ready_session(
    server: LocalAPIServer, ttl_seconds: int = 600
) -> AsyncIterator[tuple[str, BrowserProcess]]:
    """A ready session on a local API: its cdp_url and its browser process; deleted afterwards."""
    async with ChaserClient("sk-local-support", base_url=server.base_url, max_retries=0) as client:
        created = await client.create_session(ttl_seconds=ttl_seconds)
        try:
            ready = await wait_until_ready(client, created.id)
            browser = server.backend.get(created.id).browser
            assert ready.cdp_url is not None and browser is not None
            yield ready.cdp_url, browser.process
        finally:
            await client.delete_session(created.id)


def environment_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        return [item.decode("utf-8", "replace") for item in handle.read().split(b"\0") if item]


def entries(path: Path) -> list[str]:
    return sorted(child.name for child in path.iterdir())


@contextmanager
def short_temp_dir() -> Iterator[Path]:
    """A base dir short enough that profiles keep their TMPDIR inside (see chromium._short_tmp_dir)."""
    path = Path(tempfile.mkdtemp(prefix="clt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def wait_for_no_processes(list_pids: Callable[[], list[int]], timeout: float = 10.0) -> list[int]:
    """Poll until ``list_pids`` is empty or ``timeout`` passes; returns what is left (empty on success)."""
    deadline = time.monotonic() + timeout
    left = list_pids()
    while left and time.monotonic() < deadline:
        await anyio.sleep(0.05)
        left = list_pids()
    return left


def browsers_under(base_dir: Path) -> list[int]:
    """Live browser main processes whose profile dir lies in ``base_dir``."""
    prefix = f"--user-data-dir={base_dir}/".encode()
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) for arg in args) and b"--type=" not in b" ".join(args):
            found.append(int(entry.name))
    return found


def chromium_pids_under(base_dir: Path) -> list[int]:
    """Every live process of every browser whose profile lies in ``base_dir`` (their whole groups)."""
    pids: set[int] = set()
    for main in browsers_under(base_dir):
        pids.update(group_pids(main))
        pids.add(main)
    return sorted(pids)


async def navigate_to(cdp_url: str, url: str, timeout: float = 20.0) -> NavigationResult:
    """Open ``url`` in the session's page over a connection made for this one call."""
    async with open_page(cdp_url, timeout=timeout) as page:
        return await navigate(page, url, timeout=timeout)


async def page_text(cdp_url: str, **options: Any) -> PageText:
    """``read_page`` over a connection made for this one call."""
    async with open_page(cdp_url) as page:
        return await read_page(page, **options)
