"""A launched Chromium that looks like a phone on every page it opens, and stays that way.

Emulation overrides belong to the CDP session that set them, so this object keeps
one browser-level connection open for the browser's whole life and auto-attaches
(paused, ``waitForDebuggerOnStart``) to every page target: the initial tab and any
tab a client opens later get the phone before they run a line of script. Other
clients (our browsing functions, Playwright) attach alongside and see the phone.

One exception to "overrides belong to their session": when a client that set its own device
metrics leaves (a capture states the page's metrics on its link, see ``browser/capture.py``;
Playwright sets a viewport), Chromium drops the page's metrics override altogether rather
than falling back to ours, and the page becomes a desktop viewport at DPR 1 (measured on
Chromium 156; re-sending the same override is not enough, it must be cleared first). So
after any client leaves, ``restore_phone`` puts the phone back on every page that lost it.

``LocalBrowser.running`` is one ``async with`` block from launch to teardown: the
browser, its manager connection and the target watcher live and die with it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio

from chaser_mcp.browser._tasks import owned_tasks
from chaser_mcp.browser.cdp import (
    CDPConnection,
    CDPConnectionClosed,
    CDPError,
    CDPEvent,
    CDPException,
    CDPTimeout,
    EventStream,
)

from .chromium import BrowserProcess, launch_browser
from .emulation import DeviceProfile, chrome_version_from_product, device_commands, pixel_7

# The page still shows the phone's screen (read through the manager's own session on it).
_SHOWS = "[devicePixelRatio, screen.width, screen.height]"

log = logging.getLogger("chaser_mcp.local.runtime")

# A second CDP session on the same page resets the renderer's navigator.platform override
# (measured on Chromium 156), while the UA, metrics and touch overrides survive; a script
# that runs before every document keeps navigator.platform in line with the Android UA.
_PLATFORM_SHIM = """(() => {
  const value = %s;
  try {
    Object.defineProperty(Navigator.prototype, "platform", {
      get: function platform() { return value; }, configurable: true, enumerable: true,
    });
  } catch (e) {}
})();"""
_ANDROID_PLATFORM = "Linux armv81"


@dataclass(frozen=True)
class PageRef:
    """A page target and the manager connection's session on it."""

    target_id: str
    session_id: str


class LocalBrowser:
    """One headless Chromium, its manager CDP connection and the device it emulates.

    Clients reach the browser through ``connect()`` (in this process) or the local API's
    token-checked ``cdp_url`` proxy, both over the browser's DevTools pipe, and must
    pick a page target themselves (``type == "page"``; the ``browser_ui`` targets are
    Chromium's own omnibox popups). A fresh session has exactly one page.
    """

    def __init__(self, process: BrowserProcess, cdp: CDPConnection, device: DeviceProfile) -> None:
        self.process = process
        self.cdp = cdp
        self.device = device
        self._pages: dict[str, str] = {}  # session id -> target id, oldest first
        self._first_page = anyio.Event()

    def connect(self, name: str = "in-process") -> contextlib.AbstractAsyncContextManager[CDPConnection]:
        """``async with browser.connect() as cdp:`` another connection (its own browser session)."""
        return self.process.connect(name)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        *,
        executable: str | None = None,
        base_dir: Path | None = None,
        timeout: float = 30.0,
        grace: float = 3.0,
    ) -> AsyncIterator[LocalBrowser]:
        """``async with LocalBrowser.running() as browser:`` enters once the first page shows the phone.

        ``timeout`` bounds each step of the start (the launch, then the phone on the first
        page); leaving the block (however) stops every process and removes the profile
        (see ``launch_browser``).
        """
        async with (
            launch_browser(executable=executable, base_dir=base_dir, timeout=timeout, grace=grace) as process,
            process.connect("manager") as cdp,
            owned_tasks() as watchers,
        ):
            try:
                with anyio.fail_after(timeout):
                    version = await cdp.send("Browser.getVersion")
                    device = pixel_7(chrome_version_from_product(str(version.get("product", ""))))
                    browser = cls(process, cdp, device)
                    events = cdp.listen("Target.attachedToTarget", "Target.detachedFromTarget")
                    watchers.start_soon(browser._watch_targets, events, name=f"targets {process.pid}")
                    await browser._attach_everything()
                    process.devtools.on_client_left = browser.restore_phone
            except TimeoutError:
                raise CDPTimeout(f"the browser showed no phone page within {timeout:g} s") from None
            try:
                yield browser
            finally:
                watchers.cancel()

    async def _attach_everything(self) -> None:
        await self.cdp.send(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
        )
        await self._first_page.wait()

    async def _watch_targets(self, events: EventStream) -> None:
        with events:
            try:
                async for event in events:
                    if event.method == "Target.attachedToTarget":
                        await self._on_attached(event)
                    else:
                        self._pages.pop(str(event.params.get("sessionId")), None)
            except CDPConnectionClosed:
                pass

    async def _on_attached(self, event: CDPEvent) -> None:
        session_id = str(event.params.get("sessionId"))
        info = event.params.get("targetInfo") or {}
        try:
            if info.get("type") == "page":
                # Pipelined: a tab the page opened (target=_blank, window.open) answers Page.enable
                # only after it is let go, and every command before the release applies first.
                await self.cdp.send_all(
                    [
                        *device_commands(self.device),
                        # Scripts for new documents only run on a session with the Page domain enabled.
                        ("Page.enable", {}),
                        (
                            "Page.addScriptToEvaluateOnNewDocument",
                            {"source": _PLATFORM_SHIM % f'"{_ANDROID_PLATFORM}"'},
                        ),
                        ("Runtime.runIfWaitingForDebugger", {}),
                    ],
                    session_id=session_id,
                )
                self._pages[session_id] = str(info.get("targetId"))
                self._first_page.set()
            else:
                await self.cdp.send("Runtime.runIfWaitingForDebugger", session_id=session_id)
            if info.get("type") != "page":
                # Browser UI and workers need nothing from us: let them go.
                await self.cdp.send("Target.detachFromTarget", {"sessionId": session_id})
        except CDPConnectionClosed:
            raise
        except CDPException as exc:
            # The target can close (or hang) while we set it up; that is not the browser's problem.
            log.debug("could not set up target %s: %s", info.get("type"), exc)

    async def restore_phone(self) -> None:
        """Put the phone's metrics back on each page whose metrics a departed client took with it."""
        metrics = device_commands(self.device)[0]
        expected = [self.device.device_scale_factor, self.device.width, self.device.height]
        for session_id in list(self._pages):
            with contextlib.suppress(CDPException):
                shown = await self.cdp.send(
                    "Runtime.evaluate",
                    {"expression": _SHOWS, "returnByValue": True},
                    session_id=session_id,
                    timeout=5,
                )
                if shown.get("result", {}).get("value") == expected:
                    continue
                log.debug("a client took the phone's metrics with it: restoring them")
                await self.cdp.send_all(
                    [("Emulation.clearDeviceMetricsOverride", {}), metrics], session_id=session_id, timeout=5
                )

    async def page(self, timeout: float = 10.0) -> PageRef:
        """The page on screen: the visible tab (newest first), opening one if a client closed them all.

        A hidden tab paints nothing, so a screenshot or screencast of it would wait forever.
        """
        if not self._pages:
            self._first_page = anyio.Event()
            with anyio.fail_after(timeout):
                await self.cdp.send("Target.createTarget", {"url": "about:blank"})
                await self._first_page.wait()
        pages = [PageRef(target, session) for session, target in reversed(self._pages.items())]
        if len(pages) == 1:
            return pages[0]
        for page in pages:
            with contextlib.suppress(CDPException):
                state = await self.cdp.send(
                    "Runtime.evaluate",
                    {"expression": "document.visibilityState", "returnByValue": True},
                    session_id=page.session_id,
                    timeout=timeout,
                )
                if state.get("result", {}).get("value") == "visible":
                    return page
        return pages[0]

    async def screenshot(
        self,
        *,
        image_format: Literal["png", "jpeg"] = "png",
        quality: int | None = None,
        timeout: float = 30.0,
    ) -> bytes:
        """The page as the phone shows it, at full device resolution (412x915 CSS px at DPR 2.625)."""
        params: dict[str, object] = {"format": image_format}
        if quality is not None and image_format == "jpeg":
            params["quality"] = quality
        for attempt in range(2):
            page = await self.page()
            try:
                result = await self.cdp.send(
                    "Page.captureScreenshot", params, session_id=page.session_id, timeout=timeout
                )
            except CDPError:
                # The page closed between lookup and capture: forget it and try the next one.
                if attempt:
                    raise
                self._pages.pop(page.session_id, None)
                continue
            return base64.b64decode(result.get("data", ""))
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait_exited(self) -> int:
        return await self.process.wait()

    async def stop(self, *, grace: float = 3.0) -> None:
        """End every browser process (the escalation in ``BrowserProcess.stop``); the profile stays."""
        await self.process.stop(grace=grace)


__all__ = ["LocalBrowser", "PageRef"]
