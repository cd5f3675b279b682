"""Browse a session's page: navigate, and read the page as text.

Works against both backends, on a ``Page`` however it was reached (``page.py``).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .cdp import CDPError, CDPException, CDPTimeout
from .page import NoPage, Page, PageError

DEFAULT_NAVIGATION_TIMEOUT = 30.0
DEFAULT_READ_BUDGET = 8000


class BrowsingError(PageError):
    """Base class: a browsing action could not be done (the message says why and what to try)."""


class InvalidURL(BrowsingError, ValueError):
    """The URL is not an absolute http(s) URL."""


class NavigationFailed(BrowsingError):
    """The browser could not load the URL; ``error_text`` is Chromium's reason (net::ERR_…)."""

    def __init__(self, url: str, error_text: str) -> None:
        self.url = url
        self.error_text = error_text
        hint = _NET_ERROR_HINTS.get(error_text, "")
        super().__init__(f"could not load {url}: {error_text}{hint}")


class NavigationTimeout(BrowsingError, TimeoutError):
    """The page did not finish loading in time (it may still be usable)."""


_NET_ERROR_HINTS = {
    "net::ERR_CONNECTION_REFUSED": " (nothing is listening at that address)",
    "net::ERR_NAME_NOT_RESOLVED": " (the host name does not resolve)",
    "net::ERR_INTERNET_DISCONNECTED": " (the browser has no network)",
    "net::ERR_ADDRESS_UNREACHABLE": " (the address is unreachable)",
    "net::ERR_CONNECTION_TIMED_OUT": " (the server did not answer)",
    "net::ERR_UNSAFE_PORT": " (browsers refuse that port)",
    "net::ERR_ABORTED": " (the load was cancelled, e.g. by a download or another navigation)",
}


@dataclass(frozen=True)
class NavigationResult:
    """Where the page ended up: final URL (after redirects), title, HTTP status of the document."""

    url: str
    title: str
    status: int | None


@dataclass(frozen=True)
class PageText:
    """A slice of the page's visible text; ``next_offset`` is where to continue, None at the end."""

    url: str
    title: str
    text: str
    offset: int
    total_chars: int
    next_offset: int | None


def check_http_url(url: str) -> str:
    """Refuse anything but an absolute http(s) URL (no file:, javascript:, chrome:, data:)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise InvalidURL(f"{url[:200]!r} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidURL(
            f"{url[:200]!r} is not an http(s) URL; give a full address like https://example.com/"
        )
    return url.strip()


async def navigate(page: Page, url: str, *, timeout: float = DEFAULT_NAVIGATION_TIMEOUT) -> NavigationResult:
    """Load ``url`` in the session's page and wait for its load event.

    Raises InvalidURL before connecting for a non-http(s) URL, NavigationFailed when
    Chromium cannot load it (refused, unresolvable, …) and NavigationTimeout when the
    load event does not come within ``timeout`` seconds.
    """
    target_url = check_http_url(url)
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    await page.send("Page.enable", timeout=left())
    await page.send("Page.setLifecycleEventsEnabled", {"enabled": True}, timeout=left())
    await page.send("Network.enable", timeout=left())
    with page.listen("Page.lifecycleEvent", "Network.responseReceived") as events:
        try:
            started = await page.send("Page.navigate", {"url": target_url}, timeout=left())
        except CDPError as exc:
            raise NavigationFailed(target_url, exc.message) from None
        if started.get("errorText"):
            raise NavigationFailed(target_url, str(started["errorText"]))
        if started.get("isDownload"):
            raise NavigationFailed(target_url, "the address is a file download, not a page")
        loader_id = started.get("loaderId")
        frame_id = started.get("frameId")
        status: int | None = None
        # A same-document navigation (only the #fragment changed) has no loader and no load event.
        while loader_id:
            try:
                event = await events.get(timeout=deadline - time.monotonic())
            except CDPTimeout:
                raise NavigationTimeout(f"{target_url} did not finish loading within {timeout:g} s") from None
            params = event.params
            if params.get("loaderId") != loader_id or params.get("frameId") != frame_id:
                continue
            if event.method == "Network.responseReceived" and params.get("type") == "Document":
                raw_status = params.get("response", {}).get("status")
                status = int(raw_status) if isinstance(raw_status, (int, float)) else None
            elif event.method == "Page.lifecycleEvent" and params.get("name") == "load":
                break
    with contextlib.suppress(CDPException):
        await page.send("Network.disable", timeout=5)
    where = await page.evaluate("({url: location.href, title: document.title})", timeout=left())
    return NavigationResult(url=str(where.get("url", "")), title=str(where.get("title", "")), status=status)


# Visible text, read the way a person scans a page: innerText already drops hidden
# elements and script/style; keep line breaks, squeeze runs of blanks.
_READ_SCRIPT = """(() => {
  const body = document.body;
  return {url: location.href, title: document.title, text: body ? body.innerText : ""};
})()"""
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def collapse_whitespace(text: str) -> str:
    """Squeeze spaces inside lines, trim lines, keep at most one empty line between blocks."""
    lines = (
        _SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def slice_text(text: str, offset: int, max_chars: int) -> tuple[str, int | None]:
    """Up to ``max_chars`` from ``offset``, ending at a word boundary when one is near the end."""
    end = offset + max_chars
    if end >= len(text):
        return text[offset:], None
    cut = max(text.rfind(" ", offset, end), text.rfind("\n", offset, end))
    if cut > offset + max_chars * 4 // 5:  # only when it costs at most a fifth of the budget
        end = cut + 1
    return text[offset:end], end


async def read_page(
    page: Page,
    *,
    offset: int = 0,
    max_chars: int = DEFAULT_READ_BUDGET,
    timeout: float = 30.0,
) -> PageText:
    """The visible text of the session's page, ``max_chars`` at a time from ``offset``."""
    if offset < 0:
        raise ValueError("offset must be 0 or more")
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    found = await page.evaluate(_READ_SCRIPT, timeout=timeout)
    text = collapse_whitespace(str(found.get("text") or ""))
    start = min(offset, len(text))
    chunk, next_offset = slice_text(text, start, max_chars)
    return PageText(
        url=str(found.get("url", "")),
        title=str(found.get("title", "")),
        text=chunk,
        offset=start,
        total_chars=len(text),
        next_offset=next_offset,
    )


__all__ = [
    "DEFAULT_NAVIGATION_TIMEOUT",
    "DEFAULT_READ_BUDGET",
    "BrowsingError",
    "InvalidURL",
    "NavigationFailed",
    "NavigationResult",
    "NavigationTimeout",
    "NoPage",
    "PageText",
    "check_http_url",
    "collapse_whitespace",
    "read_page",
    "slice_text",
]
