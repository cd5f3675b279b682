"""A page's screen as a stream of JPEG frames, and a person's touches and typing sent back to it.

Both work on a ``Page`` (``page.py``), so they serve any session reached over CDP, the
cloud's or a local one. The frames come from ``Page.startScreencast``; each is
acknowledged only after the consumer took it, so a slow viewer slows the stream down
instead of queueing frames. A page that does not change paints no frame at all
(measured), so the first picture is a screenshot.

Input is what a phone's screen gets: touches (``Input.dispatchTouchEvent``), text
(``Input.insertText``) and named keys (``Input.dispatchKeyEvent``), all in CSS pixels.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._tasks import _lone_error_unwrapped
from .keys import UnknownKey, key_events, parse_key
from .page import Page

if TYPE_CHECKING:
    from .cdp import EventStream

__all__ = ["Frame", "current_picture", "dispatch_input", "stream_frames"]

JPEG_QUALITY = 70
MAX_WIDTH, MAX_HEIGHT = 720, 1600  # device pixels of a frame: a phone's screen, not a desktop's
SETTLE = 0.3  # seconds of no frames after which a burst's last state is made sure of
MAX_TEXT = 2_000  # characters one typing message may insert
INPUT_TIMEOUT = 10.0  # an input event blocked by a dialog must not hold the input loop for long
_TOUCH_PHASES = {"start": "touchStart", "move": "touchMove", "end": "touchEnd", "cancel": "touchCancel"}


@dataclass(frozen=True)
class Frame:
    """One picture of the page: JPEG bytes and the page's visible size in CSS pixels."""

    jpeg: bytes
    width: int
    height: int


async def current_picture(page: Page) -> Frame:
    """A screenshot of what the screen shows now (device pixels; the viewer scales it like a frame).

    No clip: a clipped or scaled capture makes Chromium override the page's metrics for a moment,
    and a page tool or another viewer reading them meanwhile (measured) sees a zoomed page.
    """
    metrics = await page.send("Page.getLayoutMetrics")
    viewport = metrics.get("cssVisualViewport") or metrics.get("visualViewport") or {}
    width, height = round(viewport.get("clientWidth", 0)), round(viewport.get("clientHeight", 0))
    shot = await page.send(
        "Page.captureScreenshot", {"format": "jpeg", "quality": JPEG_QUALITY, "captureBeyondViewport": False}
    )
    return Frame(base64.b64decode(shot.get("data", "")), width, height)


async def stream_frames(page: Page, deliver: Callable[[Frame], Awaitable[None]], *, fps: int) -> None:
    """Deliver the page's frames, at most about ``fps`` a second, until cancelled or the page goes away.

    Every compositor frame is captured (``everyNthFrame`` 1: a page that changes once paints
    once, and skipping frames would skip that change), and acknowledged at the ``fps`` pace,
    which is what paces Chromium. Delivery keeps only the newest frame, so a slow viewer gets
    fewer frames, never stale ones. Chromium drops frames while too many are unacknowledged; so
    after a burst of frames goes quiet, one screenshot makes sure the last state is shown.
    The screencast is stopped on the way out, shielded and bounded.
    """
    from .cdp import CDPError, CDPException

    newest: list[Frame] = []
    arrived = anyio.Event()
    burst = 0  # frames since the last quiet moment
    last_frame_at = anyio.current_time()
    period = 1.0 / max(1, fps)

    def offer(frame: Frame) -> None:
        nonlocal arrived
        newest[:] = [frame]
        arrived.set()

    async def send_newest() -> None:
        nonlocal arrived
        while True:
            await arrived.wait()
            arrived = anyio.Event()
            frame = newest.pop()
            await deliver(frame)

    async def receive(frames: EventStream) -> None:
        nonlocal burst, last_frame_at
        acked_at = 0.0
        async for event in frames:
            params = event.params
            metadata = params.get("metadata") or {}
            offer(
                Frame(
                    base64.b64decode(params.get("data", "")),
                    int(metadata.get("deviceWidth", 0)),
                    int(metadata.get("deviceHeight", 0)),
                )
            )
            burst += 1
            last_frame_at = anyio.current_time()
            await anyio.sleep_until(acked_at + period)
            acked_at = anyio.current_time()
            await page.send("Page.screencastFrameAck", {"sessionId": params.get("sessionId")})

    async def settle() -> None:
        nonlocal burst
        while True:
            await anyio.sleep_until(last_frame_at + SETTLE)
            if anyio.current_time() < last_frame_at + SETTLE:
                continue
            if burst > 1:
                with contextlib.suppress(CDPError, TimeoutError):  # mid-navigation: the next burst shows it
                    offer(await current_picture(page))
            burst = 0
            await anyio.sleep(SETTLE)

    with page.listen("Page.screencastFrame") as frames:
        await page.send(
            "Page.startScreencast",
            {
                "format": "jpeg",
                "quality": JPEG_QUALITY,
                "everyNthFrame": 1,
                "maxWidth": MAX_WIDTH,
                "maxHeight": MAX_HEIGHT,
            },
        )
        try:
            offer(await current_picture(page))
            async with _lone_error_unwrapped(), anyio.create_task_group() as tg:
                tg.start_soon(send_newest)
                tg.start_soon(settle)
                await receive(frames)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(CDPException):
                await page.send("Page.stopScreencast", timeout=2)


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(max(float(value), low), high)


async def dispatch_input(page: Page, message: Mapping[str, Any]) -> bool:
    """Send one input message to the page; False for a message that is not one (ignored).

    Messages, coordinates in CSS pixels:
    ``{"type": "touch", "phase": "start"|"move"|"end"|"cancel", "x", "y"}``,
    ``{"type": "wheel", "x", "y", "dx", "dy"}``, ``{"type": "text", "text"}``,
    ``{"type": "key", "key": "Enter"}`` (a name ``act``'s ``press`` knows).
    """
    kind = message.get("type")
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str) or not text:
            return False
        await page.send("Input.insertText", {"text": text[:MAX_TEXT]}, timeout=INPUT_TIMEOUT)
        return True
    if kind == "key":
        name = message.get("key")
        if not isinstance(name, str) or len(name) > 40:
            return False
        try:
            key, modifiers = parse_key(name)
        except UnknownKey:
            return False
        for event in key_events(key, modifiers):
            await page.send("Input.dispatchKeyEvent", event, timeout=INPUT_TIMEOUT)
        return True
    x = _number(message.get("x"), 0, 100_000)
    y = _number(message.get("y"), 0, 100_000)
    if x is None or y is None:
        return False
    if kind == "touch":
        phase = _TOUCH_PHASES.get(str(message.get("phase")))
        if phase is None:
            return False
        points = [{"x": x, "y": y}] if phase in ("touchStart", "touchMove") else []
        await page.send(
            "Input.dispatchTouchEvent", {"type": phase, "touchPoints": points}, timeout=INPUT_TIMEOUT
        )
        return True
    if kind == "wheel":
        dx = _number(message.get("dx", 0), -10_000, 10_000) or 0.0
        dy = _number(message.get("dy", 0), -10_000, 10_000) or 0.0
        await page.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseWheel", "x": x, "y": y, "deltaX": dx, "deltaY": dy},
            timeout=INPUT_TIMEOUT,
        )
        return True
    return False
