"""Shared harness for the page tools (snapshot, find, act, wait_for, screenshots): a real local
backend (headless Chromium), the real MCP server on it, and the test pages of ``tests/pages/``.

One local API and one server per test module (``local_mcp``); each test talks to it through an
in-memory ``mcp.Client`` in one protocol era and works in a session of its own (``session``), so
one test's page never leaks into another's. Pages are plain files in ``tests/pages/``, served on
loopback by ``pages_site`` (``pages_site.url("login.html")``); a page that needs the server to
answer something (a POST, a delay) gets a route in ``_PageHandler``.
"""

from __future__ import annotations

import http.server
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

from chaser_mcp import user_agent
from chaser_mcp.api import ChaserClient
from chaser_mcp.conversations import Conversations
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.server import ServerState, build_server
from tests.local_support import serving, short_temp_dir
from tests.mcp_support import Mode, fast_settings, structured

PAGES = Path(__file__).resolve().parent / "pages"
LOCAL_KEY = "sk-local-pages"


@dataclass
class PagesSite:
    """The test pages on loopback; ``requests`` lists every path asked for, in order."""

    base_url: str
    requests: list[str]

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


def _handler(requests: list[str]) -> type[http.server.SimpleHTTPRequestHandler]:
    class PageHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(PAGES), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            parts = urlsplit(self.path)
            if parts.path == "/slow":  # answers after ?s= seconds (default 2): a slow resource
                time.sleep(float(parse_qs(parts.query).get("s", ["2"])[0]))
                self._send(200, b"ok", "text/plain")
                return
            super().do_GET()

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return PageHandler


@contextmanager
def serve_pages() -> Iterator[PagesSite]:
    requests: list[str] = []
    with serving(_handler(requests), "test-pages") as base_url:
        yield PagesSite(base_url, requests)


@dataclass
class LocalHarness:
    """A chaser-mcp server on a local backend, in this process."""

    api: LocalAPIServer
    state: ServerState
    server: MCPServer

    def connect(self, mode: Mode) -> Client:
        return Client(self.server, mode=mode)


@asynccontextmanager
async def local_mcp(**settings_changes: Any) -> AsyncIterator[LocalHarness]:
    """A server wired like ``chaser-mcp --local``; every conversation is ended on exit."""
    with short_temp_dir() as base:
        async with running_local_api(base_dir=base, api_key=LOCAL_KEY) as api:
            settings = fast_settings(
                api.base_url, api_key=LOCAL_KEY, timeout=30.0, ready_timeout=30.0, **settings_changes
            )
            client = ChaserClient(
                LOCAL_KEY, base_url=api.base_url, timeout=settings.timeout, user_agent=user_agent()
            )
            conversations = Conversations(cleanup_timeout=settings.cleanup_timeout)
            state = ServerState(settings, client, conversations)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(state.links.run)
                    tg.start_soon(state.viewers.run)  # its loopback port, as over stdio
                    yield LocalHarness(api, state, build_server(state))
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await conversations.shutdown("test module finished")
                    for close in state.closers:
                        await close()
                    await client.aclose()


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    """Call a tool with keyword arguments (the test reads success or error itself)."""
    return await client.call_tool(tool, arguments)


async def new_session(client: Client) -> str:
    """A ready session owned by the client's conversation; the caller deletes it (or the module end does)."""
    info = structured(await call(client, "create_session", ttl_seconds=600))
    assert info["status"] == "ready", info
    return str(info["id"])


async def open_in(client: Client, session_id: str, url: str) -> dict[str, Any]:
    """``navigate`` and return its structured result (fails the test if it failed)."""
    return structured(await call(client, "navigate", session_id=session_id, url=url))
