"""Cleanup under faults, over real server processes: no failed or late delete is ever dropped.

A DELETE that keeps failing (500s, an answer that cannot be decoded) becomes a pending delete
that the server retries until the session is gone; it never breaks the server; a create that
answers after its conversation ended is still deleted; and what a stdio server could not delete
before exiting is journaled and deleted by the next server to start. Everything is counted at
the loopback fake API.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from chaser_mcp.store import SessionJournal
from tests.fake_chaser import DEFAULT_KEY, Delay, Drop, FakeChaser, Status
from tests.http_server import HttpServer
from tests.mcp_support import wait_until
from tests.stdio_process import HANDSHAKE_VERSION, StdioServer, cleanup_summaries

pytestmark = pytest.mark.anyio

SESSION_PATH = r"/v1/sessions/[^/]+"
MALFORMED_GZIP = Status(200, body=b"not gzip", headers={"Content-Encoding": "gzip"})
EXIT_WAIT = 30.0  # generous: the machine is shared; the tests wait for conditions, never for time


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(ready_delay=0) as fake:
        yield fake


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[HttpServer]]:
    """HTTP servers a test starts, killed afterwards if still running."""
    started: list[HttpServer] = []
    yield started
    for server in started:
        server.stop()


def start_http(fake: FakeChaser, tmp_path: Path, servers: list[HttpServer], **env: str) -> HttpServer:
    server = HttpServer(fake.url, env={"CHASER_KEY": DEFAULT_KEY, **env})
    servers.append(server)
    return server.start(tmp_path)


@asynccontextmanager
async def mcp_session(url: str, *, terminate_on_close: bool = True) -> AsyncIterator[Client]:
    """A handshake-era conversation (one Mcp-Session-Id) over streamable HTTP."""
    http = httpx2.AsyncClient(timeout=30)
    async with Client(
        streamable_http_client(url, http_client=http, terminate_on_close=terminate_on_close), mode="legacy"
    ) as client:
        yield client


async def create(client: Client, **arguments: Any) -> str:
    result = await client.call_tool("create_session", {"wait_until_ready": False, **arguments})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return str(result.structured_content["id"])


def open_ids(fake: FakeChaser) -> set[str]:
    return {s["id"] for s in fake.open_sessions()}


def assert_clean_exit(returncode: int, stderr: str) -> None:
    assert returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert DEFAULT_KEY not in stderr


# -- HTTP: a failed delete is retried, and never breaks the server ------------------------------------


async def test_an_idle_conversation_whose_delete_answer_cannot_be_decoded_breaks_nothing(
    fake: FakeChaser, tmp_path: Path, servers: list[HttpServer]
) -> None:
    server = start_http(fake, tmp_path, servers, CHASER_SESSION_IDLE_TIMEOUT="1")
    with anyio.fail_after(60):
        async with mcp_session(server.mcp_url, terminate_on_close=False) as client:
            abandoned = await create(client)
        # Every DELETE answers with a body that cannot be decoded until the fault runs out: more
        # than the client's four tries, so the session must outlive the idle cleanup as a pending delete.
        fake.inject(MALFORMED_GZIP, method="DELETE", path=SESSION_PATH, times=6)
        await wait_until(lambda: fake.count("DELETE") >= 1, timeout=20, what="the idle cleanup's delete")

        async with mcp_session(server.mcp_url) as other:
            working = await create(other)
            listed = await other.call_tool("list_sessions", {"owned_only": True})
            assert not listed.is_error, listed.content
        await wait_until(lambda: abandoned in fake.deleted_ids(), timeout=20, what="the pending delete")
        await wait_until(lambda: working in fake.deleted_ids(), timeout=10, what="the other cleanup")

    assert open_ids(fake) == set()
    async with httpx2.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{server.base}/healthz")).status_code == 200
    stderr = server.stderr()
    assert "Traceback" not in stderr, stderr
    assert "could not be decoded" in stderr


async def test_a_cleanup_delete_that_keeps_answering_500_is_retried_until_the_session_is_deleted(
    fake: FakeChaser, tmp_path: Path, servers: list[HttpServer]
) -> None:
    server = start_http(fake, tmp_path, servers)
    with anyio.fail_after(60):
        async with mcp_session(server.mcp_url) as client:
            session_id = await create(client)
            fake.inject(Status(500), method="DELETE", path=SESSION_PATH, times=10)
        await wait_until(lambda: session_id in fake.deleted_ids(), timeout=30, what="the retried delete")

    assert fake.count("DELETE") == 11
    # The server logs the success after the fake has answered: wait for the line, not a race with it.
    done = "pending delete of " + session_id + " done (deleted)"
    await wait_until(lambda: done in server.stderr(), timeout=10, what="the pending delete's log line")


async def test_twenty_conversations_whose_deletes_meet_ninety_faults_leave_no_session_open(
    fake: FakeChaser, tmp_path: Path, servers: list[HttpServer]
) -> None:
    server = start_http(fake, tmp_path, servers)
    # The first 90 DELETEs fail: 30 answer 500, 30 are reset, 30 answer a body that cannot be decoded.
    for fault in (Status(500), Drop(), MALFORMED_GZIP):
        fake.inject(fault, method="DELETE", path=SESSION_PATH, times=30)
    created: list[str] = []

    async def conversation() -> None:
        async with mcp_session(server.mcp_url) as client:
            created.extend([await create(client), await create(client)])

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(conversation)
        await wait_until(lambda: not fake.open_sessions(), timeout=60, what="every session to be deleted")

    assert len(created) == 40 and set(fake.deleted_ids()) == set(created)
    assert fake.count("DELETE") == 40 + 90
    assert "Traceback" not in server.stderr()


async def test_a_create_answering_after_its_mcp_session_was_deleted_is_still_deleted(
    fake: FakeChaser, tmp_path: Path, servers: list[HttpServer]
) -> None:
    """The cleanup waits half of CHASER_CLEANUP_TIMEOUT for creates; this one answers much later."""
    server = start_http(fake, tmp_path, servers, CHASER_CLEANUP_TIMEOUT="1")
    fake.inject(Delay(4.0), method="POST", path="/v1/sessions")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            opened = await http.post(server.mcp_url, json=initialize_request())
            headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
            headers["Mcp-Protocol-Version"] = HANDSHAKE_VERSION
            await http.post(
                server.mcp_url,
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers=headers,
            )

            async def call_create() -> None:
                call = {"name": "create_session", "arguments": {"wait_until_ready": False}}
                # Its answer has nowhere to go once the MCP session is deleted; only the API's side counts.
                await http.post(
                    server.mcp_url,
                    json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
                    headers=headers,
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(call_create)
                await wait_until(lambda: fake.count("POST", "/v1/sessions") == 1, what="the create request")
                ended = await http.delete(server.mcp_url, headers=headers)
                assert ended.status_code < 300
                await wait_until(
                    lambda: "ended (client closed" in server.stderr(), timeout=10, what="the end"
                )
                assert fake.sessions == []  # the create has not answered yet
                await wait_until(lambda: len(fake.sessions) == 1, timeout=20, what="the late create")
                [created] = [s["id"] for s in fake.sessions]
                await wait_until(lambda: created in fake.deleted_ids(), timeout=20, what="its delete")
                tg.cancel_scope.cancel()

    assert open_ids(fake) == set()
    assert f"had ended when the API answered with {created}: deleting it" in server.stderr()


def initialize_request() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "cleanup-faults-test", "version": "0"},
        },
    }


# -- stdio: the last attempt at exit, and what the next start finds -----------------------------------


async def test_stdin_eof_cleanup_hitting_an_undecodable_delete_answer_exits_0_with_its_summary(
    fake: FakeChaser,
) -> None:
    async with StdioServer(fake.url, env={"CHASER_CLEANUP_TIMEOUT": "5"}) as server:
        await server.initialize()
        session_id = await server.create_session()
        fake.inject(MALFORMED_GZIP, method="DELETE", path=SESSION_PATH, times=None)

        await server.close_stdin()
        returncode = await server.wait(EXIT_WAIT)
        stderr = server.stderr_text()

    assert_clean_exit(returncode, stderr)
    [summary] = cleanup_summaries(stderr)
    assert (summary["deleted"], summary["failed"]) == ("0", "1")
    assert f"{session_id} (DELETE /v1/sessions/{session_id} got an answer that could not be decoded" in stderr
    assert "with CHASER_JOURNAL=off nothing keeps them" in stderr
    assert open_ids(fake) == {session_id}


async def test_a_failed_cleanup_delete_gets_a_last_attempt_before_the_process_exits(fake: FakeChaser) -> None:
    async with StdioServer(fake.url) as server:
        await server.initialize()
        session_id = await server.create_session()
        fake.inject(Status(500), method="DELETE", path=SESSION_PATH, times=4)  # the cleanup's four tries

        await server.close_stdin()
        returncode = await server.wait(EXIT_WAIT)
        stderr = server.stderr_text()

    assert_clean_exit(returncode, stderr)
    assert fake.count("DELETE") == 5
    assert fake.deleted_ids() == [session_id]


async def test_what_a_stdio_server_could_not_delete_is_journaled_and_deleted_by_the_next_start(
    fake: FakeChaser, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    env = {"CHASER_JOURNAL": str(journal), "CHASER_CLEANUP_TIMEOUT": "3"}
    with anyio.fail_after(90):
        async with StdioServer(fake.url, env=env) as first:
            await first.initialize()
            session_id = await first.create_session()
            fake.inject(Status(500), method="DELETE", path=SESSION_PATH, times=None)
            await first.close_stdin()
            returncode = await first.wait(EXIT_WAIT)
            stderr = first.stderr_text()
        assert_clean_exit(returncode, stderr)
        assert "the next server to start deletes them" in stderr
        with SessionJournal(journal) as reader:
            [entry] = await reader.entries()
        assert entry.session_id == session_id and entry.pending and not entry.closed
        assert open_ids(fake) == {session_id}

        fake.clear_faults()
        async with StdioServer(fake.url, env=env) as second:
            await second.initialize()
            await wait_until(lambda: fake.deleted_ids() == [session_id], timeout=20, what="the reap")
            await wait_until(
                lambda: "were pending deletes" in second.stderr_text(), timeout=10, what="its log"
            )


async def test_a_stdio_create_answering_after_the_cleanup_bound_at_sigterm_is_waited_for_and_deleted(
    fake: FakeChaser,
) -> None:
    """SIGTERM's cleanup waits half of CHASER_CLEANUP_TIMEOUT for creates; this one answers later, yet
    within CHASER_TIMEOUT, which is how long an exiting stdio server waits for a create in flight.
    (On stdin EOF the SDK lets in-flight calls finish first, so the create is no longer in flight.)"""
    fake.inject(Delay(3.0), method="POST", path="/v1/sessions")
    env = {"CHASER_CLEANUP_TIMEOUT": "1", "CHASER_TIMEOUT": "15"}
    async with StdioServer(fake.url, env=env) as server:
        await server.initialize()
        await server.start_tool_call("create_session", {"wait_until_ready": False})
        await wait_until(lambda: fake.count("POST", "/v1/sessions") == 1, what="the create request")

        server.send_signal(signal.SIGTERM)
        returncode = await server.wait(EXIT_WAIT)
        stderr = server.stderr_text()

    assert_clean_exit(returncode, stderr)
    [created] = [s["id"] for s in fake.sessions]
    assert fake.deleted_ids() == [created]
    assert "session create(s) still in flight" in stderr
    assert f"had ended when the API answered with {created}: deleting it" in stderr
