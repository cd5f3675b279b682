"""The DevTools pipe shared by several CDP clients: routing, and what happens to one that stops reading."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from chaser_mcp.browser.cdp import CDPConnectionClosed, TransportClosed
from chaser_mcp.local import devtools
from chaser_mcp.local.chromium import BrowserProcess, launch_browser
from tests.local_support import requires_chromium, short_temp_dir

pytestmark = [pytest.mark.anyio, requires_chromium]


@pytest.fixture
async def browser() -> AsyncIterator[BrowserProcess]:
    with short_temp_dir() as base:
        async with launch_browser(base_dir=base) as process:
            yield process


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_go_on(
    browser: BrowserProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devtools, "CLIENT_QUEUE_LIMIT", 50)
    stalled = await browser.devtools.open_client("stalled viewer")
    async with browser.connect("busy") as busy:
        target = await busy.send("Target.createTarget", {"url": "about:blank"})
        # The stalled client asks for console events on a page and then never reads again.
        await stalled.send(
            {"id": 1, "method": "Target.attachToTarget", "params": {**target, "flatten": True}}
        )
        with anyio.fail_after(10):
            attached = await stalled.receive()
            while attached.get("id") != 1:
                attached = await stalled.receive()
        page_session = attached["result"]["sessionId"]
        await stalled.send({"id": 2, "method": "Runtime.enable", "sessionId": page_session})
        mine = await busy.send("Target.attachToTarget", {**target, "flatten": True})
        spam = "for (let i = 0; i < 300; i++) console.log('line ' + i); 1"
        await busy.send("Runtime.evaluate", {"expression": spam}, session_id=mine["sessionId"])
        # The busy client is served all along; the stalled one was disconnected, not waited for.
        with anyio.fail_after(10):
            while not stalled.closed:
                await busy.send("Browser.getVersion")
                await anyio.sleep(0.02)
        assert (await busy.send("Browser.getVersion"))["protocolVersion"] == "1.3"
    with pytest.raises(TransportClosed) as caught:
        while True:
            await stalled.receive()
    assert "fell too far behind" in caught.value.reason


async def test_every_client_learns_when_the_browser_goes_away(browser: BrowserProcess) -> None:
    async with browser.connect("first") as first, browser.connect("second") as second:
        await browser.stop()
        for client in (first, second):
            with anyio.fail_after(10):
                await client.wait_closed()
            with pytest.raises(CDPConnectionClosed):
                await client.send("Browser.getVersion")
