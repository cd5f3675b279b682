"""The reconnect grace: an ended HTTP or SSE conversation's sessions wait for the same caller.

Real uvicorn servers in this process (so a ``ManualClock`` drives the grace: no test sleeps past
one), real SDK clients in both protocol eras, the fake Chaser API counting every DELETE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from chaser_mcp.conversations import Conversations
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_server import served
from tests.mcp_support import ManualClock, wait_until

pytestmark = pytest.mark.anyio

GRACE = 60.0
ALICE = DEFAULT_KEY
BOB = "ck_test_fake_bob_0123456789abcdef"
MODES = ["legacy", "auto"]  # the handshake era, and 2026-07-28
MULTI_TENANT: dict[str, Any] = {"api_key": None, "multi_tenant": True}


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(api_keys=(ALICE, BOB), ready_delay=0.05) as fake:
        yield fake


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def graceful(clock: ManualClock, grace: float = GRACE) -> Conversations:
    """A registry with the grace on, following ``clock``; its own sweeper never runs during a test
    (the test sweeps with ``end_idle`` after moving the clock)."""
    return Conversations(cleanup_timeout=3, sweep_interval=3600, clock=clock, reconnect_grace=grace)


def connect(url: str, mode: str, token: str | None = None) -> AbstractAsyncContextManager[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if url.endswith("/sse"):
        return Client(sse_client(url, headers=headers), mode=mode)
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(url, http_client=http, terminate_on_close=True), mode=mode)


async def create(client: Client) -> str:
    result = await client.call_tool("create_session", {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return str(result.structured_content["id"])


async def ended_with_one_session(url: str, conversations: Conversations, token: str | None = None) -> str:
    """A handshake-era conversation (or SSE stream) that creates a session, then ends."""
    async with connect(url, "legacy", token) as client:
        session_id = await create(client)
    await wait_until(lambda: session_id in conversations.held_ids(), timeout=10, what="the end")
    return session_id


def deletes(fake: FakeChaser) -> int:
    return fake.count("DELETE", r"/v1/sessions/.*")


@pytest.mark.parametrize("mode", MODES)
async def test_the_callers_next_conversation_adopts_a_session_by_naming_it_in_a_tool_call(
    fake: FakeChaser, clock: ManualClock, mode: str
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            session_id = await ended_with_one_session(target.mcp_url, conversations)
            async with connect(target.mcp_url, mode) as client:
                got = await client.call_tool("get_session", {"session_id": session_id})
                clock.advance(GRACE + 1)
                await conversations.end_idle()
                assert got.structured_content is not None
                assert got.structured_content["owned"] is True
                assert conversations.held_ids() == []
                assert fake.deleted_ids() == []


@pytest.mark.parametrize("mode", MODES)
async def test_listing_owned_sessions_adopts_every_session_the_caller_left_waiting(
    fake: FakeChaser, clock: ManualClock, mode: str
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            first = await ended_with_one_session(target.mcp_url, conversations)
            second = await ended_with_one_session(target.mcp_url, conversations)
            async with connect(target.mcp_url, mode) as client:
                listed = await client.call_tool("list_sessions", {"owned_only": True})
                clock.advance(GRACE + 1)
                await conversations.end_idle()
                assert listed.structured_content is not None
                assert {s["id"] for s in listed.structured_content["sessions"]} == {first, second}
                assert fake.deleted_ids() == []


async def test_a_session_nobody_adopts_is_deleted_exactly_once_when_its_grace_is_over(
    fake: FakeChaser, clock: ManualClock
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            session_id = await ended_with_one_session(target.mcp_url, conversations)
            clock.advance(GRACE - 1)
            await conversations.end_idle()
            during_the_grace = fake.deleted_ids()
            clock.advance(2)
            await conversations.end_idle()
            await conversations.end_idle()
            assert during_the_grace == []
            assert fake.deleted_ids() == [session_id]
            assert deletes(fake) == 1


async def test_another_caller_naming_the_session_does_not_adopt_it(
    fake: FakeChaser, clock: ManualClock
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations, **MULTI_TENANT) as target:
            session_id = await ended_with_one_session(target.mcp_url, conversations, ALICE)
            async with connect(target.mcp_url, "legacy", BOB) as bob:
                await bob.call_tool("get_session", {"session_id": session_id})
                listed = await bob.call_tool("list_sessions", {"owned_only": True})
                refused = await bob.call_tool("delete_session", {"session_id": session_id})
                still_held = conversations.held_ids()
                clock.advance(GRACE + 1)
                await conversations.end_idle()
                assert still_held == [session_id]
                assert listed.structured_content is not None and listed.structured_content["sessions"] == []
                assert refused.is_error
                assert fake.deleted_ids() == [session_id]
                assert deletes(fake) == 1


async def test_a_grace_of_zero_deletes_when_the_conversation_ends(
    fake: FakeChaser, clock: ManualClock
) -> None:
    conversations = graceful(clock, grace=0)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            async with connect(target.mcp_url, "legacy") as client:
                session_id = await create(client)
            await wait_until(lambda: session_id in fake.deleted_ids(), timeout=10, what="the DELETE")
            assert conversations.held_ids() == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_closed_sse_streams_session_is_adopted_by_the_callers_next_stream(
    fake: FakeChaser, clock: ManualClock, mode: str
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations, transport="sse") as target:
            sse_url = f"{target.base}/sse"
            session_id = await ended_with_one_session(sse_url, conversations)
            async with connect(sse_url, mode) as client:
                got = await client.call_tool("get_session", {"session_id": session_id})
                clock.advance(GRACE + 1)
                await conversations.end_idle()
                assert got.structured_content is not None and got.structured_content["owned"] is True
                assert fake.deleted_ids() == []


async def test_shutdown_deletes_the_sessions_waiting_out_a_grace_at_once(
    fake: FakeChaser, clock: ManualClock
) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            session_id = await ended_with_one_session(target.mcp_url, conversations)
            before_shutdown = fake.deleted_ids()
    assert before_shutdown == []
    assert fake.deleted_ids() == [session_id]
    assert conversations.held_ids() == []


async def test_a_persisted_session_does_not_wait_out_a_grace(fake: FakeChaser, clock: ManualClock) -> None:
    conversations = graceful(clock)
    with anyio.fail_after(30):
        async with served(fake, conversations) as target:
            async with connect(target.mcp_url, "legacy") as client:
                kept = await client.call_tool("create_session", {"persist": True})
                waiting = await create(client)
            await wait_until(lambda: waiting in conversations.held_ids(), timeout=10, what="the end")
            assert kept.structured_content is not None
            assert conversations.held_ids() == [waiting]
