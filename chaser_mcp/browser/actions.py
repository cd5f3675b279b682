"""Act on a page the way a person with a phone would: tap, type, fill, pick, tick, press, scroll.

Every action that touches an element first waits, bounded, until the element is actionable
(``js/20-target.js``: attached, visible, enabled, stable, and the thing a finger at its tap
point would touch, looking into open shadow roots and same-origin frames). A tap is a touch
(``Input.dispatchTouchEvent`` start and end at the element's centre, in CSS pixels), which
the browser turns into the click a page listens for. A target covered by something (a cookie
banner) is an error naming the cover, and nothing is tapped.

The checks run before the action; the action itself (the input events, or the script that
changes a field) runs inside ``PageLink.perform``, which watches what it causes: a navigation,
a dialog (which blocks the page until answered), a new tab. The answer is one short text
saying what was done and what changed; no snapshot.

Requests are checked before anything is sent (``act_request.check_request``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .act_request import ACTIONS, ActionInputError, ActionName, Request, check_request
from .cdp import CDPException
from .keys import key_events, parse_key, text_events
from .page import Page, PageError

if TYPE_CHECKING:
    from .links import Outcome, PageLink

__all__ = ["ACTIONS", "ActionError", "ActionInputError", "ActionName", "Request", "act", "check_request"]

DEFAULT_WAIT = 5.0  # how long an element may take to become actionable


class ActionError(PageError):
    """The action cannot be done on this page (no earlier page to go back to, no dialog open…)."""


# -- the actions -----------------------------------------------------------------------------------


def _changes(done: str, outcome: Outcome) -> str:
    """The answer: what was done, then what it changed."""
    if outcome.dialog is not None:
        d = outcome.dialog
        default = f' (default answer "{d.default_prompt}")' if d.type == "prompt" and d.default_prompt else ""
        answer = " (value answers it)" if d.type == "prompt" else ""
        return (
            f'{done} A {d.type} dialog opened: "{d.message[:300]}"{default}; it blocks the page until '
            f"you answer it with act accept_dialog{answer} or dismiss_dialog."
        )
    if outcome.new_tab:
        return f'{done} It opened a new tab, now the page later tools use: {outcome.url} "{outcome.title}".'
    if outcome.navigated:
        return f'{done} Now at {outcome.url} "{outcome.title}".'
    return done


async def _agent(page: Page, function: str, *args: Any, wait: float) -> Any:
    """An agent call that may wait up to ``wait`` seconds in the page (plus slack for the round trip)."""
    return await page.call_agent(function, *args, timeout=wait + 10.0)


async def _touch(page: Page, x: float, y: float) -> None:
    await page.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    await page.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _named(found: dict[str, Any]) -> str:
    return f"{found['description']} [ref={found['ref']}]"


def _field_text(state: dict[str, Any]) -> str:
    if state.get("secret"):
        return f"holds {state['length']} characters (not shown)"
    return f'now holds "{state["value"]}"'


class _Act:
    """One act call: the page link, the request, and the bounds."""

    def __init__(self, link: PageLink, request: Request, wait: float, timeout: float) -> None:
        self.link = link
        self.request = request
        self.wait = wait
        self.timeout = timeout
        self.options = {"timeoutMs": int(wait * 1000)}

    @property
    def page(self) -> Page:
        return self.link.page

    @property
    def target(self) -> str:
        assert self.request.target is not None
        return self.request.target

    @property
    def value(self) -> str:
        assert self.request.value is not None
        return self.request.value

    async def run(self) -> str:
        handler: Callable[[], Awaitable[str]] = getattr(self, f"do_{self.request.action}")
        return await handler()

    async def perform(self, action: Callable[[Page], Awaitable[None]]) -> Outcome:
        return await self.link.perform(action, timeout=self.timeout)

    async def point(self, **options: Any) -> dict[str, Any]:
        found: dict[str, Any] = await _agent(
            self.page, "actionPoint", self.target, self.options | options, wait=self.wait
        )
        return found

    async def do_tap(self) -> str:
        found = await self.point()
        outcome = await self.perform(lambda page: _touch(page, found["x"], found["y"]))
        return _changes(f"Tapped {_named(found)}.", outcome)

    async def do_hover(self) -> str:
        found = await self.point(verb="hovered")

        async def move(page: Page) -> None:
            await page.send(
                "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": found["x"], "y": found["y"]}
            )

        outcome = await self.perform(move)
        return _changes(f"The pointer is over {_named(found)}.", outcome)

    async def do_fill(self) -> str:
        found = await _agent(
            self.page, "focusField", self.target, self.options | {"selectAll": True}, wait=self.wait
        )
        ref, value = found["ref"], self.value

        async def fill(page: Page) -> None:
            if found["kind"] == "value":
                await page.call_agent("setValue", ref, value, timeout=self.timeout)
                return
            if value:
                await page.send("Input.insertText", {"text": value})
            else:  # an empty value: delete what is selected, as a person would
                delete, _ = parse_key("Delete")
                for event in key_events(delete):
                    await page.send("Input.dispatchKeyEvent", event)
            await page.call_agent("commitField", ref, timeout=self.timeout)

        outcome = await self.perform(fill)
        return await self._field_answer(f"Filled {_named(found)}", ref, outcome)

    async def do_type(self) -> str:
        if self.request.target is not None:
            found = await _agent(
                self.page, "focusField", self.target, self.options | {"verb": "type"}, wait=self.wait
            )
        else:
            found = await self.page.call_agent("focusedField", timeout=self.timeout)
        keystrokes = text_events(self.value)

        async def type_(page: Page) -> None:
            for method, params in keystrokes:
                await page.send(method, params)

        outcome = await self.perform(type_)
        return await self._field_answer(f"Typed into {_named(found)}", found["ref"], outcome)

    async def _field_answer(self, done: str, ref: str, outcome: Outcome) -> str:
        if outcome.dialog is None and not outcome.navigated and not outcome.new_tab:
            with contextlib.suppress(PageError, CDPException):
                state = await self.page.call_agent("fieldState", ref, timeout=self.timeout)
                return f"{done}: it {_field_text(state)}."
        return _changes(f"{done}.", outcome)

    async def do_select(self) -> str:
        found = await _agent(self.page, "findOption", self.target, self.value, self.options, wait=self.wait)
        chosen = f'"{found["label"]}" in {_named(found)}'
        if found["already"]:
            return f"{chosen[0].upper()}{chosen[1:]} was already selected; nothing was done."

        async def choose(page: Page) -> None:
            await page.call_agent("chooseOption", found["ref"], found["index"], timeout=self.timeout)

        outcome = await self.perform(choose)
        return _changes(f"Selected {chosen}.", outcome)

    async def do_check(self) -> str:
        return await self._set_checked(True)

    async def do_uncheck(self) -> str:
        return await self._set_checked(False)

    async def _set_checked(self, wanted: bool) -> str:
        state = "checked" if wanted else "unchecked"
        found = await _agent(self.page, "checkable", self.target, self.options, wait=self.wait)
        if found["checked"] == wanted:
            return f"{_named(found)} was already {state}; nothing was done."
        if not wanted and found["kind"] in ("radio", "menuitemradio"):
            raise ActionError(
                f"{_named(found)} is a radio button, which cannot be unchecked; check another option of "
                "its group instead."
            )
        point = await _agent(
            self.page,
            "actionPoint",
            found["ref"],
            self.options | {"label": True, "verb": state},
            wait=self.wait,
        )
        outcome = await self.perform(lambda page: _touch(page, point["x"], point["y"]))
        if outcome.dialog is None and not outcome.navigated and not outcome.new_tab:
            after = await self.page.call_agent("checkable", found["ref"], self.options, timeout=self.timeout)
            if after["checked"] != wanted:
                raise ActionError(
                    f"Tapped {_named(found)} but it is still {'un' if wanted else ''}checked; the page "
                    "may want something else first (take a snapshot to see)."
                )
        return _changes(
            f"{'Checked' if wanted else 'Unchecked'} {_named(found)}: it is {state} now.", outcome
        )

    async def do_press(self) -> str:
        key, modifiers = parse_key(self.value)
        if self.request.target is not None:
            found = await _agent(self.page, "focusTarget", self.target, self.options, wait=self.wait)
            where = f" in {_named(found)}"
        else:
            focused = await self.page.call_agent("focusedDescription", timeout=self.timeout)
            where = f" in {focused}" if focused else " on the page"

        async def press(page: Page) -> None:
            for event in key_events(key, modifiers):
                await page.send("Input.dispatchKeyEvent", event)

        outcome = await self.perform(press)
        return _changes(f"Pressed {self.value}{where}.", outcome)

    async def do_scroll(self) -> str:
        direction = self.request.value
        if direction is None:
            found = await _agent(self.page, "scrollIntoView", self.target, self.options, wait=self.wait)
            return f"Scrolled {_named(found)} into view."
        result: dict[str, Any] = {}

        async def scroll(page: Page) -> None:
            result.update(
                await page.call_agent("scrollStep", self.request.target, direction, {}, timeout=self.timeout)
            )

        outcome = await self.perform(scroll)
        if not result:
            return _changes(f"Scrolled {direction}.", outcome)
        where = f"now {result['top']} of {result['max']} px down"
        if result["moved"] == 0:
            done = f"Scrolled {direction}: nothing moved ({where})."
        else:
            done = f"Scrolled {direction}: {where}."
        if result["grew"] > 0:
            done += f" The page loaded more content (it grew by {result['grew']} px)."
        return _changes(done, outcome)

    async def do_back(self) -> str:
        return await self._history(-1)

    async def do_forward(self) -> str:
        return await self._history(+1)

    async def _history(self, step: int) -> str:
        history = await self.page.send("Page.getNavigationHistory", timeout=self.timeout)
        index = int(history["currentIndex"]) + step
        entries = history["entries"]
        if not 0 <= index < len(entries):
            where = "earlier" if step < 0 else "later"
            raise ActionError(f"There is no {where} page in this tab's history; use navigate to open a URL.")
        entry_id = entries[index]["id"]

        async def go(page: Page) -> None:
            await page.send("Page.navigateToHistoryEntry", {"entryId": entry_id})

        outcome = await self.perform(go)
        return _changes(f"Went {'back' if step < 0 else 'forward'}.", outcome)

    async def do_reload(self) -> str:
        outcome = await self.perform(lambda page: _send(page, "Page.reload"))
        return _changes("Reloaded.", outcome)

    async def do_accept_dialog(self) -> str:
        return await self._answer(True)

    async def do_dismiss_dialog(self) -> str:
        return await self._answer(False)

    async def _answer(self, accept: bool) -> str:
        prompt_text = self.request.value if accept else None
        dialog, outcome = await self.link.answer_dialog(accept, prompt_text, timeout=self.timeout)
        verb = "Accepted" if accept else "Dismissed"
        answered = f' with "{prompt_text}"' if prompt_text is not None and dialog.type == "prompt" else ""
        return _changes(f'{verb} the {dialog.type} dialog "{dialog.message[:200]}"{answered}.', outcome)


async def _send(page: Page, method: str) -> None:
    await page.send(method)


async def act(link: PageLink, request: Request, *, wait: float = DEFAULT_WAIT, timeout: float = 30.0) -> str:
    """Do ``request`` on the link's current page and say what changed (one short text).

    ``wait`` bounds how long an element may take to become actionable; ``timeout`` bounds
    each browser round trip and the wait for what the action started (a page load).
    Raises ``AgentError`` (the element is stale, covered, missing…), ``ActionError``, or
    ``CDPException`` when the browser cannot be reached.
    """
    if request.action not in ("accept_dialog", "dismiss_dialog"):
        link.check_no_dialog()  # an open dialog blocks everything but its answer
    return await _Act(link, request, wait, timeout).run()
