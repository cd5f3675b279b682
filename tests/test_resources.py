"""Sessions as MCP resources (chaser_mcp/resources.py), through real MCP clients in both protocol eras,
on the fake API; and the resource-updated notifications of 2026-07-28 ``subscriptions/listen``."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import Subscription
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import INVALID_PARAMS, Implementation, TextResourceContents
from PIL import Image

from chaser_mcp.conversations import Conversation
from chaser_mcp.server import build_server, single_conversation
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_server import served
from tests.mcp_support import Harness, Mode, read_blob, running_server, sniff_mime, structured
from tests.replica_support import connect

pytestmark = pytest.mark.anyio

SESSIONS = "chaser://sessions"
OTHER_KEY = "ck_test_other_workspace_0000000000"
VOLATILE = {"bytes_up", "bytes_down"}  # the fake's traffic counters move between two reads
MALFORMED = ["nope", "sess_", "sess_a%2F..", "%2E%2E", "sess_a%20b", "SESS_abc", "sess_" + "a" * 200]


def session_uri(session_id: str) -> str:
    return f"{SESSIONS}/{session_id}"


async def create(client: Client, **arguments: Any) -> str:
    session_id: str = structured(await client.call_tool("create_session", arguments))["id"]
    return session_id


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    [content] = result.contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    return json.loads(content.text)


async def next_update(subscription: Subscription) -> str:
    """The URI of the next resource-updated event (fails the test if none comes within 5 s)."""
    with anyio.fail_after(5):
        async for event in subscription:
            if isinstance(event, ResourceUpdated):
                return event.uri
    raise AssertionError("the listen stream ended")


@pytest.fixture
async def polling(fake_chaser: FakeChaser) -> AsyncIterator[Harness]:
    """A server whose listen streams check their sessions every 50 ms."""
    async with running_server(fake_chaser, resource_poll=0.05) as harness:
        yield harness


@pytest.fixture
async def not_polling(fake_chaser: FakeChaser) -> AsyncIterator[Harness]:
    """A server whose listen streams never poll within a test: what they hear, tool calls told them."""
    async with running_server(fake_chaser, resource_poll=3600) as harness:
        yield harness


# -- listing ---------------------------------------------------------------------------------------


async def test_the_sessions_resource_and_both_templates_are_listed(mcp_client: Client) -> None:
    resources = (await mcp_client.list_resources()).resources
    templates = (await mcp_client.list_resource_templates()).resource_templates

    assert [(r.uri, r.mime_type) for r in resources] == [(SESSIONS, "application/json")]
    assert sorted((t.uri_template, t.mime_type) for t in templates) == [
        ("chaser://sessions/{id}", "application/json"),
        ("chaser://sessions/{id}/screenshot", "image/png"),
    ]


# -- reading ---------------------------------------------------------------------------------------


async def test_the_sessions_resource_lists_what_list_sessions_owned_only_lists(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    mine = await create(mcp_client)
    fake_chaser.seed_session()  # in the workspace, not this conversation's

    listing = await read_json(mcp_client, SESSIONS)
    tool = structured(await mcp_client.call_tool("list_sessions", {"owned_only": True}))

    assert [s["id"] for s in listing["sessions"]] == [mine] == [s["id"] for s in tool["sessions"]]
    assert listing["sessions"][0]["owned"] is True
    assert listing["has_more"] is False


async def test_a_session_resource_is_what_get_session_returns(mcp_client: Client) -> None:
    session_id = await create(mcp_client)

    resource = await read_json(mcp_client, session_uri(session_id))
    tool = structured(await mcp_client.call_tool("get_session", {"session_id": session_id}))

    assert resource.keys() == tool.keys()
    assert {k: v for k, v in resource.items() if k not in VOLATILE} == {
        k: v for k, v in tool.items() if k not in VOLATILE
    }
    assert resource["owned"] is True and resource["persist"] is False


async def test_another_conversations_session_reads_as_not_owned(mcp_harness: Harness, mode: Mode) -> None:
    async with mcp_harness.connect(mode) as mine:
        session_id = await create(mine)
    other = build_server(mcp_harness.state, single_conversation(mcp_harness.state, "another conversation"))

    async with Client(other, mode=mode) as theirs:
        resource = await read_json(theirs, session_uri(session_id))

    assert resource["id"] == session_id and resource["owned"] is False


async def test_the_screenshot_resource_is_a_png_of_the_screen(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = await create(mcp_client)

    data, mime_type = await read_blob(mcp_client, f"{session_uri(session_id)}/screenshot")

    assert mime_type == "image/png" == sniff_mime(data)
    assert Image.open(io.BytesIO(data)).size == fake_chaser.screenshot_size


async def test_a_screenshot_fitted_into_jpeg_says_jpeg(mode: Mode) -> None:
    with FakeChaser(screenshot_noise=True) as fake:  # random pixels: a PNG far over the budget
        async with running_server(fake, screenshot_max_bytes=200_000) as harness:
            client = harness.connect(mode)
            async with client:
                session_id = await create(client)
                data, mime_type = await read_blob(client, f"{session_uri(session_id)}/screenshot")

    assert mime_type == "image/jpeg" == sniff_mime(data)


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/screenshot"])
@pytest.mark.parametrize("bad_id", MALFORMED)
async def test_a_malformed_id_is_refused_without_any_api_request(
    mcp_client: Client, fake_chaser: FakeChaser, bad_id: str, suffix: str
) -> None:
    fake_chaser.reset_requests()

    with pytest.raises(MCPError) as refused:
        await mcp_client.read_resource(f"{SESSIONS}/{bad_id}{suffix}")

    assert refused.value.error.code == INVALID_PARAMS
    assert "Malformed session id" in refused.value.error.message
    assert fake_chaser.requests == []


@pytest.mark.parametrize("suffix", ["", "/screenshot"])
async def test_an_unknown_session_says_it_was_not_found_and_where_ids_come_from(
    mcp_client: Client, suffix: str
) -> None:
    with pytest.raises(MCPError) as refused:
        await mcp_client.read_resource(f"{SESSIONS}/sess_unknown{suffix}")

    assert refused.value.error.code == INVALID_PARAMS
    message = refused.value.error.message
    assert "sess_unknown was not found" in message and "another workspace" in message
    assert "chaser://sessions" in message and "list_sessions" in message


# -- notifications (2026-07-28) --------------------------------------------------------------------


async def test_a_listener_hears_when_get_session_sees_an_owned_session_turn_ready(
    not_polling: Harness,
) -> None:
    async with not_polling.connect("auto") as client:
        session_id = await create(client, wait_until_ready=False)
        async with client.listen(resource_subscriptions=[session_uri(session_id)]) as updates:
            not_polling.fake.advance_clock(1)  # past the fake's ready delay
            seen = structured(await client.call_tool("get_session", {"session_id": session_id}))
            assert seen["status"] == "ready"

            assert await next_update(updates) == session_uri(session_id)


async def test_a_listener_of_the_list_hears_when_an_owned_session_is_deleted(not_polling: Harness) -> None:
    async with not_polling.connect("auto") as client:
        session_id = await create(client)
        async with client.listen(resource_subscriptions=[SESSIONS]) as updates:
            structured(await client.call_tool("delete_session", {"session_id": session_id}))

            assert await next_update(updates) == SESSIONS
        assert (await read_json(client, session_uri(session_id)))["status"] == "closed"


async def test_a_session_this_conversation_does_not_own_sends_no_update(not_polling: Harness) -> None:
    async with not_polling.connect("auto") as client:
        mine = await create(client)
        theirs = not_polling.fake.seed_session()
        watched = [session_uri(theirs), session_uri(mine)]
        async with client.listen(resource_subscriptions=watched) as updates:
            await client.call_tool("delete_session", {"session_id": theirs, "force": True})
            await client.call_tool("delete_session", {"session_id": mine})

            assert await next_update(updates) == session_uri(mine)  # the first update is about mine


async def test_the_poller_tells_a_listener_when_a_session_turns_ready_without_any_tool_call(
    polling: Harness,
) -> None:
    async with polling.connect("auto") as client:
        session_id = await create(client, wait_until_ready=False)
        async with client.listen(resource_subscriptions=[session_uri(session_id)]) as updates:
            polling.fake.advance_clock(1)

            assert await next_update(updates) == session_uri(session_id)
        assert (await read_json(client, session_uri(session_id)))["status"] == "ready"


async def test_the_poller_tells_a_listener_when_a_sessions_ttl_expires(polling: Harness) -> None:
    async with polling.connect("auto") as client:
        session_id = await create(client, ttl_seconds=60)
        async with client.listen(resource_subscriptions=[SESSIONS]) as updates:
            polling.fake.advance_clock(61)

            assert await next_update(updates) == SESSIONS
        resource = await read_json(client, session_uri(session_id))
    assert (resource["status"], resource["ended_reason"]) == ("closed", "ttl_expired")


async def test_another_conversations_listener_on_the_same_server_hears_nothing_of_mine(
    not_polling: Harness,
) -> None:
    """Every conversation reads the same chaser://sessions: its updates must still go to its owner only."""
    state = not_polling.state

    async def by_client_name(ctx: Context) -> Conversation:
        params = ctx.request_context.session.client_params
        assert params is not None and params.client_info is not None
        return state.conversations.open(params.client_info.name, state.client)

    server = build_server(state, by_client_name)
    mine, theirs = (Client(server, client_info=Implementation(name=n, version="1")) for n in ("me", "them"))
    async with mine, theirs:
        my_session = await create(mine)
        their_session = await create(theirs)
        watched = [SESSIONS, session_uri(their_session)]
        async with theirs.listen(resource_subscriptions=watched) as their_updates:
            await mine.call_tool("delete_session", {"session_id": my_session})  # would say SESSIONS
            await theirs.call_tool("delete_session", {"session_id": their_session})

            assert await next_update(their_updates) == session_uri(their_session)


async def test_over_multi_tenant_http_the_poller_tells_a_caller_its_session_turned_ready() -> None:
    """The poller runs with the listening caller's own key and conversation; another caller's session,
    though watched too, is not that caller's to hear about."""
    with FakeChaser(api_keys=(DEFAULT_KEY, OTHER_KEY)) as fake:
        async with (
            served(fake, api_key=None, multi_tenant=True, resource_poll=0.05) as target,
            connect(target.mcp_url, "auto", DEFAULT_KEY) as alice,
            connect(target.mcp_url, "auto", OTHER_KEY) as bob,
        ):
            his = await create(bob, wait_until_ready=False)
            hers = await create(alice, wait_until_ready=False)
            async with alice.listen(resource_subscriptions=[session_uri(his), session_uri(hers)]) as updates:
                fake.advance_clock(1)  # both turn ready

                assert await next_update(updates) == session_uri(hers)
