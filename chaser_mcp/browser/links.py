"""Page links: one CDP connection per (caller, session), kept open across tool calls.

Why not a connection per call: a JavaScript dialog opened on a connection that then
closes cannot be answered from any later one (Chromium says "No dialog is showing"
and the page's evaluations hang until the dialog goes), and an input event that opens
a dialog does not return until the dialog is answered. So the link that saw the
dialog stays, and answers it when the agent says so. A link also knows which tab is
the session's current page: a tab the page opens (``target=_blank``, ``window.open``)
becomes it, as it would for a person.

Links live in ``PageLinks``, whose ``run()`` owns their tasks (the transports run it
beside the pending deletes). A link ends when its connection drops (the session was
deleted, the browser died), when it has been idle for ``idle_timeout`` with no dialog
open, or when the pool stops. Without a running pool (a script, a test of one page
operation) ``use`` opens a link for the block alone. Refs never depend on a link: they
live in the page (``agent.py``), so a new link finds them.

Nothing here imports the CDP client at module level: a server start-up that never
browses does not pay for websockets.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .page import PageError

if TYPE_CHECKING:
    from .cdp import CDPConnection, CDPEvent
    from .page import Page

__all__ = ["Dialog", "DialogOpen", "NoDialog", "Outcome", "PageLink", "PageLinks"]

log = logging.getLogger("chaser_mcp.browser.links")

DEFAULT_IDLE_TIMEOUT = 300.0
# How long after an action something it caused (a navigation, a new tab) may take to start.
DEFAULT_SETTLE = 0.15


_NAVIGATION_STARTS = (
    "Page.frameRequestedNavigation",
    "Page.frameStartedNavigating",
    "Page.frameStartedLoading",
)
_PAGE_EVENTS = (
    "Page.javascriptDialogOpening",
    "Page.javascriptDialogClosed",
    *_NAVIGATION_STARTS,
    "Page.frameStoppedLoading",
    "Page.navigatedWithinDocument",
)


async def _first_of(*events: anyio.Event) -> None:
    """Return as soon as one of ``events`` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)


@dataclass(frozen=True)
class Dialog:
    """A JavaScript dialog open on the page: ``alert``, ``confirm``, ``prompt`` or ``beforeunload``."""

    type: str
    message: str
    default_prompt: str = ""
    url: str = ""

    def describe(self) -> str:
        return f'a {self.type} dialog ("{_clip(self.message, 200)}")'


class DialogOpen(PageError):
    """The page is blocked by a dialog; nothing but answering it can be done."""

    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog
        super().__init__(
            f"The page shows {dialog.describe()} and does nothing else until it is answered: "
            "call act with accept_dialog or dismiss_dialog (value answers a prompt) first."
        )


class NoDialog(PageError):
    """Asked to answer a dialog when none is open."""


@dataclass(frozen=True)
class Outcome:
    """What an action changed: where the page is now, and whether it navigated, opened a tab or a dialog."""

    url: str
    title: str
    navigated: bool = False
    new_tab: bool = False
    dialog: Dialog | None = None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Watch:
    """What happened on the page during one action."""

    navigation_started: anyio.Event = field(default_factory=anyio.Event)
    navigation_done: anyio.Event = field(default_factory=anyio.Event)
    same_document: bool = False
    new_target: str | None = None
    new_target_seen: anyio.Event = field(default_factory=anyio.Event)


class PageLink:
    """One open CDP connection to a session's browser, attached to its current page."""

    def __init__(self, cdp: CDPConnection, cdp_url: str) -> None:
        self.cdp = cdp
        self.cdp_url = cdp_url
        self.lock = anyio.Lock()
        self.last_used = time.monotonic()
        self.dialog: Dialog | None = None
        self._page: Page | None = None
        self._watch: _Watch | None = None
        self._page_changed = anyio.Event()
        self._dialog_opened = anyio.Event()

    @property
    def page(self) -> Page:
        assert self._page is not None, "PageLink.start() attaches the page"
        return self._page

    @property
    def closed(self) -> bool:
        return self.cdp.closed

    def check_no_dialog(self) -> None:
        """Raise DialogOpen when a dialog blocks the page (any command to it would hang)."""
        if self.dialog is not None:
            raise DialogOpen(self.dialog)

    # -- attaching --------------------------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Attach to the current page and watch the browser for new tabs."""
        from .page import attach_to_page

        await self.cdp.send("Target.setDiscoverTargets", {"discover": True}, timeout=timeout)
        await self._switch_to(await attach_to_page(self.cdp, timeout), timeout)

    async def _switch_to(self, page: Page, timeout: float) -> None:
        self._page = page
        self._dialog_closed()
        # Page.enable on a page blocked by a dialog opened through another connection never answers:
        # a short bound, and the page is then reported as blocked instead of hanging every call.
        try:
            await page.send("Page.enable", timeout=min(timeout, 5.0))
            await page.send("Page.setLifecycleEventsEnabled", {"enabled": True}, timeout=timeout)
        except TimeoutError:
            self.dialog = Dialog(
                "unknown",
                "a dialog opened before this connection was made, which it cannot answer; "
                "delete the session and create a new one",
            )
            self._dialog_opened.set()
        self._page_changed.set()
        self._page_changed = anyio.Event()

    async def watch_events(self) -> None:
        """Follow the current page's dialogs and navigations, and the browser's new tabs, for good."""
        while True:
            await self._watch_page(self.page, self._page_changed)

    async def _watch_page(self, page: Page, switched: anyio.Event) -> None:
        with (
            page.listen(*_PAGE_EVENTS) as page_events,
            self.cdp.listen("Target.targetCreated") as browser_events,
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow, page_events)
                tg.start_soon(self._follow, browser_events)
                await switched.wait()
                tg.cancel_scope.cancel()

    async def _follow(self, events: Any) -> None:
        from .cdp import CDPConnectionClosed

        with contextlib.suppress(CDPConnectionClosed):  # the link ends with its connection
            async for event in events:
                self._on_event(event)

    def _on_event(self, event: CDPEvent) -> None:
        params = event.params
        method = event.method
        if method == "Page.javascriptDialogOpening":
            self.dialog = Dialog(
                str(params.get("type", "alert")),
                str(params.get("message", "")),
                str(params.get("defaultPrompt", "")),
                str(params.get("url", "")),
            )
            self._dialog_opened.set()
            return
        if method == "Page.javascriptDialogClosed":
            self._dialog_closed()
            return
        watch = self._watch
        if watch is None:
            return
        main_frame = self.page.target_id  # a page target's main frame has the target's id
        if method == "Target.targetCreated":
            info = params.get("targetInfo", {})
            if info.get("type") == "page" and info.get("openerId") == self.page.target_id:
                watch.new_target = str(info.get("targetId"))
                watch.new_target_seen.set()
        elif params.get("frameId") != main_frame:
            return
        elif method == "Page.navigatedWithinDocument":
            watch.same_document = True
            watch.navigation_started.set()
            watch.navigation_done.set()
        elif method in (
            "Page.frameRequestedNavigation",
            "Page.frameStartedNavigating",
            "Page.frameStartedLoading",
        ):
            watch.navigation_started.set()
        elif method == "Page.frameStoppedLoading" and watch.navigation_started.is_set():
            watch.navigation_done.set()

    # -- acting -----------------------------------------------------------------------------------

    async def perform(
        self,
        action: Callable[[Page], Awaitable[Any]],
        *,
        timeout: float,
        settle: float = DEFAULT_SETTLE,
    ) -> Outcome:
        """Run ``action(page)`` and wait for what it set off, bounded by ``timeout``.

        A dialog that opens cancels the action (its input event would not return until the
        dialog is answered) and is reported. A navigation is waited for until its page has
        loaded; a tab the page opened becomes the current page once it has loaded.
        """
        self.check_no_dialog()
        return await self._perform(action, timeout=timeout, settle=settle)

    async def _perform(
        self, action: Callable[[Page], Awaitable[Any]], *, timeout: float, settle: float
    ) -> Outcome:
        from .cdp import CDPException

        watch = self._watch = _Watch()
        try:
            with anyio.fail_after(timeout):
                finished = anyio.Event()
                async with anyio.create_task_group() as tg:

                    async def run() -> None:
                        await action(self.page)
                        finished.set()

                    tg.start_soon(run)
                    await _first_of(finished, self._dialog_opened)
                    tg.cancel_scope.cancel()
                if self.dialog is not None:
                    return await self._outcome(watch)
                # Something the action set off shows up within the settle window, or not at all.
                with anyio.move_on_after(settle):
                    await _first_of(watch.navigation_started, watch.new_target_seen)
                if watch.new_target is not None:
                    await self._take_new_tab(watch.new_target, timeout)
                elif watch.navigation_started.is_set():
                    # Until the new page has loaded, or it opens a dialog (an alert in its onload).
                    await _first_of(watch.navigation_done, self._dialog_opened)
                return await self._outcome(watch)
        except TimeoutError:
            raise PageError(
                f"The action did not finish within {timeout:g} s (the page may still be loading); "
                "check the page with snapshot or take_screenshot before acting again."
            ) from None
        except CDPException as exc:
            raise PageError(f"The browser connection failed during the action ({exc}); try again.") from exc
        finally:
            self._watch = None

    async def _take_new_tab(self, target_id: str, timeout: float) -> None:
        from .page import Page

        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}, timeout=timeout
        )
        old = self._page
        await self._switch_to(Page(self.cdp, str(attached["sessionId"]), target_id), timeout)
        if old is not None:
            with contextlib.suppress(Exception):
                await self.cdp.send("Target.detachFromTarget", {"sessionId": old.session_id}, timeout=5)
        # A new tab is loading (or about to): wait until its document is complete.
        while self.dialog is None:
            with contextlib.suppress(PageError):
                state = await self.page.evaluate("document.readyState + ' ' + location.href", timeout=timeout)
                ready, _, url = str(state).partition(" ")
                if ready == "complete" and url != "about:blank":
                    return
            await anyio.sleep(0.05)

    async def _outcome(self, watch: _Watch) -> Outcome:
        url = title = ""
        if self.dialog is None:
            where = await self.page.evaluate("({url: location.href, title: document.title})")
            url, title = str(where.get("url", "")), str(where.get("title", ""))
        return Outcome(
            url=url,
            title=title,
            navigated=watch.navigation_started.is_set() and not watch.new_target,
            new_tab=watch.new_target is not None,
            dialog=self.dialog,
        )

    async def answer_dialog(
        self, accept: bool, prompt_text: str | None = None, *, timeout: float, settle: float = DEFAULT_SETTLE
    ) -> tuple[Dialog, Outcome]:
        """Accept or dismiss the open dialog (``prompt_text`` answers a prompt), then settle like an action:
        the page's answer to it may navigate, or open another dialog."""
        dialog = self.dialog
        if dialog is None:
            raise NoDialog(
                "No dialog is open on the page, so there is nothing to accept or dismiss; "
                "check the page with snapshot."
            )
        params: dict[str, Any] = {"accept": accept}
        if prompt_text is not None:
            params["promptText"] = prompt_text
        self._dialog_closed()

        async def answer(page: Page) -> None:
            await page.send("Page.handleJavaScriptDialog", params, timeout=timeout)

        return dialog, await self._perform(answer, timeout=timeout, settle=settle)

    def _dialog_closed(self) -> None:
        self.dialog = None
        if self._dialog_opened.is_set():
            self._dialog_opened = anyio.Event()

    async def serve(self, idle_timeout: float) -> None:
        """Keep the link until its connection drops or it idles out (never while a dialog is open)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.watch_events)
            while not self.closed:
                left = self.last_used + idle_timeout - time.monotonic()
                if left <= 0 and not self.lock.locked() and self.dialog is None:
                    break
                with anyio.move_on_after(max(left, 1.0)):
                    await self.cdp.wait_closed()
            tg.cancel_scope.cancel()


class PageLinks:
    """The page links of this process, one per (caller key, session); ``run()`` owns them."""

    def __init__(self, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self._links: dict[str, PageLink] = {}
        self._opening: dict[str, anyio.Lock] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._links)

    async def run(self) -> None:
        """Own every link's task until cancelled; then close them all."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            try:
                await anyio.sleep_forever()
            finally:
                self._tasks = None

    @contextlib.asynccontextmanager
    async def use(
        self, key: str, cdp_url: str, *, headers: Mapping[str, str] | None = None, timeout: float
    ) -> AsyncIterator[PageLink]:
        """The link for ``key`` (opened on first use), held exclusively for the block."""
        if self._tasks is None:
            async with _open_for_block(cdp_url, headers, timeout) as link:
                yield link
            return
        link = await self._get(key, cdp_url, headers, timeout)
        with anyio.fail_after(timeout):
            await link.lock.acquire()
        try:
            link.last_used = time.monotonic()
            yield link
        finally:
            link.last_used = time.monotonic()
            link.lock.release()

    async def _get(
        self, key: str, cdp_url: str, headers: Mapping[str, str] | None, timeout: float
    ) -> PageLink:
        opening = self._opening.setdefault(key, anyio.Lock())
        async with opening:  # two first calls at once open one link
            link = self._links.get(key)
            if link is not None and not link.closed and link.cdp_url == cdp_url:
                return link
            tasks = self._tasks
            if tasks is None:
                raise PageError("the server is shutting down; no page can be opened")
            opened: PageLink = await tasks.start(self._serve_link, key, cdp_url, headers, timeout)
            return opened

    async def _serve_link(
        self,
        key: str,
        cdp_url: str,
        headers: Mapping[str, str] | None,
        timeout: float,
        *,
        task_status: anyio.abc.TaskStatus[PageLink],
    ) -> None:
        from .cdp import CDPConnection

        link: PageLink | None = None
        try:
            async with CDPConnection.connect(cdp_url, headers=headers, open_timeout=timeout) as cdp:
                link = PageLink(cdp, cdp_url)
                await link.start(timeout)
                self._links[key] = link
                task_status.started(link)
                await link.serve(self.idle_timeout)
        except Exception:
            if link is None:
                raise  # to the caller that asked for the link, through tasks.start
            # One link's failure must not end the pool (and every other session's link).
            log.warning("the page link to a session ended with an error", exc_info=True)
        finally:
            if link is not None and self._links.get(key) is link:
                del self._links[key]
            self._opening.pop(key, None)


@contextlib.asynccontextmanager
async def _open_for_block(
    cdp_url: str, headers: Mapping[str, str] | None, timeout: float
) -> AsyncIterator[PageLink]:
    from .cdp import CDPConnection

    async with CDPConnection.connect(cdp_url, headers=headers, open_timeout=timeout) as cdp:
        link = PageLink(cdp, cdp_url)
        await link.start(timeout)
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.watch_events)
            yield link
            tg.cancel_scope.cancel()
