"""The CDP client against a real headless Chromium (and a tiny websocket server for the handshake)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from chaser_mcp.browser.cdp import (
    CDPConnectFailed,
    CDPConnection,
    CDPConnectionClosed,
    CDPError,
    CDPTimeout,
)
from chaser_mcp.local import LocalAPIServer, running_local_api
from tests.local_support import ready_session, refused_url, requires_chromium, short_temp_dir

pytestmark = pytest.mark.anyio

NEVER_RESOLVES = "new Promise(() => {})"


@pytest.fixture(scope="module")
async def local_api() -> AsyncIterator[LocalAPIServer]:
    with short_temp_dir() as base:
        async with running_local_api(base_dir=base) as server:
            yield server


@pytest.fixture(scope="module")
async def cdp_url(local_api: LocalAPIServer) -> AsyncIterator[str]:
    """One session for the module's read-mostly tests: its cdp_url is the local API's CDP proxy."""
    async with ready_session(local_api) as (session, _):
        yield session


async def _page_session(cdp: CDPConnection) -> str:
    created = await cdp.send("Target.createTarget", {"url": "about:blank"})
    attached = await cdp.send("Target.attachToTarget", {"targetId": created["targetId"], "flatten": True})
    return str(attached["sessionId"])


async def _evaluate(cdp: CDPConnection, session_id: str, expression: str, **options: Any) -> Any:
    result = await cdp.send(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True},
        session_id=session_id,
        **options,
    )
    return result["result"]["value"]


@requires_chromium
async def test_send_returns_the_result_of_a_command(cdp_url: str) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        version = await cdp.send("Browser.getVersion")
    assert version["product"].split("/")[0] in ("Chrome", "HeadlessChrome")
    assert version["protocolVersion"] == "1.3"


@requires_chromium
async def test_a_refused_command_raises_cdp_error_with_the_browsers_code_and_message(
    cdp_url: str,
) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        with pytest.raises(CDPError) as caught:
            await cdp.send("No.suchMethod")
        # The connection survives a refused command.
        assert (await cdp.send("Browser.getVersion"))["protocolVersion"] == "1.3"
    assert caught.value.code == -32601
    assert "No.suchMethod" in str(caught.value)
    assert caught.value.method == "No.suchMethod"


@requires_chromium
async def test_a_listener_subscribed_before_a_command_gets_the_event_it_causes(
    cdp_url: str,
) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        await cdp.send("Target.setDiscoverTargets", {"discover": True})
        with cdp.listen("Target.targetCreated") as created:
            target = await cdp.send("Target.createTarget", {"url": "about:blank"})
            with anyio.fail_after(10):
                while True:
                    event = await created.get()
                    if event.params["targetInfo"]["targetId"] == target["targetId"]:
                        break
        await cdp.send("Target.closeTarget", {"targetId": target["targetId"]})
    assert event.session_id is None
    assert event.params["targetInfo"]["type"] == "page"


@requires_chromium
async def test_events_are_delivered_only_to_listeners_of_their_session(cdp_url: str) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        first, second = await _page_session(cdp), await _page_session(cdp)
        with (
            cdp.listen("Runtime.consoleAPICalled", session_id=first) as on_first,
            cdp.listen("Runtime.consoleAPICalled", session_id=second) as on_second,
        ):
            for session_id in (first, second):
                await cdp.send("Runtime.enable", session_id=session_id)
            await _evaluate(cdp, second, "console.log('from second'), 1")
            await _evaluate(cdp, first, "console.log('from first'), 1")
            got_first = await on_first.get(timeout=10)
            got_second = await on_second.get(timeout=10)
    assert got_first.session_id == first
    assert got_first.params["args"][0]["value"] == "from first"
    assert got_second.params["args"][0]["value"] == "from second"


@requires_chromium
async def test_messages_far_larger_than_one_mebibyte_arrive_intact(cdp_url: str) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        session_id = await _page_session(cdp)
        text = await _evaluate(cdp, session_id, "'x'.repeat(3 * 1024 * 1024)")
    assert text == "x" * (3 * 1024 * 1024)


@requires_chromium
async def test_a_command_without_answer_times_out_and_the_connection_stays_usable(
    cdp_url: str,
) -> None:
    async with CDPConnection.connect(cdp_url) as cdp:
        session_id = await _page_session(cdp)
        with pytest.raises(CDPTimeout):
            await cdp.send(
                "Runtime.evaluate",
                {"expression": NEVER_RESOLVES, "awaitPromise": True},
                session_id=session_id,
                timeout=0.3,
            )
        assert await _evaluate(cdp, session_id, "6 * 7") == 42


@requires_chromium
async def test_a_dropped_socket_fails_every_pending_command_and_every_later_one(
    local_api: LocalAPIServer,
) -> None:
    async with ready_session(local_api) as (url, process), CDPConnection.connect(url) as cdp:
        session_id = await _page_session(cdp)
        listener = cdp.listen("Page.loadEventFired", session_id=session_id)
        outcomes: list[BaseException] = []

        async def pending() -> None:
            try:
                await cdp.send(
                    "Runtime.evaluate",
                    {"expression": NEVER_RESOLVES, "awaitPromise": True},
                    session_id=session_id,
                    timeout=30,
                )
            except Exception as exc:
                outcomes.append(exc)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                group.start_soon(pending)
                group.start_soon(pending)
                await anyio.sleep(0.2)
                os.killpg(process.pid, signal.SIGKILL)
        assert len(outcomes) == 2
        assert all(isinstance(outcome, CDPConnectionClosed) for outcome in outcomes)
        assert cdp.closed
        with pytest.raises(CDPConnectionClosed):
            await cdp.send("Browser.getVersion")
        with pytest.raises(CDPConnectionClosed):
            await listener.get(timeout=5)


async def test_connecting_where_nothing_listens_raises_connect_failed() -> None:
    url = refused_url().replace("http://", "ws://") + "devtools/browser/x"
    with pytest.raises(CDPConnectFailed) as caught:
        async with CDPConnection.connect(url, open_timeout=5):
            pass
    assert "127.0.0.1" in str(caught.value)


async def test_the_handshake_carries_the_given_headers_and_no_origin() -> None:
    seen: list[Headers] = []

    def record(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(request.headers)
        return None

    async def answer(connection: ServerConnection) -> None:
        async for _ in connection:
            await connection.send('{"id": 1, "result": {"ok": true}}')

    async with serve(answer, "127.0.0.1", 0, process_request=record) as server:
        port = server.sockets[0].getsockname()[1]
        headers = {"Authorization": "Bearer sk-handshake-secret"}
        async with CDPConnection.connect(f"ws://127.0.0.1:{port}/sessions/x", headers=headers) as cdp:
            assert await cdp.send("Any.method") == {"ok": True}
    assert seen[0]["Authorization"] == "Bearer sk-handshake-secret"
    assert "Origin" not in seen[0]


async def test_a_refused_handshake_names_the_status_but_never_the_key() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(401, "no\n")

    async def never(connection: ServerConnection) -> None:  # pragma: no cover - never reached
        await connection.close()

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/sessions/x?trace=1"
        with pytest.raises(CDPConnectFailed) as caught:
            async with CDPConnection.connect(url, headers={"Authorization": "Bearer sk-handshake-secret"}):
                pass
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "sk-handshake-secret" not in message
    assert "trace=1" not in message
