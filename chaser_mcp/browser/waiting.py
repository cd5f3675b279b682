"""Wait until a page shows something: a text, a text gone, an element, a URL.

The conditions are checked in the page by the agent (``js/30-wait.js``), which answers as
soon as they all hold, so a wait is one round trip, not a poll from the server. A waiter
lives in one document: when the page navigates mid-wait, the pending call fails ("Inspected
target navigated or closed"), and the next call installs the agent in the new document and
waits on, within the same overall bound.

Text is matched case-insensitively, whitespace squeezed, against what a person can read
(``innerText`` of the page, its same-origin iframes and open shadow roots; hidden text does
not count). A selector counts once an element it matches is shown (rendered with an area).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import anyio

from .cdp import CDPError, CDPTimeout
from .page import Page, PageError

__all__ = ["Conditions", "WaitTimeout", "Waited", "wait_for"]

# Slack on top of the in-page timeout for the round trip that carries the answer back.
_ANSWER_SLACK = 3.0
# Pause before trying again after a navigation killed the waiter, so a page that keeps
# reloading cannot turn the wait into a busy loop.
_RETRY_PAUSE = 0.05
# How Chromium fails a call whose document went away (as opposed to a page or session that is gone).
_NAVIGATED = re.compile(r"navigated|context was destroyed|Cannot find context", re.IGNORECASE)


class WaitTimeout(PageError):
    """The conditions did not all hold in time; the message says what the page showed."""


@dataclass(frozen=True)
class Conditions:
    """What to wait for; every condition given must hold at once."""

    text: str | None = None
    text_gone: str | None = None
    selector: str | None = None
    url_contains: str | None = None

    def __post_init__(self) -> None:
        if not self.given():
            raise ValueError("no condition given")

    def given(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Waited:
    """The conditions held: after how long, and where the page is."""

    seconds: float
    url: str
    title: str
    what: tuple[str, ...]  # one phrase per condition, e.g. 'text "Done" is shown'
    navigations: int  # documents the wait outlived

    def summary(self) -> str:
        moved = f" (through {self.navigations} navigation{'s' * (self.navigations > 1)})"
        return (
            f"After {self.seconds:.1f} s{moved if self.navigations else ''}: {'; '.join(self.what)}. "
            f"The page is {_quote(self.title, 80)} at {self.url}."
        )


async def wait_for(page: Page, conditions: Conditions, *, timeout: float) -> Waited:
    """Wait until every condition holds, at most ``timeout`` seconds, across navigations.

    Raises WaitTimeout (saying what was seen) when the time runs out, AgentError for a bad
    selector, and CDP errors when the page cannot be reached at all.
    """
    spec = conditions.given()
    started = time.monotonic()
    deadline = started + timeout
    navigations = 0
    state: dict[str, Any] | None = None
    while True:
        left = deadline - time.monotonic()
        try:
            state = await page.call_agent(
                "waitFor", spec, max(0, round(left * 1000)), timeout=max(left, 0) + _ANSWER_SLACK
            )
        except CDPTimeout:
            raise WaitTimeout(
                f"Waited {timeout:g} s for {_wanted(spec)} but the page stopped answering "
                "(a JS dialog may be open, or a script is busy); check it with take_screenshot."
            ) from None
        except CDPError as exc:
            if not _NAVIGATED.search(exc.message):
                raise
            # The document went away under the waiter (a navigation): wait on in the next one.
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Waited {timeout:g} s for {_wanted(spec)} but the page was still navigating; "
                    "wait again or check it with snapshot."
                ) from None
            navigations += 1
            await anyio.sleep(_RETRY_PAUSE)
            continue
        assert isinstance(state, dict)
        if state.get("met"):
            return Waited(
                seconds=time.monotonic() - started,
                url=str(state.get("url", "")),
                title=str(state.get("title", "")),
                what=tuple(_met(spec, state)),
                navigations=navigations,
            )
        if time.monotonic() >= deadline - 0.01:
            raise WaitTimeout(_timeout_message(spec, state, timeout))


def _quote(text: object, limit: int) -> str:
    squeezed = " ".join(str(text).split())
    if len(squeezed) > limit:
        squeezed = squeezed[: limit - 1] + "…"
    return json.dumps(squeezed, ensure_ascii=False)


def _wanted(spec: dict[str, str]) -> str:
    phrases = {
        "text": "the text {}",
        "text_gone": "the text {} to go",
        "selector": "an element matching {}",
        "url_contains": "a URL containing {}",
    }
    return " and ".join(phrases[name].format(_quote(value, 80)) for name, value in spec.items())


def _met(spec: dict[str, str], state: dict[str, Any]) -> list[str]:
    said = []
    if "text" in spec:
        said.append(f"the text {_quote(spec['text'], 80)} is shown")
    if "text_gone" in spec:
        said.append(f"the text {_quote(spec['text_gone'], 80)} is gone")
    if "selector" in spec:
        first = state.get("selector", {}).get("first", "an element")
        said.append(f"{_quote(spec['selector'], 80)} shows {first}")
    if "url_contains" in spec:
        said.append(f"the URL contains {_quote(spec['url_contains'], 80)}")
    return said


def _timeout_message(spec: dict[str, str], state: dict[str, Any], timeout: float) -> str:
    """One sentence: what did not happen, what the page showed instead, what to do."""
    missing = []
    if state.get("text") is False:
        missing.append(f"the text {_quote(spec['text'], 80)} never appeared")
    if state.get("text_gone") is False:
        missing.append(f"the text {_quote(spec['text_gone'], 80)} is still shown")
    if "selector" in spec and "selector" in state and not state["selector"].get("shown"):
        matches = int(state["selector"].get("matches", 0))
        selector = _quote(spec["selector"], 80)
        missing.append(
            f"nothing matches {selector}"
            if not matches
            else f"{selector} matches {matches} element{'s' * (matches > 1)} but none is shown"
        )
    if state.get("url_contains") is False:
        missing.append(f"the URL never contained {_quote(spec['url_contains'], 80)}")
    seen = f"the page is {_quote(state.get('title', ''), 60)} at {str(state.get('url', ''))[:200]}"
    if state.get("excerpt"):
        seen += f" showing {_quote(state['excerpt'], 160)}"
    return (
        f"Waited {timeout:g} s but {' and '.join(missing) or 'the conditions did not hold'}: {seen}; "
        "wait longer or check the page with snapshot."
    )
