"""After kill -9, the next server to start deletes what the dead one left open, and nothing else."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_server import HttpServer
from tests.mcp_support import wait_until
from tests.stdio_process import StdioServer

pytestmark = pytest.mark.anyio


def open_ids(fake: FakeChaser) -> set[str]:
    return {s["id"] for s in fake.open_sessions()}


async def test_a_restarted_stdio_server_deletes_a_killed_ones_leftovers_only(
    fake_chaser: FakeChaser, tmp_path: Path
) -> None:
    journal = {"CHASER_JOURNAL": str(tmp_path / "journal.sqlite3")}
    with anyio.fail_after(60):
        async with (
            StdioServer(fake_chaser.url, env=journal) as neighbour,
            StdioServer(fake_chaser.url, env=journal) as doomed,
        ):
            await neighbour.initialize()
            await doomed.initialize()
            theirs = await neighbour.create_session()
            leftover = await doomed.create_session()
            persisted = await doomed.create_session(persist=True)
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait(10)
            assert {theirs, leftover, persisted} <= open_ids(fake_chaser)

            async with StdioServer(fake_chaser.url, env=journal) as restarted:
                await restarted.initialize()
                await wait_until(lambda: leftover in fake_chaser.deleted_ids(), timeout=10, what="the reap")
                await wait_until(lambda: "1 deleted" in restarted.stderr_text(), timeout=10, what="its log")
            assert open_ids(fake_chaser) >= {theirs, persisted}
            assert fake_chaser.deleted_ids() == [leftover]


async def test_a_restarted_http_server_deletes_a_killed_ones_leftovers(
    fake_chaser: FakeChaser, tmp_path: Path
) -> None:
    env = {"CHASER_KEY": DEFAULT_KEY, "CHASER_JOURNAL": str(tmp_path / "journal.sqlite3")}
    doomed = HttpServer(fake_chaser.url, env=env).start(tmp_path)
    try:
        with anyio.fail_after(60):
            async with Client(doomed.mcp_url, mode="legacy") as client:
                result = await client.call_tool("create_session", {})
                assert result.structured_content is not None
                leftover = result.structured_content["id"]
                doomed.process.kill()  # type: ignore[union-attr]
                doomed.process.wait(10)  # type: ignore[union-attr]
    except BaseException:
        doomed.stop()
        raise
    assert leftover in open_ids(fake_chaser)
    restarted = HttpServer(fake_chaser.url, env=env).start(tmp_path)
    try:
        await wait_until(lambda: leftover in fake_chaser.deleted_ids(), timeout=10, what="the reap")
    finally:
        restarted.stop()


async def test_a_clean_exit_leaves_nothing_for_the_next_server_to_reap(
    fake_chaser: FakeChaser, tmp_path: Path
) -> None:
    journal = {"CHASER_JOURNAL": str(tmp_path / "journal.sqlite3")}
    with anyio.fail_after(60):
        async with StdioServer(fake_chaser.url, env=journal) as first:
            await first.initialize()
            await first.create_session()
            await first.close_stdin()
            assert await first.wait(15) == 0
        deletes_after_first = fake_chaser.count("DELETE")
        async with StdioServer(fake_chaser.url, env=journal) as second:
            await second.initialize()
            await second.request("tools/list")
            await second.close_stdin()
            assert await second.wait(15) == 0
    assert fake_chaser.count("DELETE") == deletes_after_first == 1
