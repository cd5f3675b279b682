"""A scripted person for the live viewer: a second headless Chromium that opens a viewer URL, taps
on the picture and types, and a websocket client for the protocol-level checks.

Places on ``tests/pages/viewer-form.html``, in the session page's CSS pixels: ``NAME_FIELD`` (a text
field) and ``SWATCH`` (a block whose colour a tap flips between blue and red).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from chaser_mcp.browser.cdp import CDPConnection
from chaser_mcp.local.chromium import launch_browser
from chaser_mcp.viewer import origin_of
from tests.local_support import eventually, short_temp_dir

NAME_FIELD = (206.0, 130.0)
SWATCH = (206.0, 400.0)
BLUE = (0, 0, 255)
RED = (255, 0, 0)


def socket_url(viewer_url: str) -> str:
    """The viewer page's websocket, as the page itself derives it."""
    return viewer_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


@asynccontextmanager
async def viewer_socket(viewer_url: str, *, origin: str | None = "") -> AsyncIterator[ClientConnection]:
    """The viewer's websocket as its page opens it (``origin`` "" = the viewer's own origin)."""
    sent_origin = origin_of(viewer_url) if origin == "" else origin
    async with connect(
        socket_url(viewer_url),
        origin=sent_origin,  # type: ignore[arg-type]
        max_size=None,
        proxy=None,
    ) as stream:
        yield stream


async def next_message(stream: ClientConnection, timeout: float = 15) -> str | bytes:
    with anyio.fail_after(timeout):
        return await stream.recv()


async def first_meta(stream: ClientConnection) -> dict[str, Any]:
    message = await next_message(stream)
    assert isinstance(message, str), "the first message is the meta"
    meta = json.loads(message)
    assert isinstance(meta, dict) and meta["type"] == "meta"
    return meta


async def next_frame(stream: ClientConnection, timeout: float = 15) -> bytes:
    with anyio.fail_after(timeout):
        while True:
            message = await stream.recv()
            if isinstance(message, bytes):
                return message


def colour_at(jpeg: bytes, x: float, y: float, width: int) -> tuple[int, int, int]:
    """The colour of a frame at a point in the page's CSS pixels (``width``: the page's CSS width)."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = image.width / width
    r, g, b = image.getpixel((round(x * scale), round(y * scale)))  # type: ignore[misc]
    return int(r), int(g), int(b)


def near(colour: tuple[int, int, int], expected: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


async def tap(stream: ClientConnection, x: float, y: float) -> None:
    """A finger's tap, as the viewer page sends it."""
    await stream.send(json.dumps({"type": "touch", "phase": "start", "x": x, "y": y}))
    await stream.send(json.dumps({"type": "touch", "phase": "end", "x": x, "y": y}))


@dataclass
class Person:
    """A person's browser with the viewer page open in one tab."""

    cdp: CDPConnection
    session_id: str
    sent: list[str]  # every websocket message the viewer page sent (its traffic, for secret checks)
    received: list[str]  # every text message it received

    async def evaluate(self, expression: str) -> Any:
        result = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session_id=self.session_id,
        )
        return result["result"].get("value")

    async def sees_frames(self) -> None:
        await eventually(
            lambda: self.evaluate(
                "document.getElementById('screen').naturalWidth > 0 && "
                "document.getElementById('status').textContent.startsWith('live')"
            ),
            timeout=20,
        )

    async def click(self, x: float, y: float) -> None:
        """A mouse click in the viewer page at (x, y) of its own viewport."""
        for kind in ("mousePressed", "mouseReleased"):
            await self.cdp.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                session_id=self.session_id,
            )

    async def tap_session_at(self, x: float, y: float) -> None:
        """Click on the live picture where the session's page has (x, y) CSS pixels."""
        left, top, width, height, page_width, page_height = await self.evaluate(
            "(() => { const r = document.getElementById('screen').getBoundingClientRect();"
            " const m = document.getElementById('screen');"
            " return [r.left, r.top, r.width, r.height, m.naturalWidth, m.naturalHeight]; })()"
        )
        meta = json.loads(self.received[-1]) if self.received else {}
        css_width = meta.get("width") or page_width
        css_height = meta.get("height") or page_height
        await self.click(left + x / css_width * width, top + y / css_height * height)

    async def type_text(self, text: str) -> None:
        """Focus the viewer's typing field and type, as a keyboard would (an IME commit)."""
        await self.evaluate("document.getElementById('keys').focus()")
        await self.cdp.send("Input.insertText", {"text": text}, session_id=self.session_id)

    async def press_done(self) -> None:
        box = await self.evaluate(
            "(() => { const r = document.getElementById('done').getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        await self.click(*box)


@asynccontextmanager
async def person_viewing(viewer_url: str) -> AsyncIterator[Person]:
    """A second headless Chromium with ``viewer_url`` open, recording the page's websocket traffic."""
    with short_temp_dir() as base:
        async with launch_browser(base_dir=base) as browser, browser.connect() as cdp:
            target = await cdp.send("Target.createTarget", {"url": "about:blank"})
            attached = await cdp.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            sid = str(attached["sessionId"])
            person = Person(cdp, sid, [], [])
            await cdp.send("Network.enable", session_id=sid)
            with cdp.listen(
                "Network.webSocketFrameSent", "Network.webSocketFrameReceived", session_id=sid
            ) as ws:
                async with anyio.create_task_group() as tg:

                    async def record() -> None:
                        async for event in ws:
                            response = event.params.get("response", {})
                            if response.get("opcode") != 1:
                                continue
                            payload = str(response.get("payloadData", ""))
                            if event.method == "Network.webSocketFrameSent":
                                person.sent.append(payload)
                            else:
                                person.received.append(payload)

                    tg.start_soon(record)
                    await cdp.send("Page.navigate", {"url": viewer_url}, session_id=sid)
                    yield person
                    tg.cancel_scope.cancel()
