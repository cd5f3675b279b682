"""The live view: preview tokens, the page, the frame stream and forwarded input, all real."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chaser_mcp.api import ChaserClient, Session, SessionNotOpen
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.local.chromium import launch_browser
from tests.local_support import (
    LoopbackSite,
    eventually,
    navigate_to,
    page_text,
    requires_chromium,
    short_temp_dir,
    wait_until_ready,
)

pytestmark = [pytest.mark.anyio, requires_chromium]

KEY = "sk-preview-test"
BUTTON_CENTRE = (200, 350)  # CSS px: the button on /button spans 100..300 x 300..400


@pytest.fixture(scope="module")
async def local_api() -> AsyncIterator[LocalAPIServer]:
    with short_temp_dir() as base:
        async with running_local_api(base_dir=base) as server:
            yield server


@pytest.fixture
async def client(local_api: LocalAPIServer) -> AsyncIterator[ChaserClient]:
    async with ChaserClient(KEY, base_url=local_api.base_url, max_retries=0) as api:
        yield api


@pytest.fixture(scope="module")
async def session(local_api: LocalAPIServer) -> AsyncIterator[Session]:
    """One ready session shared by the module's tests (each navigates where it needs to be)."""
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        created = await api.create_session(ttl_seconds=600)
        yield await wait_until_ready(api, created.id)
        await api.delete_session(created.id)


async def page_shows(session: Session, text: str) -> bool:
    assert session.cdp_url is not None
    return text in (await page_text(session.cdp_url)).text


def socket_url(page_url: str) -> str:
    path, _, query = page_url.partition("?")
    return path.replace("http://", "ws://", 1) + "/ws?" + query


async def next_frame(stream: ClientConnection, timeout: float = 10) -> bytes:
    with anyio.fail_after(timeout):
        while True:
            message = await stream.recv()
            if isinstance(message, bytes):
                return message


async def first_meta(stream: ClientConnection) -> dict[str, Any]:
    with anyio.fail_after(10):
        message = await stream.recv()
    assert isinstance(message, str)
    meta = json.loads(message)
    assert isinstance(meta, dict)
    return meta


# -- tokens and the page ---------------------------------------------------------------------------


async def test_a_preview_token_is_a_link_to_a_live_view_on_this_server(
    client: ChaserClient, session: Session, local_api: LocalAPIServer
) -> None:
    token = await client.preview_token(session.id)
    assert token.url.startswith(f"{local_api.base_url}/v1/sessions/{session.id}/preview?token=")
    assert token.input_enabled is True and token.fps is not None and token.fps >= 5
    assert token.expires_at is not None
    assert 60 < (token.expires_at - datetime.now(UTC)).total_seconds() <= 300
    async with httpx2.AsyncClient() as http:
        page = await http.get(token.url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "new WebSocket(" in page.text and session.id in page.text


async def test_a_preview_token_for_a_session_that_is_not_ready_is_409(client: ChaserClient) -> None:
    created = await client.create_session(ttl_seconds=60)
    await client.delete_session(created.id)
    with pytest.raises(SessionNotOpen) as caught:
        await client.preview_token(created.id)
    assert caught.value.status == 409 and caught.value.code == "session_not_open"


async def test_an_unknown_token_is_refused_on_the_page_and_the_websocket(
    client: ChaserClient, session: Session
) -> None:
    token = await client.preview_token(session.id)
    forged = token.url.split("token=")[0] + "token=forged-token"
    async with httpx2.AsyncClient() as http:
        assert (await http.get(forged)).status_code == 401
        assert (await http.get(forged.split("?")[0])).status_code == 401
    with pytest.raises(InvalidStatus) as caught:
        async with connect(socket_url(forged)):
            pass
    assert caught.value.response.status_code == 401


async def test_a_token_minted_for_one_session_does_not_open_another(
    client: ChaserClient, session: Session
) -> None:
    token = await client.preview_token(session.id)
    other = await client.create_session(ttl_seconds=60)
    await client.delete_session(other.id)
    borrowed = token.url.replace(session.id, other.id)
    async with httpx2.AsyncClient() as http:
        assert (await http.get(borrowed)).status_code == 403
    with pytest.raises(InvalidStatus) as caught:
        async with connect(socket_url(borrowed)):
            pass
    assert caught.value.response.status_code == 403


async def test_an_expired_token_is_refused(
    client: ChaserClient, session: Session, local_api: LocalAPIServer
) -> None:
    backend = local_api.backend
    saved = backend.preview_token_ttl
    backend.preview_token_ttl = 0.2
    try:
        token = await client.preview_token(session.id)
    finally:
        backend.preview_token_ttl = saved
    await anyio.sleep(0.3)
    async with httpx2.AsyncClient() as http:
        response = await http.get(token.url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_expired"
    with pytest.raises(InvalidStatus) as caught:
        async with connect(socket_url(token.url)):
            pass
    assert caught.value.response.status_code == 403


# -- the stream ----------------------------------------------------------------------------------


async def test_an_animated_page_streams_at_least_five_jpeg_frames_a_second(
    client: ChaserClient, session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None
    await navigate_to(session.cdp_url, site.url("/spinner"), timeout=20)
    token = await client.preview_token(session.id)
    async with connect(socket_url(token.url), max_size=None) as stream:
        meta = await first_meta(stream)
        assert (meta["type"], meta["width"], meta["height"]) == ("meta", 412, 915)
        first = await next_frame(stream)
        started, frames = time.monotonic(), 0
        while time.monotonic() - started < 1.0:
            frame = await next_frame(stream)
            assert frame[:3] == b"\xff\xd8\xff"  # JPEG
            frames += 1
        elapsed = time.monotonic() - started
    assert first[:3] == b"\xff\xd8\xff"
    assert frames / elapsed >= 5


async def test_a_click_sent_over_the_live_view_presses_the_button_on_the_page(
    client: ChaserClient, session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None
    await navigate_to(session.cdp_url, site.url("/button"), timeout=20)
    token = await client.preview_token(session.id)
    async with connect(socket_url(token.url)) as stream:
        await first_meta(stream)
        x, y = BUTTON_CENTRE
        await stream.send(json.dumps({"type": "click", "x": x, "y": y}))
        await eventually(lambda: page_shows(session, "clicked 1x"))


async def test_the_live_view_page_in_a_browser_shows_frames_and_forwards_a_tap(
    client: ChaserClient, session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None
    await navigate_to(session.cdp_url, site.url("/button"), timeout=20)
    token = await client.preview_token(session.id)
    with short_temp_dir() as base:
        async with launch_browser(base_dir=base) as viewer, viewer.connect() as cdp:
            target = await cdp.send("Target.createTarget", {"url": token.url})
            attached = await cdp.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            sid = attached["sessionId"]

            async def evaluate(expression: str) -> Any:
                result = await cdp.send(
                    "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session_id=sid
                )
                return result["result"].get("value")

            await eventually(
                lambda: evaluate(
                    "document.getElementById('screen').naturalWidth > 0 && "
                    "document.getElementById('status').textContent.startsWith('live')"
                ),
                timeout=15,
            )
            box = await evaluate(
                "(() => { const r = document.getElementById('screen').getBoundingClientRect();"
                " return [r.left, r.top, r.width, r.height]; })()"
            )
            left, top, width, height = box
            x = left + BUTTON_CENTRE[0] / 412 * width
            y = top + BUTTON_CENTRE[1] / 915 * height
            for kind in ("mousePressed", "mouseReleased"):
                await cdp.send(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                    session_id=sid,
                )
            await eventually(lambda: page_shows(session, "clicked 1x"))


async def test_the_stream_closes_when_its_session_is_deleted(client: ChaserClient) -> None:
    created = await client.create_session(ttl_seconds=60)
    await wait_until_ready(client, created.id)
    token = await client.preview_token(created.id)
    async with connect(socket_url(token.url)) as stream:
        await first_meta(stream)
        await client.delete_session(created.id)
        with anyio.fail_after(10), pytest.raises(ConnectionClosed):
            while True:
                await stream.recv()


async def test_with_input_disabled_clicks_are_not_forwarded(site: LoopbackSite) -> None:
    with short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base, input_enabled=False) as server,
            ChaserClient(KEY, base_url=server.base_url) as api,
        ):
            created = await api.create_session(ttl_seconds=60)
            ready = await wait_until_ready(api, created.id)
            assert ready.cdp_url is not None
            await navigate_to(ready.cdp_url, site.url("/button"), timeout=20)
            token = await api.preview_token(created.id)
            assert token.input_enabled is False
            async with connect(socket_url(token.url)) as stream:
                meta = await first_meta(stream)
                assert meta["input_enabled"] is False
                await stream.send(json.dumps({"type": "click", "x": BUTTON_CENTRE[0], "y": BUTTON_CENTRE[1]}))
                await stream.send(json.dumps({"type": "click", "x": BUTTON_CENTRE[0], "y": BUTTON_CENTRE[1]}))
                await anyio.sleep(0.5)
            assert "press me" in (await page_text(ready.cdp_url)).text
