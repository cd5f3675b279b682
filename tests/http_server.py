"""A real chaser-mcp HTTP/SSE server pointed at a FakeChaser, for transport tests: in a subprocess
(``HttpServer``, signals and process exit) or in this process under uvicorn (``served``, where a test
can reach the server's state and drive its clock)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import uvicorn
from mcp.server.mcpserver import MCPServer

from chaser_mcp.api import ChaserClient
from chaser_mcp.conversations import Conversations
from chaser_mcp.server import ServerState, build_server
from chaser_mcp.transports.http import bound_port, build_http_app, http_conversation_of, serve_viewer_at
from tests import mcp_support
from tests.fake_chaser import FakeChaser
from tests.mcp_support import fast_settings

ROOT = Path(__file__).resolve().parent.parent
_started = itertools.count()


def listening_port(pid: int) -> int:
    """The TCP port process ``pid`` listens on (0 while it listens on none): what ``--port 0`` bound."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return next((c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN), 0)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; the caller asserts the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class HttpServer:
    """``python -m chaser_mcp --transport … --port 0``: the OS picks the port, read back once listening."""

    api_url: str
    transport: str = "http"
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = 0  # known once started
    process: subprocess.Popen[bytes] | None = None
    _stderr_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse"

    def start(self, tmp_dir: Path) -> HttpServer:
        self._stderr_path = tmp_dir / f"server-{next(_started)}.log"
        env = {
            **os.environ,
            "CHASER_BASE_URL": self.api_url,
            "CHASER_JOURNAL": "off",
            "CHASER_RECONNECT_GRACE": "0",  # ends delete at once unless a test turns the grace on
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "chaser_mcp",
            "--transport",
            self.transport,
            "--port",
            "0",
        ]
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen([*command, *self.args], env=env, stderr=stderr, cwd=ROOT)
        if not wait_until(self._healthy, timeout=15):
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.stderr()}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        if not self.port and not (port := listening_port(self.process.pid)):
            return False
        self.port = self.port or port
        try:
            return httpx2.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self._stderr_path else ""

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class Served:
    """The HTTP app running in this process under real uvicorn (see ``served``)."""

    base: str
    state: ServerState
    server: MCPServer

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse"

    async def health(self) -> httpx2.Response:
        async with httpx2.AsyncClient() as http:
            return await http.get(f"{self.base}/healthz")


@asynccontextmanager
async def served(
    fake: FakeChaser, conversations: Conversations | None = None, **settings_changes: Any
) -> AsyncIterator[Served]:
    """The HTTP app as ``serve_http`` runs it, in this process on a loopback port the OS picks,
    stopped (every conversation ended) on exit. Pass ``conversations`` with a ``ManualClock`` to
    drive idle and lease rules without sleeping."""
    async with served_on(fake.url, conversations, **settings_changes) as running:
        yield running


@asynccontextmanager
async def served_on(
    api_url: str, conversations: Conversations | None = None, **settings_changes: Any
) -> AsyncIterator[Served]:
    """``served`` on any Chaser-compatible API (the fake, or a local backend)."""
    settings = fast_settings(api_url, **{"transport": "http", "port": 0, **settings_changes})
    client = ChaserClient(settings.api_key, base_url=settings.base_url, timeout=settings.timeout)
    if conversations is None:
        conversations = Conversations(
            cleanup_timeout=3, sweep_interval=0.05, reconnect_grace=settings.reconnect_grace
        )
    state = ServerState(settings, client, conversations)
    server = build_server(state, http_conversation_of(state))
    config = uvicorn.Config(
        build_http_app(state, server), host="127.0.0.1", port=0, lifespan="on", log_level="critical"
    )
    uvicorn_server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(uvicorn_server.serve)
        await mcp_support.wait_until(lambda: uvicorn_server.started, timeout=15, what="uvicorn to start")
        serve_viewer_at(state, bound_port(uvicorn_server))
        try:
            yield Served(f"http://127.0.0.1:{bound_port(uvicorn_server)}", state, server)
        finally:
            uvicorn_server.should_exit = True
    await client.aclose()
