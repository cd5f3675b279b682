"""The live view as an MCP App (chaser_mcp/app.py), through real SDK clients in both protocol eras: offered
to a client that declares ``io.modelcontextprotocol/ui`` with the app MIME type, invisible to any other;
and the viewer links such a client's tools mint, which a host's sandbox may frame."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents

from chaser_mcp.app import APP_MIME_TYPE, EXTENSION_ID, LIVE_VIEW_URI, attach_live_view
from chaser_mcp.viewer import origin_of
from tests.fake_chaser import FakeChaser
from tests.mcp_support import Harness, Mode, running_server, structured
from tests.test_tool_list import GOLDEN, render_golden

pytestmark = pytest.mark.anyio

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
APPS_WITHOUT_HTML = advertise(EXTENSION_ID, {"mimeTypes": ["text/uri-list"]})


@pytest.fixture
async def harness(fake_chaser: FakeChaser) -> AsyncIterator[Harness]:
    async with running_server(fake_chaser) as harness:
        yield harness


def connect(harness: Harness, mode: Mode, *extensions: Any) -> Client:
    return Client(harness.server, mode=mode, extensions=list(extensions))


async def tools_by_name(client: Client) -> dict[str, dict[str, Any]]:
    listing = (await client.list_tools(cache_mode="refresh")).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return {tool["name"]: tool for tool in listing["tools"]}


async def resource_uris(client: Client) -> list[str]:
    return [str(resource.uri) for resource in (await client.list_resources()).resources]


async def read_app(client: Client) -> TextResourceContents:
    [content] = (await client.read_resource(LIVE_VIEW_URI)).contents
    assert isinstance(content, TextResourceContents)
    return content


async def preview_link(client: Client) -> str:
    session_id = structured(await client.call_tool("create_session", {}))["id"]
    url: str = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))["url"]
    return url


# -- what each client sees ---------------------------------------------------------------------------


async def test_a_declaring_client_sees_get_preview_link_bound_to_the_app(
    harness: Harness, mode: Mode
) -> None:
    async with connect(harness, mode, APPS) as client:
        tools = await tools_by_name(client)

    assert tools["get_preview_link"]["_meta"]["ui"] == {"resourceUri": LIVE_VIEW_URI}
    assert tools["hand_off"]["_meta"]["ui"] == {"resourceUri": LIVE_VIEW_URI}
    assert not [
        name
        for name, tool in tools.items()
        if "ui" in tool.get("_meta", {}) and name not in ("get_preview_link", "hand_off")
    ]


async def test_attach_live_view_binds_another_tool_for_declaring_clients_only(
    harness: Harness, mode: Mode
) -> None:
    attach_live_view(harness.server, "get_session")  # as hand_off will be
    async with connect(harness, mode, APPS) as declaring, connect(harness, mode) as other:
        bound, plain = (
            (await tools_by_name(declaring))["get_session"],
            (await tools_by_name(other))["get_session"],
        )

    assert bound["_meta"]["ui"] == {"resourceUri": LIVE_VIEW_URI}
    assert "ui" not in plain.get("_meta", {})


@pytest.mark.parametrize("extensions", [(), (APPS_WITHOUT_HTML,)], ids=["no-extension", "no-html-mime-type"])
async def test_any_other_client_sees_the_golden_tools_list(
    harness: Harness, mode: Mode, extensions: Any
) -> None:
    async with connect(harness, mode, *extensions) as client:
        listing = (await client.list_tools(cache_mode="refresh")).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )

    assert render_golden(listing) == GOLDEN.read_text(encoding="utf-8")


async def test_the_app_is_listed_only_for_a_declaring_client(harness: Harness, mode: Mode) -> None:
    async with connect(harness, mode, APPS) as declaring, connect(harness, mode) as other:
        offered = await resource_uris(declaring)
        not_offered = await resource_uris(other)

    assert LIVE_VIEW_URI in offered
    assert LIVE_VIEW_URI not in not_offered
    assert [uri for uri in offered if uri != LIVE_VIEW_URI] == not_offered


async def test_another_client_cannot_read_the_app(harness: Harness, mode: Mode) -> None:
    async with connect(harness, mode) as client:
        with pytest.raises(MCPError):
            await client.read_resource(LIVE_VIEW_URI)


# -- the page ------------------------------------------------------------------------------------------


async def test_the_app_is_served_as_an_mcp_app_that_may_frame_only_the_viewer(
    harness: Harness, mode: Mode
) -> None:
    async with connect(harness, mode, APPS) as client:
        content = await read_app(client)

    origin = harness.state.viewers.origin
    assert origin is not None and origin.startswith("http://127.0.0.1:")  # stdio's loopback viewer, opened
    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.meta is not None
    assert content.meta["ui"]["csp"] == {"frameDomains": [origin]}


async def test_the_app_page_references_nothing_but_the_viewers_origin(harness: Harness, mode: Mode) -> None:
    async with connect(harness, mode, APPS) as client:
        html = (await read_app(client)).text

    origin = harness.state.viewers.origin
    assert re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]*", html) == [origin]
    assert not re.search(r"<(script|link|img)[^>]*\s(src|href)=", html)
    assert "ui/notifications/tool-result" in html and "ui/initialize" in html


# -- the links it frames ---------------------------------------------------------------------------------


async def test_a_declaring_clients_link_may_be_framed_and_another_clients_may_not(
    harness: Harness, mode: Mode
) -> None:
    async with connect(harness, mode, APPS) as declaring, connect(harness, mode) as other:
        embeddable, ordinary = await preview_link(declaring), await preview_link(other)
    async with httpx2.AsyncClient() as http:
        framed, denied = await http.get(embeddable), await http.get(ordinary)

    assert framed.status_code == denied.status_code == 200
    assert "x-frame-options" not in framed.headers
    assert "frame-ancestors" not in framed.headers["content-security-policy"]
    assert "default-src 'none'" in framed.headers["content-security-policy"]
    assert denied.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in denied.headers["content-security-policy"]


async def test_an_embeddable_link_accepts_a_sandboxed_frames_opaque_origin(
    harness: Harness, mode: Mode
) -> None:
    async with connect(harness, mode, APPS) as declaring, connect(harness, mode) as other:
        embeddable, ordinary = await preview_link(declaring), await preview_link(other)
    async with httpx2.AsyncClient() as http:
        from_sandbox = await http.post(f"{embeddable}/done", headers={"Origin": "null"})
        refused = await http.post(f"{ordinary}/done", headers={"Origin": "null"})
        foreign = await http.post(f"{embeddable}/done", headers={"Origin": "https://elsewhere.example"})

    assert from_sandbox.status_code == 204
    assert refused.status_code == foreign.status_code == 403
    assert origin_of(embeddable) == harness.state.viewers.origin
