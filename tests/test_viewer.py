"""The live viewer over a real local backend: the links ``get_preview_link`` mints, the page a person
opens in a second headless Chromium, its frames and forwarded input, and the link rules.

The in-memory server here serves the viewer as stdio does, on a loopback port it opens on first
use (``Viewers.run``); ``test_viewer_http.py`` covers the path mounted on the HTTP app.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chaser_mcp.viewer import Viewers
from tests.local_support import eventually, requires_chromium
from tests.mcp_support import structured, text_of
from tests.page_support import LOCAL_KEY, LocalHarness, PagesSite, call, new_session, open_in
from tests.viewer_support import (
    BLUE,
    NAME_FIELD,
    RED,
    SWATCH,
    colour_at,
    first_meta,
    near,
    next_frame,
    person_viewing,
    tap,
    viewer_socket,
)

pytestmark = [pytest.mark.anyio, requires_chromium]


@pytest.fixture
async def agent(local_mcp_server: LocalHarness) -> AsyncIterator[Client]:
    async with local_mcp_server.connect("auto") as client:
        yield client


@pytest.fixture
async def session_id(agent: Client) -> AsyncIterator[str]:
    sid = await new_session(agent)
    try:
        yield sid
    finally:
        await agent.call_tool("delete_session", {"session_id": sid})


async def preview_link(agent: Client, session_id: str) -> dict[str, Any]:
    return structured(await call(agent, "get_preview_link", session_id=session_id))


async def snapshot_text(agent: Client, session_id: str) -> str:
    return text_of(await call(agent, "snapshot", session_id=session_id))


@asynccontextmanager
async def own_viewers(**options: Any) -> AsyncIterator[Viewers]:
    """A ``Viewers`` of its own (its own guess counter, its own loopback port) for one test."""
    viewers = Viewers(**options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(viewers.run)
        yield viewers
        tg.cancel_scope.cancel()


# -- the link ------------------------------------------------------------------------------------


async def test_get_preview_link_returns_a_viewer_page_on_a_loopback_port(
    agent: Client, session_id: str, local_mcp_server: LocalHarness
) -> None:
    link = await preview_link(agent, session_id)
    origin = local_mcp_server.state.viewers.origin
    assert origin is not None and origin.startswith("http://127.0.0.1:")
    assert link["url"].startswith(f"{origin}/viewer/") and len(link["url"].rsplit("/", 1)[1]) >= 43
    assert session_id not in link["url"]
    assert link["input_enabled"] is True and link["fps"] >= 10 and link["expires_at"]


async def test_each_request_mints_a_new_link(agent: Client, session_id: str) -> None:
    first = await preview_link(agent, session_id)
    second = await preview_link(agent, session_id)
    assert first["url"] != second["url"]


async def test_the_viewer_page_is_served_with_a_strict_csp_and_no_framing(
    agent: Client, session_id: str
) -> None:
    link = await preview_link(agent, session_id)
    async with httpx2.AsyncClient() as http:
        page = await http.get(link["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'name="viewport"' in page.text and "pointerdown" in page.text


# -- the stream ----------------------------------------------------------------------------------


async def test_the_stream_sends_the_page_size_then_jpeg_frames(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("moving.html"))
    link = await preview_link(agent, session_id)
    async with viewer_socket(link["url"]) as stream:
        meta = await first_meta(stream)
        frames = [await next_frame(stream) for _ in range(5)]
    assert (meta["width"], meta["height"], meta["input_enabled"]) == (412, 915, True)
    assert meta["url"] == pages_site.url("moving.html") and meta["title"] == "Moving"
    assert all(frame[:3] == b"\xff\xd8\xff" for frame in frames)


async def test_a_tap_over_the_stream_shows_its_effect_in_a_later_frame(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    link = await preview_link(agent, session_id)
    async with viewer_socket(link["url"]) as stream:
        meta = await first_meta(stream)
        assert near(colour_at(await next_frame(stream), *SWATCH, meta["width"]), BLUE)
        await tap(stream, *SWATCH)
        with anyio.fail_after(15):
            while not near(colour_at(await next_frame(stream), *SWATCH, meta["width"]), RED):
                pass


async def test_text_and_keys_sent_over_the_stream_reach_the_focused_field(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    link = await preview_link(agent, session_id)
    async with viewer_socket(link["url"]) as stream:
        await first_meta(stream)
        await tap(stream, *NAME_FIELD)
        await stream.send(json.dumps({"type": "text", "text": "hello wor"}))
        await stream.send(json.dumps({"type": "key", "key": "Backspace"}))
        await stream.send(json.dumps({"type": "text", "text": "ld"}))
        await eventually(lambda: _snapshot_has(agent, session_id, 'value="hello wold"'), timeout=15)


async def _snapshot_has(agent: Client, session_id: str, text: str) -> bool:
    return text in await snapshot_text(agent, session_id)


async def test_the_stream_follows_a_navigation_in_its_meta(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    link = await preview_link(agent, session_id)
    async with viewer_socket(link["url"]) as stream:
        await first_meta(stream)
        await open_in(agent, session_id, pages_site.url("hello.html"))
        with anyio.fail_after(15):
            while True:
                message = await stream.recv()
                if isinstance(message, str) and json.loads(message)["url"] == pages_site.url("hello.html"):
                    break


# -- a person in a browser -----------------------------------------------------------------------


async def test_a_person_in_a_browser_sees_frames_taps_the_field_and_types_into_the_session(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    link = await preview_link(agent, session_id)
    async with person_viewing(link["url"]) as person:
        await person.sees_frames()
        await person.tap_session_at(*NAME_FIELD)
        await person.type_text("person@example.com")
        await eventually(lambda: _snapshot_has(agent, session_id, 'value="person@example.com"'), timeout=15)
    page = structured(await call(agent, "read_page", session_id=session_id))
    assert "Typed: person@example.com" in page["text"]


async def test_done_pressed_in_the_page_sets_the_links_event(
    agent: Client, session_id: str, local_mcp_server: LocalHarness
) -> None:
    viewers = local_mcp_server.state.viewers
    minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
    done = viewers.done(minted.link_id)
    async with person_viewing(minted.url) as person:
        await person.sees_frames()
        assert viewers.is_open(minted.link_id) and not done.is_set()
        await person.press_done()
        with anyio.fail_after(10):
            await done.wait()
        # The page shows it once its Done request has been answered, a moment after the event.
        await eventually(
            lambda: person.evaluate("document.getElementById('status').textContent.startsWith('handed')"),
            timeout=5,
        )
        status = await person.evaluate("document.getElementById('status').textContent")
    assert status.startswith("handed back")


async def test_the_api_key_is_never_in_the_link_the_page_or_its_traffic(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    link = await preview_link(agent, session_id)
    async with httpx2.AsyncClient() as http:
        page = await http.get(link["url"])
    async with person_viewing(link["url"]) as person:
        await person.sees_frames()
        await person.tap_session_at(*NAME_FIELD)
        await person.type_text("x")
        await eventually(lambda: _snapshot_has(agent, session_id, 'value="x"'), timeout=15)
        traffic = [*person.sent, *person.received]
        html = await person.evaluate("document.documentElement.outerHTML")
    assert traffic and all(LOCAL_KEY not in text for text in [link["url"], page.text, html, *traffic])
    assert not any(name.lower() == "authorization" for name in page.request.headers)


# -- the link rules ------------------------------------------------------------------------------


async def test_a_link_shows_its_own_session_and_no_other(
    agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    other = await new_session(agent)
    try:
        await open_in(agent, session_id, pages_site.url("viewer-form.html"))
        await open_in(agent, other, pages_site.url("hello.html"))
        mine = await preview_link(agent, session_id)
        theirs = await preview_link(agent, other)
        async with viewer_socket(mine["url"]) as a, viewer_socket(theirs["url"]) as b:
            assert (await first_meta(a))["url"] == pages_site.url("viewer-form.html")
            assert (await first_meta(b))["url"] == pages_site.url("hello.html")
    finally:
        await agent.call_tool("delete_session", {"session_id": other})


async def test_a_link_to_a_deleted_session_closes_its_stream_saying_so(agent: Client) -> None:
    sid = await new_session(agent)
    link = await preview_link(agent, sid)
    await agent.call_tool("delete_session", {"session_id": sid})
    async with viewer_socket(link["url"]) as stream:
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(stream)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    assert "closed" in closed.value.rcvd.reason


async def test_an_open_stream_closes_when_its_session_is_deleted(agent: Client) -> None:
    sid = await new_session(agent)
    link = await preview_link(agent, sid)
    async with viewer_socket(link["url"]) as stream:
        await first_meta(stream)
        await agent.call_tool("delete_session", {"session_id": sid})
        with anyio.fail_after(15), pytest.raises(ConnectionClosed) as closed:
            while True:
                await stream.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_an_expired_link_is_refused_with_410(local_mcp_server: LocalHarness, session_id: str) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local", ttl=0.05)
        await anyio.sleep(0.1)
        async with httpx2.AsyncClient() as http:
            page = await http.get(minted.url)
        with pytest.raises(InvalidStatus) as refused:
            async with viewer_socket(minted.url):
                pass
    assert page.status_code == 410 and page.json()["error"]["code"] == "link_expired"
    assert refused.value.response.status_code == 410


async def test_an_open_stream_closes_when_its_link_expires(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local", ttl=2)
        async with viewer_socket(minted.url) as stream:
            await first_meta(stream)
            with anyio.fail_after(15), pytest.raises(ConnectionClosed) as closed:
                while True:
                    await stream.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_an_unknown_token_is_404_on_the_page_the_socket_and_done(
    local_mcp_server: LocalHarness,
) -> None:
    async with own_viewers() as viewers:
        await viewers.mint("sess_unused", local_mcp_server.state.client, "local")  # opens the loopback port
        assert viewers.origin is not None
        forged = f"{viewers.origin}/viewer/{'A' * 43}"
        async with httpx2.AsyncClient() as http:
            page = await http.get(forged)
            done = await http.post(forged + "/done", headers={"Origin": viewers.origin})
        with pytest.raises(InvalidStatus) as refused:
            async with viewer_socket(forged):
                pass
    assert (page.status_code, done.status_code, refused.value.response.status_code) == (404, 404, 404)


async def test_a_viewer_url_without_a_token_is_404(local_mcp_server: LocalHarness) -> None:
    async with own_viewers() as viewers:
        await viewers.mint("sess_unused", local_mcp_server.state.client, "local")
        async with httpx2.AsyncClient() as http:
            answers = [await http.get(f"{viewers.origin}{path}") for path in ("/viewer", "/viewer/", "/")]
    assert [answer.status_code for answer in answers] == [404, 404, 404]


async def test_guessing_tokens_is_rate_limited_with_429_even_for_a_good_token(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers(guess_limit=5, guess_window=60) as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
        async with httpx2.AsyncClient() as http:
            guesses = [(await http.get(f"{viewers.origin}/viewer/guess{n}")).status_code for n in range(5)]
            blocked = await http.get(f"{viewers.origin}/viewer/guess5")
            good = await http.get(minted.url)
    assert guesses == [404] * 5
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert good.status_code == 429


async def test_the_websocket_refuses_a_foreign_origin_and_a_missing_one(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
        statuses = []
        for origin in ("https://evil.example", None):
            with pytest.raises(InvalidStatus) as refused:
                async with viewer_socket(minted.url, origin=origin):
                    pass
            statuses.append(refused.value.response.status_code)
    assert statuses == [403, 403]


async def test_done_from_a_foreign_origin_is_refused_and_sets_nothing(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
        async with httpx2.AsyncClient() as http:
            foreign = await http.post(minted.url + "/done", headers={"Origin": "https://evil.example"})
            bare = await http.post(minted.url + "/done")
        assert not viewers.done(minted.link_id).is_set()
    assert (foreign.status_code, bare.status_code) == (403, 403)


async def test_the_loopback_viewer_refuses_a_foreign_host_header(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
        async with httpx2.AsyncClient() as http:
            rebound = await http.get(minted.url, headers={"Host": "attacker.example"})
    assert rebound.status_code == 421


async def test_a_link_cannot_be_waited_on_by_another_caller(
    local_mcp_server: LocalHarness, session_id: str
) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "key:aaaa")
        assert viewers.done(minted.link_id, principal="key:aaaa") is viewers.done(minted.link_id)
        with pytest.raises(KeyError):
            viewers.done(minted.link_id, principal="key:bbbb")
        with pytest.raises(KeyError):
            viewers.is_open(minted.link_id, principal="key:bbbb")


async def test_with_input_disabled_taps_do_not_reach_the_page(
    local_mcp_server: LocalHarness, agent: Client, session_id: str, pages_site: PagesSite
) -> None:
    await open_in(agent, session_id, pages_site.url("viewer-form.html"))
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local", input_enabled=False)
        async with viewer_socket(minted.url) as stream:
            assert (await first_meta(stream))["input_enabled"] is False
            await tap(stream, *NAME_FIELD)
            await stream.send(json.dumps({"type": "text", "text": "nope"}))
            await next_frame(stream)
            await anyio.sleep(0.5)
    assert "Typed: nothing" in structured(await call(agent, "read_page", session_id=session_id))["text"]


async def test_a_revoked_link_closes_its_stream(local_mcp_server: LocalHarness, session_id: str) -> None:
    async with own_viewers() as viewers:
        minted = await viewers.mint(session_id, local_mcp_server.state.client, "local")
        async with viewer_socket(minted.url) as stream:
            await first_meta(stream)
            viewers.revoke(minted.link_id)
            with anyio.fail_after(15), pytest.raises(ConnectionClosed) as closed:
                while True:
                    await stream.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002
