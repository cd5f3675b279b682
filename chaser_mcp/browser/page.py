"""A handle on one page of a session's browser: send it CDP commands, run the page agent in it.

Everything that works on a page (reading, snapshots, actions, waits, captures) takes a
``Page`` and nothing else, so it does not care how the page was reached: a connection
opened for one call (``open_page``) or one kept open across calls (``links.py``).

Which page: the browser's page targets (``type == "page"``; Chromium's own
``browser_ui`` targets are skipped). With more than one tab, the visible one wins;
failing that, the one Chromium lists first (its newest).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on use: websockets is for servers that browse
    from .cdp import CDPConnection, EventStream

__all__ = ["DEFAULT_TIMEOUT", "NoPage", "Page", "PageError", "PageScriptError", "attach_to_page", "open_page"]

DEFAULT_TIMEOUT = 30.0


class PageError(Exception):
    """Base class: something could not be done in the page (the message says why and what to try)."""


class NoPage(PageError):
    """The browser has no page target to act on."""


class PageScriptError(PageError):
    """A script run in the page threw; the message is the page's own error text, shortened."""


@dataclass
class Page:
    """One attached page target: the connection, its flat ``session_id`` and its ``target_id``."""

    cdp: CDPConnection
    session_id: str
    target_id: str

    async def send(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """A CDP command on this page's session."""
        return await self.cdp.send(method, params, session_id=self.session_id, timeout=timeout)

    def listen(self, *methods: str) -> EventStream:
        """Subscribe to this page's events (subscribe before sending what causes them)."""
        return self.cdp.listen(*methods, session_id=self.session_id)

    async def evaluate(self, expression: str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run ``expression`` in the page's main world and return its (JSON) value; awaits promises."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "script error")
            raise PageScriptError(f"the page's script failed: {str(text).splitlines()[0][:200]}")
        return result.get("result", {}).get("value")

    async def call_agent(self, function: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Call one function of the page agent (``agent.py``), installing the agent first if needed."""
        from .agent import call_agent  # the agent's source is read on first use

        return await call_agent(self, function, *args, timeout=timeout)


async def attach_to_page(cdp: CDPConnection, timeout: float) -> Page:
    """Attach (flat) to the session's current page: the visible tab, else the newest."""
    from .cdp import CDPException

    targets = await cdp.send("Target.getTargets", timeout=timeout)
    pages = [t for t in targets.get("targetInfos", []) if t.get("type") == "page"]
    if not pages:
        raise NoPage("the browser has no open page (tab) to use")
    attached: list[Page] = []
    chosen: Page | None = None
    try:
        for target in pages:
            answer = await cdp.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, timeout=timeout
            )
            page = Page(cdp, str(answer["sessionId"]), str(target["targetId"]))
            attached.append(page)
            if len(pages) == 1 or await _is_visible(page, timeout):
                chosen = page
                break
        if chosen is None:
            chosen = attached[0]
        return chosen
    finally:
        for page in attached:
            if page is not chosen:
                with contextlib.suppress(CDPException):
                    await cdp.send("Target.detachFromTarget", {"sessionId": page.session_id}, timeout=5)


async def _is_visible(page: Page, timeout: float) -> bool:
    from .cdp import CDPException

    try:
        value = await page.evaluate("document.visibilityState", timeout=timeout)
    except (CDPException, PageScriptError):
        return False
    return bool(value == "visible")


@contextlib.asynccontextmanager
async def open_page(
    cdp_url: str, *, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[Page]:
    """A page of the session for the length of one block: connect, attach, and detach afterwards."""
    from .cdp import CDPConnection, CDPException

    async with CDPConnection.connect(cdp_url, headers=headers, open_timeout=timeout) as cdp:
        page = await attach_to_page(cdp, timeout)
        try:
            yield page
        finally:
            if not cdp.closed:
                with contextlib.suppress(CDPException):
                    await cdp.send("Target.detachFromTarget", {"sessionId": page.session_id}, timeout=5)
