"""Three replicas behind the shipped HAProxy config: sticky where the protocol keeps state in one
replica's process, round robin where it keeps none.

Real ``chaser-mcp`` processes on one fake Chaser API, Debian's haproxy running deploy/haproxy.cfg
(ports changed only), real SDK clients. Which replica served a request is read from HAProxy's own
per-server request count (the stats CSV's ``stot``; health checks are not counted there).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.haproxy_support import HAProxy, haproxy_binary
from tests.http_clients import SseStream
from tests.http_server import HttpServer, wait_until
from tests.mcp_support import wait_until as eventually

pytestmark = pytest.mark.anyio

REPLICAS = 3
CALLS = 24  # tool calls per conversation; any one sent to another replica would fail


def start_replicas(fake: FakeChaser, tmp_path: Path, transport: str, stack: ExitStack) -> list[HttpServer]:
    """Three replicas started side by side (each takes a few seconds to import and listen), each
    stopped by ``stack``, also when another failed to start."""

    def start(n: int) -> HttpServer:
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        replica = HttpServer(fake.url, transport=transport, env={"CHASER_KEY": DEFAULT_KEY})
        stack.callback(replica.stop)
        return replica.start(directory)

    with ThreadPoolExecutor(REPLICAS) as pool:
        futures = [pool.submit(start, n) for n in range(1, REPLICAS + 1)]
    return [future.result() for future in futures]


@dataclass
class Balanced:
    """HAProxy running the shipped config, and the replicas behind it."""

    proxy: HAProxy
    replicas: list[HttpServer]

    @property
    def base(self) -> str:
        return self.proxy.base

    def served_by(self) -> list[str]:
        """The replicas that were sent at least one request."""
        return sorted(name for name, count in self.proxy.requests_per_replica().items() if count)


@contextmanager
def balanced(fake: FakeChaser, tmp_path: Path, transport: str) -> Iterator[Balanced]:
    haproxy_binary()  # skip before starting anything when it is missing
    with ExitStack() as stack:
        replicas = start_replicas(fake, tmp_path, transport, stack)
        proxy = HAProxy(tmp_path, [replica.port for replica in replicas])
        stack.callback(proxy.stop)
        yield Balanced(proxy.start(), replicas)


@pytest.fixture
def http_replicas(fake_chaser: FakeChaser, tmp_path: Path) -> Iterator[Balanced]:
    """Three ``--transport http`` replicas behind HAProxy."""
    with balanced(fake_chaser, tmp_path, "http") as running:
        yield running


@pytest.fixture
def sse_replicas(fake_chaser: FakeChaser, tmp_path: Path) -> Iterator[Balanced]:
    """Three ``--transport sse`` replicas behind HAProxy."""
    with balanced(fake_chaser, tmp_path, "sse") as running:
        yield running


def connect(url: str, mode: str) -> AbstractAsyncContextManager[Client]:
    if url.endswith("/sse"):
        return Client(sse_client(url), mode=mode)
    http = httpx2.AsyncClient(timeout=30)
    return Client(streamable_http_client(url, http_client=http, terminate_on_close=True), mode=mode)


async def create(client: Client) -> str:
    result = await client.call_tool("create_session", {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return str(result.structured_content["id"])


async def use(client: Client, session_id: str, calls: int = CALLS) -> None:
    """``calls`` tool calls on ``session_id``, alternating a read of it and a listing of owned ones."""
    for n in range(calls):
        if n % 2:
            result = await client.call_tool("get_session", {"session_id": session_id})
        else:
            result = await client.call_tool("list_sessions", {"owned_only": True})
        assert not result.is_error, (n, result.content)
        assert session_id in str(result.structured_content), (n, result.structured_content)


async def test_an_mcp_session_is_served_by_the_replica_that_opened_it(http_replicas: Balanced) -> None:
    with anyio.fail_after(60):
        async with connect(f"{http_replicas.base}/mcp", "legacy") as client:
            session_id = await create(client)
            await use(client, session_id)
    assert len(http_replicas.served_by()) == 1, http_replicas.proxy.requests_per_replica()


async def test_deleting_an_mcp_session_through_the_balancer_deletes_its_sessions(
    http_replicas: Balanced, fake_chaser: FakeChaser
) -> None:
    with anyio.fail_after(60):
        async with connect(f"{http_replicas.base}/mcp", "legacy") as client:
            session_id = await create(client)
            await use(client, session_id, calls=4)
        # Leaving the client DELETEs the MCP session; only the replica holding it can end it.
        await eventually(lambda: session_id in fake_chaser.deleted_ids(), timeout=10, what="the DELETE")
    assert fake_chaser.deleted_ids() == [session_id]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_sse_streams_messages_are_served_by_the_replica_holding_it(
    sse_replicas: Balanced, mode: str
) -> None:
    with anyio.fail_after(60):
        async with connect(f"{sse_replicas.base}/sse", mode) as client:
            session_id = await create(client)
            await use(client, session_id)
    assert len(sse_replicas.served_by()) == 1, sse_replicas.proxy.requests_per_replica()


async def test_closing_an_sse_stream_through_the_balancer_deletes_its_sessions(
    sse_replicas: Balanced, fake_chaser: FakeChaser
) -> None:
    with anyio.fail_after(60):
        async with connect(f"{sse_replicas.base}/sse", "legacy") as client:
            session_id = await create(client)
            await use(client, session_id, calls=4)
        await eventually(lambda: session_id in fake_chaser.deleted_ids(), timeout=10, what="the DELETE")
    assert fake_chaser.deleted_ids() == [session_id]


async def test_an_sse_stream_names_its_session_id_in_a_response_header(sse_replicas: Balanced) -> None:
    with anyio.fail_after(30):
        async with (
            httpx2.AsyncClient(timeout=30) as http,
            http.stream("GET", f"{sse_replicas.base}/sse") as response,
        ):
            stream = SseStream(http, sse_replicas.base, response, None)
            await stream.read_endpoint()
            header = response.headers.get("mcp-sse-session-id")
    assert stream.stream_id and header == stream.stream_id


async def test_stateless_requests_are_spread_over_every_replica(http_replicas: Balanced) -> None:
    with anyio.fail_after(60):
        async with connect(f"{http_replicas.base}/mcp", "auto") as client:
            for n in range(CALLS):
                result = await client.call_tool("list_sessions", {})
                assert not result.is_error, (n, result.content)
    counts = http_replicas.proxy.requests_per_replica()
    assert len(counts) == REPLICAS and all(count >= CALLS // REPLICAS for count in counts.values()), counts


async def test_a_replica_that_stops_answering_its_health_check_leaves_the_rotation(
    http_replicas: Balanced,
) -> None:
    hung = http_replicas.replicas[1]
    assert hung.process is not None
    os.kill(hung.process.pid, signal.SIGSTOP)  # alive, connections accepted, nothing answered
    try:
        assert wait_until(lambda: http_replicas.proxy.status("replica2").startswith("DOWN"), timeout=30)
        before = http_replicas.proxy.requests_per_replica()
        with anyio.fail_after(60):
            async with connect(f"{http_replicas.base}/mcp", "auto") as client:
                for n in range(CALLS):
                    result = await client.call_tool("list_sessions", {})
                    assert not result.is_error, (n, result.content)
        after = http_replicas.proxy.requests_per_replica()
    finally:
        os.kill(hung.process.pid, signal.SIGCONT)
    assert after["replica2"] == before["replica2"]
    assert all(after[name] > before[name] for name in ("replica1", "replica3")), (before, after)
