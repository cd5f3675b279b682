"""``/healthz`` tells the truth: 503 as soon as any part of the serving machinery has stopped.

The server runs in this process under real uvicorn on a loopback socket, so a test can break one part
the way an unforeseen bug would (an exception escaping the idle sweeper, the SDK's session manager's
task group failing) and watch what a supervisor polling ``/healthz`` would see.
"""

from __future__ import annotations

import anyio
import httpx2
import pytest
from mcp import Client

from chaser_mcp.conversations import Conversations
from tests.fake_chaser import FakeChaser
from tests.http_server import Served, served

pytestmark = pytest.mark.anyio


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
