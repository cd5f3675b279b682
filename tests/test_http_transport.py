"""SSE and streamable HTTP: every tool in both eras, and each way a conversation ends.

Each test runs a real ``chaser-mcp`` server on loopback (a process, or in this process under uvicorn
where a test drives the idle clock) against the fake
Chaser API and counts, at the fake, exactly which sessions were deleted.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from chaser_mcp.conversations import Conversations
from tests.fake_chaser import DEFAULT_KEY, FakeChaser, Status
from tests.http_server import HttpServer, served
from tests.mcp_support import ManualClock, wait_until
from tests.redis_support import RedisServer

pytestmark = pytest.mark.anyio

OTHER_KEY = "ck_test_fake_other_0123456789ab"
MODES = ["legacy", "auto"]


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(api_keys=(DEFAULT_KEY, OTHER_KEY), ready_delay=0.05) as fake:
        yield fake


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, str]:
    """The conversation-end tests run on both stores: the embedded one, and Redis shared by replicas."""
    if request.param == "embedded":
        return {}
    redis: RedisServer = request.getfixturevalue("redis_server")
    return {"CHASER_STORE": redis.url, "CHASER_STORE_HEARTBEAT": "0.3"}


def start_server(fake: FakeChaser, tmp_path: Path, transport: str = "http", **env: str) -> HttpServer:
    environment = {"CHASER_KEY": DEFAULT_KEY, **env}
    return HttpServer(fake.url, transport=transport, env=environment).start(tmp_path)


@pytest.fixture
def server(fake: FakeChaser, tmp_path: Path, store: dict[str, str]) -> Iterator[HttpServer]:
    running = start_server(fake, tmp_path, CHASER_SESSION_IDLE_TIMEOUT="1", CHASER_LEASE_SECONDS="1", **store)
    yield running
    running.stop()


@pytest.fixture
def sse_server(fake: FakeChaser, tmp_path: Path, store: dict[str, str]) -> Iterator[HttpServer]:
    running = start_server(fake, tmp_path, transport="sse", **store)
    yield running
    running.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def driven_by(clock: ManualClock) -> Conversations:
    """A conversation registry whose idle and lease rules follow ``clock``; its own sweeper never
    runs during a test (the test sweeps, with ``end_idle``, after moving the clock)."""
    return Conversations(cleanup_timeout=3, sweep_interval=3600, clock=clock)


def connect(
    url: str, mode: str, *, token: str | None = None, terminate_on_close: bool = True
) -> AbstractAsyncContextManager[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if url.endswith("/sse"):
        return Client(sse_client(url, headers=headers), mode=mode)
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(
        streamable_http_client(url, http_client=http, terminate_on_close=terminate_on_close),
        mode=mode,
    )


async def create(client: Client, **arguments: Any) -> str:
    result = await client.call_tool("create_session", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return str(result.structured_content["id"])


def open_ids(fake: FakeChaser, key: str | None = None) -> set[str]:
    return {s["id"] for s in fake.open_sessions(key)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_every_tool_works_over_each_transport_and_era(
    fake: FakeChaser, server: HttpServer, sse_server: HttpServer, transport: str, mode: str
) -> None:
    url = server.mcp_url if transport == "http" else sse_server.sse_url
    with anyio.fail_after(30):
        async with connect(url, mode) as client:
            session_id = await create(client)
            listed = await client.call_tool("list_sessions", {"owned_only": True})
            got = await client.call_tool("get_session", {"session_id": session_id})
            shot = await client.call_tool("take_screenshot", {"session_id": session_id})
            link = await client.call_tool("get_preview_link", {"session_id": session_id})
            deleted = await client.call_tool("delete_session", {"session_id": session_id})
    assert listed.structured_content is not None
    assert [s["id"] for s in listed.structured_content["sessions"]] == [session_id]
    assert got.structured_content is not None and got.structured_content["owned"] is True
    assert [block.type for block in shot.content] == ["text", "image"]
    base = server.base if transport == "http" else sse_server.base
    assert link.structured_content is not None and link.structured_content["url"].startswith(
        f"{base}/viewer/"
    )
    assert deleted.structured_content == {"session_id": session_id, "outcome": "deleted", "owned": True}


async def test_closing_an_sse_stream_deletes_only_that_streams_sessions(
    fake: FakeChaser, sse_server: HttpServer
) -> None:
    with anyio.fail_after(30):
        async with connect(sse_server.sse_url, "legacy") as staying:
            kept = await create(staying)
            async with connect(sse_server.sse_url, "legacy") as leaving:
                gone = await create(leaving)
                persisted = await create(leaving, persist=True)
            await wait_until(lambda: gone in fake.deleted_ids(), timeout=10, what="the DELETE")
            assert kept in open_ids(fake) and persisted in open_ids(fake)
            assert fake.deleted_ids() == [gone]


async def test_two_sse_streams_do_not_own_each_others_sessions(
    fake: FakeChaser, sse_server: HttpServer
) -> None:
    with anyio.fail_after(30):
        async with (
            connect(sse_server.sse_url, "auto") as first,
            connect(sse_server.sse_url, "auto") as second,
        ):
            theirs = await create(first)
            refused = await second.call_tool("delete_session", {"session_id": theirs})
            seen = await second.call_tool("get_session", {"session_id": theirs})
    assert refused.is_error and "force=true" in refused.content[0].text  # type: ignore[union-attr]
    assert seen.structured_content is not None and seen.structured_content["owned"] is False


async def test_deleting_the_mcp_session_id_deletes_its_sessions_at_once(
    fake: FakeChaser, tmp_path: Path, store: dict[str, str]
) -> None:
    server = start_server(fake, tmp_path, **store)  # default idle timeout: only the DELETE can end it
    try:
        with anyio.fail_after(30):
            async with connect(server.mcp_url, "legacy") as client:
                session_id = await create(client)
                kept = await create(client, persist=True)
            await wait_until(lambda: session_id in fake.deleted_ids(), timeout=5, what="the DELETE")
        assert kept in open_ids(fake)
    finally:
        server.stop()


async def test_an_abandoned_mcp_session_id_is_cleaned_up_after_the_idle_timeout(
    fake: FakeChaser, clock: ManualClock
) -> None:
    async with served(fake, driven_by(clock), session_idle_timeout=60.0) as target:
        sweep = target.state.conversations.end_idle
        with anyio.fail_after(30):
            async with connect(target.mcp_url, "legacy", terminate_on_close=False) as client:
                session_id = await create(client)
            clock.advance(59)
            assert await sweep() == [] and session_id in open_ids(fake)
            clock.advance(2)
            reports = await sweep()
    assert [report.reason for report in reports] == ["idle timeout"]
    assert reports[0].deleted == (session_id,)


async def test_a_stateless_callers_sessions_survive_while_it_keeps_calling(
    fake: FakeChaser, clock: ManualClock
) -> None:
    async with served(fake, driven_by(clock), lease_seconds=1.0) as target:
        sweep = target.state.conversations.end_idle
        with anyio.fail_after(30):
            async with connect(target.mcp_url, "auto") as client:
                session_id = await create(client)
                for _ in range(6):  # 3 s of activity against a 1 s lease
                    clock.advance(0.5)
                    await client.list_tools()
                    assert await sweep() == []
                assert session_id in open_ids(fake)
            clock.advance(1.5)
            reports = await sweep()
    assert [report.deleted for report in reports] == [(session_id,)]


async def test_sigterm_deletes_every_conversations_sessions_and_exits_zero(
    fake: FakeChaser, tmp_path: Path, store: dict[str, str]
) -> None:
    server = start_server(fake, tmp_path, **store)
    with anyio.fail_after(30):
        async with connect(server.mcp_url, "legacy", terminate_on_close=False) as one:
            first = await create(one)
        async with connect(server.mcp_url, "auto") as two:
            second = await create(two)
            kept = await create(two, persist=True)
    assert server.terminate(signal.SIGTERM) == 0
    if not store:
        assert {first, second} <= set(fake.deleted_ids())
        assert open_ids(fake) == {kept}
    else:
        # Replicas: a stateless caller's lease is every replica's, so one replica stopping leaves it be
        # (the lease's expiry deletes it, test_replicas.py); the handshake-era conversation was its own.
        assert first in fake.deleted_ids()
        assert open_ids(fake) == {kept, second}


# -- multi-tenant: each caller brings its own key ----------------------------------------------


@pytest.fixture
def tenant_server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = HttpServer(fake.url, env={"CHASER_LEASE_SECONDS": "1.5"}, args=("--multi-tenant",)).start(
        tmp_path
    )
    yield running
    running.stop()


async def test_multi_tenant_callers_are_isolated_by_their_keys(
    fake: FakeChaser, tenant_server: HttpServer
) -> None:
    with anyio.fail_after(30):
        async with connect(tenant_server.mcp_url, "auto", token=DEFAULT_KEY) as alice:
            hers = await create(alice)
            async with connect(tenant_server.mcp_url, "auto", token=OTHER_KEY) as bob:
                his = await create(bob)
                listing = await bob.call_tool("list_sessions", {})
                forced = await bob.call_tool("delete_session", {"session_id": hers, "force": True})
    assert hers in open_ids(fake, DEFAULT_KEY) and his in open_ids(fake, OTHER_KEY)
    assert listing.structured_content is not None
    assert [s["id"] for s in listing.structured_content["sessions"]] == [his]
    assert forced.is_error and "session_not_found" in forced.content[0].text  # type: ignore[union-attr]


async def test_lease_expiry_deletes_only_the_idle_callers_sessions(
    fake: FakeChaser, clock: ManualClock
) -> None:
    conversations = driven_by(clock)
    async with served(fake, conversations, api_key=None, multi_tenant=True, lease_seconds=1.5) as target:
        with anyio.fail_after(30):
            async with connect(target.mcp_url, "auto", token=DEFAULT_KEY) as idle:
                idle_session = await create(idle)
            async with connect(target.mcp_url, "auto", token=OTHER_KEY) as busy:
                busy_session = await create(busy)
                for _ in range(4):  # 2 s: the idle caller's 1.5 s lease runs out, the busy one's never
                    clock.advance(0.5)
                    await busy.list_tools()
                    await conversations.end_idle()
                assert idle_session in fake.deleted_ids()
                assert busy_session in open_ids(fake, OTHER_KEY)


@pytest.mark.parametrize("authorization", [None, "Bearer ck_test_wrong_key_000000000", "Basic abc"])
def test_multi_tenant_refuses_a_missing_or_bad_key_with_401(
    tenant_server: HttpServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx2.post(tenant_server.mcp_url, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="chaser-mcp"')
    assert "ck_test_wrong_key" not in response.text + tenant_server.stderr()


# -- single-tenant: an inbound token, DNS-rebinding protection ---------------------------------


@pytest.fixture
def token_server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = start_server(fake, tmp_path, CHASER_AUTH_TOKEN="inbound-secret-token")
    yield running
    running.stop()


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_an_inbound_token_is_required_when_configured(token_server: HttpServer, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    assert httpx2.post(token_server.mcp_url, headers=headers, json={}).status_code == 401


async def test_the_right_inbound_token_is_let_through(fake: FakeChaser, token_server: HttpServer) -> None:
    with anyio.fail_after(30):
        async with connect(token_server.mcp_url, "legacy", token="inbound-secret-token") as client:
            assert (await client.list_tools()).tools


def test_a_foreign_host_header_is_rejected(server: HttpServer) -> None:
    response = httpx2.post(server.mcp_url, headers={"Host": "evil.example"}, json={})
    assert response.status_code == 421


def test_a_foreign_origin_is_rejected(server: HttpServer) -> None:
    response = httpx2.post(server.mcp_url, headers={"Origin": "http://evil.example"}, json={})
    assert response.status_code == 403


def test_a_configured_reverse_proxy_host_is_accepted(fake: FakeChaser, tmp_path: Path) -> None:
    server = start_server(fake, tmp_path, CHASER_ALLOWED_HOSTS="mcp.example.com")
    try:
        response = httpx2.post(server.mcp_url, headers={"Host": "mcp.example.com"}, json={})
        assert response.status_code != 421
    finally:
        server.stop()


def test_a_non_loopback_bind_without_a_token_refuses_to_start(fake: FakeChaser, tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "chaser_mcp", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env={"CHASER_KEY": DEFAULT_KEY, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert "CHASER_AUTH_TOKEN" in result.stderr and "0.0.0.0" in result.stderr


def test_healthz_answers_without_auth(token_server: HttpServer) -> None:
    response = httpx2.get(f"{token_server.base}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_an_oversized_request_body_is_refused(server: HttpServer) -> None:
    response = httpx2.post(
        server.mcp_url,
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 413


# -- many conversations at once, with faults ---------------------------------------------------


async def test_twenty_concurrent_conversations_with_faults_leave_no_unpersisted_session_open(
    fake: FakeChaser, tmp_path: Path, store: dict[str, str]
) -> None:
    # On Redis, the stateless callers' leases outlive the replica: a short lease, and a replica
    # started afterwards reaps them once they expire.
    lease = {"CHASER_LEASE_SECONDS": "1"} if store else {}
    server = start_server(fake, tmp_path, **store, **lease)
    fake.inject(
        Status(503, {"error": {"code": "unavailable", "message": "try later"}}), method="GET", times=10
    )
    fake.inject(Status(502, "<html>bad gateway</html>"), method="DELETE", times=5)
    fake.inject(
        Status(429, None, headers={"Retry-After": "0"}), method="POST", path="/v1/sessions/.*", times=5
    )
    persisted: set[str] = set()

    async def conversation(index: int) -> None:
        mode = MODES[index % 2]
        async with connect(server.mcp_url, mode, terminate_on_close=index % 4 != 3) as client:
            for round_ in range(2):
                session_id = await create(client, persist=(index == round_ == 0))
                if index == round_ == 0:
                    persisted.add(session_id)
                await client.call_tool("take_screenshot", {"session_id": session_id})
                if round_ == 0 and index % 3 == 1:
                    await client.call_tool("delete_session", {"session_id": session_id})

    try:
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for index in range(20):
                    tg.start_soon(conversation, index)
        assert server.terminate(signal.SIGTERM) == 0
    finally:
        server.stop()
    if store:
        successor = start_server(fake, tmp_path, **store, **lease)
        try:
            await wait_until(lambda: open_ids(fake) == persisted, timeout=20, what="the successor's reap")
        finally:
            successor.stop()
    assert open_ids(fake) == persisted
