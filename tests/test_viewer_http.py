"""The live viewer on the HTTP transports: mounted at ``/viewer/`` on the server's own origin, behind
the same Host allow-list as ``/mcp``, pointing at ``CHASER_PUBLIC_URL`` when set, and bound to the
caller that minted it (multi-tenant: another key cannot mint one for my session)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from chaser_mcp.local import LocalAPIServer, running_local_api
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_clients import call_in_session, open_mcp_session, rpc_message
from tests.http_server import HttpServer, served_on
from tests.local_support import requires_chromium, short_temp_dir
from tests.mcp_support import structured, text_of
from tests.page_support import LOCAL_KEY, PagesSite
from tests.replica_support import connect
from tests.viewer_support import RED, SWATCH, colour_at, first_meta, near, next_frame, tap, viewer_socket

pytestmark = pytest.mark.anyio

BOB = "ck_test_fake_bob_0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(ready_delay=0.05) as running:
        yield running


@pytest.fixture(scope="module")
async def local_api() -> AsyncIterator[LocalAPIServer]:
    with short_temp_dir() as base:
        async with running_local_api(base_dir=base, api_key=LOCAL_KEY) as api:
            yield api


async def new_session(client: Client) -> str:
    info = structured(await client.call_tool("create_session", {"ttl_seconds": 300}))
    return str(info["id"])


@requires_chromium
async def test_over_http_the_viewer_is_mounted_on_the_servers_origin_and_forwards_a_tap(
    local_api: LocalAPIServer, pages_site: PagesSite
) -> None:
    async with (
        served_on(local_api.base_url, api_key=LOCAL_KEY, timeout=30.0) as running,
        connect(running.mcp_url, "auto") as client,
    ):
        session_id = await new_session(client)
        await client.call_tool(
            "navigate", {"session_id": session_id, "url": pages_site.url("viewer-form.html")}
        )
        link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
        assert link["url"].startswith(f"{running.base}/viewer/")
        async with viewer_socket(link["url"]) as stream:
            meta = await first_meta(stream)
            await next_frame(stream)
            await tap(stream, *SWATCH)
            with anyio.fail_after(15):
                while not near(colour_at(await next_frame(stream), *SWATCH, meta["width"]), RED):
                    pass
        await client.call_tool("delete_session", {"session_id": session_id})


async def test_over_http_the_viewer_refuses_a_host_outside_the_allow_list(fake: FakeChaser) -> None:
    async with served_on(fake.url) as running, connect(running.mcp_url, "auto") as client:
        session_id = await new_session(client)
        link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
        async with httpx2.AsyncClient() as http:
            rebound = await http.get(link["url"], headers={"Host": "attacker.example"})
            allowed = await http.get(link["url"])
    assert (rebound.status_code, allowed.status_code) == (421, 200)


async def test_links_point_at_the_public_url_when_one_is_set(fake: FakeChaser) -> None:
    public = "https://mcp.example.com/chaser"
    async with served_on(fake.url, public_url=public) as running, connect(running.mcp_url, "auto") as client:
        session_id = await new_session(client)
        link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
    assert link["url"].startswith(f"{public}/viewer/")


async def test_a_cloud_session_gets_a_viewer_link_not_the_dashboard_stream(fake: FakeChaser) -> None:
    async with served_on(fake.url) as running, connect(running.mcp_url, "legacy") as client:
        session_id = await new_session(client)
        link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
    assert link["url"].startswith(f"{running.base}/viewer/") and "wss://" not in link["url"]
    assert fake.count("POST", r".*/preview-token") == 0


async def test_a_link_to_a_session_the_caller_cannot_see_is_refused(fake: FakeChaser) -> None:
    async with served_on(fake.url) as running, connect(running.mcp_url, "auto") as client:
        result = await client.call_tool("get_preview_link", {"session_id": "sess_0123abcd-0000"})
    assert result.is_error and "not found" in text_of(result).lower()


@pytest.fixture
def two_tenants() -> Iterator[FakeChaser]:
    with FakeChaser(api_keys=(DEFAULT_KEY, BOB), ready_delay=0.05) as fake:
        yield fake


@pytest.fixture
def tenant_server(two_tenants: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = HttpServer(two_tenants.url, args=("--multi-tenant",)).start(tmp_path)
    yield running
    running.stop()


async def _call(http: httpx2.AsyncClient, server: HttpServer, key: str, name: str, **arguments: Any) -> Any:
    session = await open_mcp_session(http, server.mcp_url, key)
    response = await call_in_session(http, server.mcp_url, session, name, arguments, token=key)
    return rpc_message(response)["result"]


async def test_another_caller_cannot_mint_a_viewer_link_to_my_session(tenant_server: HttpServer) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        created = await _call(http, tenant_server, DEFAULT_KEY, "create_session", ttl_seconds=300)
        session_id = created["structuredContent"]["id"]
        mine = await _call(http, tenant_server, DEFAULT_KEY, "get_preview_link", session_id=session_id)
        theirs = await _call(http, tenant_server, BOB, "get_preview_link", session_id=session_id)
    assert not mine.get("isError") and mine["structuredContent"]["url"].startswith(
        f"{tenant_server.base}/viewer/"
    )
    assert theirs["isError"] and "url" not in (theirs.get("structuredContent") or {})
