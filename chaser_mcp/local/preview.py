"""The live view: a small HTML page, and a websocket that streams a session's screen.

Protocol on ``/v1/sessions/<id>/preview/ws?token=…`` (server → viewer):

* text ``{"type": "meta", "width": w, "height": h, "input_enabled": bool, "fps": n}``
  whenever the page's size in CSS pixels changes (and before the first frame);
* binary: one JPEG per frame, from CDP ``Page.startScreencast``.

Viewer → server (ignored unless input is enabled), coordinates in CSS pixels:
``{"type": "click", "x": .., "y": ..}`` and ``{"type": "wheel", "x", "y", "dx", "dy"}``.

Each viewer gets its own CDP connection and session on the page, so closing a
viewer never disturbs the session's emulation or other clients.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from chaser_mcp.browser._tasks import first_to_finish
from chaser_mcp.browser.cdp import CDPConnection, CDPException

from .runtime import LocalBrowser

log = logging.getLogger("chaser_mcp.local.preview")

_SCREEN_REFRESH_HZ = 60  # a headless compositor paints at 60 fps while something moves
_JPEG_QUALITY = 70

PREVIEW_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live view: __SESSION__</title>
<style>
  html, body { margin: 0; height: 100%; background: #1d1f23; color: #ddd; font: 13px system-ui, sans-serif; }
  body { display: flex; flex-direction: column; align-items: center; }
  #bar { padding: 6px 10px; }
  #screen { flex: 1; min-height: 0; max-width: 100%; object-fit: contain; background: #000;
            touch-action: none; }
  #screen.input { cursor: pointer; }
</style>
</head>
<body>
<div id="bar"><span id="status">connecting…</span></div>
<img id="screen" alt="live view of __SESSION__">
<script>
"use strict";
(() => {
  const img = document.getElementById("screen");
  const status = document.getElementById("status");
  const url = new URL(location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = url.pathname.replace(/\\/?$/, "/ws");
  const ws = new WebSocket(url.href);
  ws.binaryType = "blob";
  let meta = null, frames = 0, lastUrl = null;
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      meta = JSON.parse(event.data);
      img.classList.toggle("input", !!meta.input_enabled);
      return;
    }
    const next = URL.createObjectURL(event.data);
    img.onload = () => { if (lastUrl) URL.revokeObjectURL(lastUrl); lastUrl = next; };
    img.src = next;
    frames += 1;
  };
  ws.onopen = () => { status.textContent = "live"; };
  ws.onclose = (event) => { status.textContent = "disconnected (" + event.code + ")"; };
  setInterval(() => {
    if (ws.readyState === WebSocket.OPEN) status.textContent = "live, " + frames + " fps";
    frames = 0;
  }, 1000);
  // Map a point on the scaled image back to the page's CSS pixels.
  const toPage = (event) => {
    const box = img.getBoundingClientRect();
    return { x: (event.clientX - box.left) / box.width * meta.width,
             y: (event.clientY - box.top) / box.height * meta.height };
  };
  img.addEventListener("click", (event) => {
    if (!meta || !meta.input_enabled || ws.readyState !== WebSocket.OPEN) return;
    const p = toPage(event);
    ws.send(JSON.stringify({ type: "click", x: p.x, y: p.y }));
  });
  img.addEventListener("wheel", (event) => {
    if (!meta || !meta.input_enabled || ws.readyState !== WebSocket.OPEN) return;
    event.preventDefault();
    const p = toPage(event);
    ws.send(JSON.stringify({ type: "wheel", x: p.x, y: p.y, dx: event.deltaX, dy: event.deltaY }));
  }, { passive: false });
})();
</script>
</body>
</html>
"""


def _inline_hash(tag: str) -> str:
    """CSP source for the page's one inline ``<tag>`` block: its sha256, so nothing else may run."""
    body = PREVIEW_PAGE.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


# The page loads nothing but itself: its own script and style (by hash), frames as blob:
# images, and its websocket back to this server. No site may frame it (clickjacking a
# live view that forwards taps), and its token never leaks through a Referer.
PREVIEW_CSP = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_inline_hash('script')}",
        f"style-src {_inline_hash('style')}",
        "img-src blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PREVIEW_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": PREVIEW_CSP,
}


def render_preview_page(session_id: str) -> str:
    # Session ids are checked against a strict pattern before they get here; no escaping surprises.
    return PREVIEW_PAGE.replace("__SESSION__", session_id)


async def stream_preview(
    websocket: WebSocket,
    browser: LocalBrowser,
    *,
    fps: int,
    input_enabled: bool,
    session_ended: anyio.Event,
) -> None:
    """Stream the session's visible page to an accepted websocket until either side goes away."""
    page = await browser.page()
    async with browser.connect("live view") as cdp:
        attached = await cdp.send("Target.attachToTarget", {"targetId": page.target_id, "flatten": True})
        session_id = str(attached["sessionId"])
        try:
            await first_to_finish(
                lambda: _pump_frames(websocket, cdp, session_id, fps=fps, input_enabled=input_enabled),
                lambda: _pump_input(websocket, cdp, session_id, input_enabled=input_enabled),
                session_ended.wait,
                quiet=(WebSocketDisconnect, CDPException),
                what="live view",
            )
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(CDPException):
                await cdp.send("Page.stopScreencast", session_id=session_id, timeout=2)


async def _pump_frames(
    websocket: WebSocket, cdp: CDPConnection, session_id: str, *, fps: int, input_enabled: bool
) -> None:
    every_nth = max(1, round(_SCREEN_REFRESH_HZ / max(1, fps)))
    size: tuple[int, int] | None = None

    async def send_meta(current: tuple[int, int]) -> None:
        nonlocal size
        if current != size:
            size = current
            meta = {"type": "meta", "width": current[0], "height": current[1]}
            await websocket.send_text(json.dumps({**meta, "input_enabled": input_enabled, "fps": fps}))

    with cdp.listen("Page.screencastFrame", session_id=session_id) as frames:
        await cdp.send(
            "Page.startScreencast",
            {"format": "jpeg", "quality": _JPEG_QUALITY, "everyNthFrame": every_nth},
            session_id=session_id,
        )
        # A page that does not change paints no frame at all (measured), so the viewer's
        # first picture is a screenshot scaled to CSS pixels, like the frames that follow.
        first, first_size = await _current_picture(cdp, session_id)
        await send_meta(first_size)
        await websocket.send_bytes(first)
        async for frame in frames:
            params = frame.params
            metadata = params.get("metadata") or {}
            await send_meta((int(metadata.get("deviceWidth", 0)), int(metadata.get("deviceHeight", 0))))
            await websocket.send_bytes(base64.b64decode(params.get("data", "")))
            # Ack after the viewer took the frame: a slow viewer slows the stream instead of queueing it.
            await cdp.send(
                "Page.screencastFrameAck", {"sessionId": params.get("sessionId")}, session_id=session_id
            )


async def _current_picture(cdp: CDPConnection, session_id: str) -> tuple[bytes, tuple[int, int]]:
    metrics = await cdp.send("Page.getLayoutMetrics", session_id=session_id)
    viewport = metrics.get("cssVisualViewport") or metrics.get("visualViewport") or {}
    width, height = round(viewport.get("clientWidth", 0)), round(viewport.get("clientHeight", 0))
    ratio = await cdp.send(
        "Runtime.evaluate",
        {"expression": "window.devicePixelRatio", "returnByValue": True},
        session_id=session_id,
    )
    dpr = float(ratio.get("result", {}).get("value") or 1.0)
    shot = await cdp.send(
        "Page.captureScreenshot",
        {
            "format": "jpeg",
            "quality": _JPEG_QUALITY,
            "clip": {
                "x": viewport.get("pageX", 0),
                "y": viewport.get("pageY", 0),
                "width": width,
                "height": height,
                "scale": 1 / dpr,
            },
        },
        session_id=session_id,
    )
    return base64.b64decode(shot.get("data", "")), (width, height)


async def _pump_input(
    websocket: WebSocket, cdp: CDPConnection, session_id: str, *, input_enabled: bool
) -> None:
    while True:
        received = await websocket.receive()
        if received["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(int(received.get("code", 1000)))
        raw = received.get("text")
        if not input_enabled or not isinstance(raw, str):
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if isinstance(message, dict):
            await _dispatch_input(cdp, session_id, message)


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(max(float(value), low), high)


async def _dispatch_input(cdp: CDPConnection, session_id: str, message: dict[str, Any]) -> None:
    x = _number(message.get("x"), 0, 100_000)
    y = _number(message.get("y"), 0, 100_000)
    if x is None or y is None:
        return
    kind = message.get("type")
    if kind == "click":
        base = {"x": x, "y": y, "button": "left", "clickCount": 1}
        await cdp.send(
            "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session_id=session_id
        )
        await cdp.send("Input.dispatchMouseEvent", {"type": "mousePressed", **base}, session_id=session_id)
        await cdp.send("Input.dispatchMouseEvent", {"type": "mouseReleased", **base}, session_id=session_id)
    elif kind == "wheel":
        dx = _number(message.get("dx", 0), -10_000, 10_000) or 0.0
        dy = _number(message.get("dy", 0), -10_000, 10_000) or 0.0
        await cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseWheel", "x": x, "y": y, "deltaX": dx, "deltaY": dy},
            session_id=session_id,
        )


__all__ = ["PREVIEW_CSP", "PREVIEW_PAGE", "PREVIEW_PAGE_HEADERS", "render_preview_page", "stream_preview"]
