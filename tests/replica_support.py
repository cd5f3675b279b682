"""Several chaser-mcp replicas on one real Redis, each a real server process, for the tests (and the
load bench) of shared state: ``replica_set`` starts them, pointed at one FakeChaser."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.fake_chaser import DEFAULT_KEY
from tests.http_server import HttpServer

__all__ = ["connect", "created_id", "replica_set"]


@contextmanager
def replica_set(
    api_url: str,
    store_url: str,
    tmp_path: Path,
    *,
    count: int = 3,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    transport: str = "http",
) -> Iterator[list[HttpServer]]:
    """``count`` servers sharing ``store_url``, with a quick heartbeat (dead after 0.9 s) so the tests
    of a dead replica do not wait 30 s; stopped (kill) on exit."""
    common = {"CHASER_STORE": store_url, "CHASER_STORE_HEARTBEAT": "0.3", **(env or {})}
    if "--multi-tenant" not in args:
        common.setdefault("CHASER_KEY", DEFAULT_KEY)
    started: list[HttpServer] = []
    try:
        for _ in range(count):
            started.append(HttpServer(api_url, transport=transport, env=common, args=args).start(tmp_path))
        yield started
    finally:
        for server in started:
            server.stop()


def connect(url: str, mode: str, token: str | None = None) -> AbstractAsyncContextManager[Client]:
    """An SDK client of one replica: ``mode`` "legacy" (handshake era) or "auto" (2026-07-28)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if url.endswith("/sse"):
        return Client(sse_client(url, headers=headers), mode=mode)
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(url, http_client=http, terminate_on_close=True), mode=mode)


async def created_id(client: Client, **arguments: object) -> str:
    result = await client.call_tool("create_session", dict(arguments))
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return str(result.structured_content["id"])
