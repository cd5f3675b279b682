"""``/healthz`` tells the truth: 503 as soon as any part of the serving machinery has stopped.

The server runs in this process under real uvicorn on a loopback socket, so a test can break one part
the way an unforeseen bug would (an exception escaping the idle sweeper, the SDK's session manager's
task group failing) and watch what a supervisor polling ``/healthz`` would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer

from chaser_mcp.api import ChaserClient
from chaser_mcp.conversations import Conversations
from chaser_mcp.server import ServerState, build_server
from chaser_mcp.transports.http import build_http_app, http_conversation_of
from tests.fake_chaser import FakeChaser
from tests.http_server import free_port
from tests.mcp_support import fast_settings, wait_until

pytestmark = pytest.mark.anyio


class Served:
    def __init__(self, base: str, state: ServerState, server: MCPServer) -> None:
        self.base = base
        self.state = state
        self.server = server

    async def health(self) -> httpx2.Response:
        async with httpx2.AsyncClient() as http:
            return await http.get(f"{self.base}/healthz")


@asynccontextmanager
async def served(fake: FakeChaser, conversations: Conversations | None = None) -> AsyncIterator[Served]:
    """The HTTP app as ``serve_http`` runs it, on a free loopback port, stopped on exit."""
    port = free_port()
    settings = fast_settings(fake.url, transport="http", port=port)
    client = ChaserClient(settings.api_key, base_url=settings.base_url, timeout=settings.timeout)
    if conversations is None:
        conversations = Conversations(cleanup_timeout=3, sweep_interval=0.05)
    state = ServerState(settings, client, conversations)
    server = build_server(state, http_conversation_of(state))
    config = uvicorn.Config(
        build_http_app(state, server), host="127.0.0.1", port=port, lifespan="on", log_level="critical"
    )
    uvicorn_server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(uvicorn_server.serve)
        await wait_until(lambda: uvicorn_server.started, timeout=15, what="uvicorn to start")
        try:
            yield Served(f"http://127.0.0.1:{port}", state, server)
        finally:
            uvicorn_server.should_exit = True
    await client.aclose()


async def wait_for_status(target: Served, status: int) -> httpx2.Response:
    """Poll /healthz, as a supervisor would, until it answers ``status`` (fails after 15 s)."""
    with anyio.fail_after(15):
        while True:
            response = await target.health()
            if response.status_code == status:
                return response
            await anyio.sleep(0.05)


async def test_healthz_is_ok_while_everything_runs(fake_chaser: FakeChaser) -> None:
    async with served(fake_chaser) as target:
        response = await target.health()
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_a_dead_idle_sweeper_makes_healthz_503_and_spares_the_conversations(
    fake_chaser: FakeChaser, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_sweeper() -> None:
        await anyio.sleep(0.3)
        raise RuntimeError("a bug in the sweeper")

    conversations = Conversations(cleanup_timeout=3, sweep_interval=0.05)
    monkeypatch.setattr(conversations, "sweep_idle_forever", broken_sweeper)
    async with (
        served(fake_chaser, conversations) as target,
        Client(f"{target.base}/mcp", mode="legacy") as client,
    ):
        response = await wait_for_status(target, 503)
        tools = await client.list_tools()  # the session opened before still works
    assert "the idle sweeper stopped (RuntimeError)" in response.json()["problems"]
    assert tools.tools


async def test_a_failed_session_manager_makes_healthz_503(fake_chaser: FakeChaser) -> None:
    async def crash() -> None:
        raise RuntimeError("the SDK's task group failed")

    async with served(fake_chaser) as target:
        assert (await target.health()).status_code == 200
        task_group = target.server.session_manager._task_group
        assert task_group is not None
        task_group.start_soon(crash)
        response = await wait_for_status(target, 503)
    assert "the MCP session manager is not running" in response.json()["problems"]
