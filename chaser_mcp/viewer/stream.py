"""One viewer's websocket, joined to the session's browser over CDP.

The stream follows the session's current page as a person would see it: when the page
opens a tab (or its tab closes), the view moves to the tab the browser now shows
(``attach_to_page``: the visible one, else the newest). Each viewer has its own CDP
connection, so closing it never disturbs the page tools' link or other viewers.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..browser._tasks import first_to_finish
from ..browser.cdp import CDPConnection, CDPConnectionClosed, CDPError, CDPEvent, CDPException, EventStream
from ..browser.page import Page, attach_to_page
from ..browser.screencast import Frame, dispatch_input, stream_frames

__all__ = ["stream_session"]

MAX_MESSAGE = 16_000  # characters of one message from the page (a pasted text is cut at 2,000)


async def stream_session(
    websocket: WebSocket, cdp: CDPConnection, *, input_enabled: bool, fps: int, timeout: float
) -> None:
    """Stream the session's current page to an accepted websocket, and its input back, until the
    viewer leaves or the browser goes away."""
    await cdp.send("Target.setDiscoverTargets", {"discover": True}, timeout=timeout)
    send_lock = anyio.Lock()
    with cdp.listen("Target.targetCreated", "Target.targetDestroyed", "Target.targetInfoChanged") as targets:
        while not cdp.closed:
            page = await attach_to_page(cdp, timeout)
            view = _View(websocket, page, send_lock, input_enabled=input_enabled, fps=fps)
            try:
                await view.run(targets)
            finally:
                if not cdp.closed:
                    with anyio.CancelScope(shield=True), contextlib.suppress(CDPException):
                        await cdp.send("Target.detachFromTarget", {"sessionId": page.session_id}, timeout=2)
            if not view.switched:
                return


@dataclass
class _View:
    """The stream of one page: its frames out, the person's input in, and the browser's tabs watched."""

    websocket: WebSocket
    page: Page
    send_lock: anyio.Lock
    input_enabled: bool
    fps: int
    switched: bool = False
    _meta: dict[str, Any] = field(default_factory=dict)

    async def run(self, targets: EventStream) -> None:
        info = await self.page.cdp.send("Target.getTargetInfo", {"targetId": self.page.target_id})
        target = info.get("targetInfo", {})
        self._meta = {
            "type": "meta",
            "width": 0,
            "height": 0,
            "input_enabled": self.input_enabled,
            "fps": self.fps,
            "url": str(target.get("url", "")),
            "title": str(target.get("title", "")),
        }
        await first_to_finish(
            lambda: stream_frames(self.page, self._deliver, fps=self.fps),
            self._take_input,
            lambda: self._watch_targets(targets),
            quiet=(WebSocketDisconnect, CDPException),
            what="viewer stream",
        )

    async def _send_meta(self, **changes: Any) -> None:
        if all(self._meta.get(key) == value for key, value in changes.items()):
            return
        self._meta.update(changes)
        async with self.send_lock:
            await self.websocket.send_text(json.dumps(self._meta))

    async def _deliver(self, frame: Frame) -> None:
        # The meta goes first whenever the size changes, so the page maps taps with the right one.
        await self._send_meta(width=frame.width, height=frame.height)
        async with self.send_lock:
            await self.websocket.send_bytes(frame.jpeg)

    async def _watch_targets(self, targets: EventStream) -> None:
        async for event in targets:
            if self._moves_the_view(event):
                self.switched = True
                return
            info = event.params.get("targetInfo", {})
            if event.method == "Target.targetInfoChanged" and info.get("targetId") == self.page.target_id:
                await self._send_meta(url=str(info.get("url", "")), title=str(info.get("title", "")))

    def _moves_the_view(self, event: CDPEvent) -> bool:
        if event.method == "Target.targetCreated":
            return bool(event.params.get("targetInfo", {}).get("type") == "page")
        if event.method == "Target.targetDestroyed":
            return event.params.get("targetId") == self.page.target_id
        return False

    async def _take_input(self) -> None:
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(int(received.get("code", 1000)))
            raw = received.get("text")
            if not self.input_enabled or not isinstance(raw, str) or len(raw) > MAX_MESSAGE:
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            try:
                await dispatch_input(self.page, message)
            except CDPConnectionClosed:
                raise
            except (CDPError, TimeoutError):
                continue  # the page refused that one event (a dialog blocks it, odd coordinates)
