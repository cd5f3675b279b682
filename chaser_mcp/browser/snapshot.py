"""The page as a compact outline for a model (``snapshot``), and the few elements matching a query
(``find``), both computed by the page agent (``js/10-snapshot.js``).

Paging: an answer holds at most ``SNAPSHOT_BUDGET`` characters, cut at line boundaries. The
whole outline stays in the page (the agent keeps the last few), so a cursor continues exactly
the outline it came from, whichever connection asks, even if the page moved on in between; a
cursor from an earlier document (the agent's ref tag changed) or one whose outline was dropped
is an error that says to take a new snapshot. The cursor is ``<tag>.<outline>.<line>``: opaque
to a model, checked here before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from json import dumps
from typing import TYPE_CHECKING, Any, Literal

from .page import PageError

if TYPE_CHECKING:
    from .page import Page

__all__ = [
    "FIND_LIMIT",
    "SNAPSHOT_BUDGET",
    "BadCursor",
    "Cursor",
    "Scope",
    "Snapshot",
    "find",
    "parse_cursor",
    "snapshot",
]

SNAPSHOT_BUDGET = 24_000
FIND_LIMIT = 10
# Room kept at the end of a page for the next_cursor line.
_FOOTER_RESERVE = 100
_CURSOR = re.compile(r"^([a-z]{2})\.([0-9]{1,9})\.([0-9]{1,9})$")

Scope = Literal["interactive", "all"]


class BadCursor(PageError, ValueError):
    """The cursor is not one a snapshot answered."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page of a kept outline starts: the document's ref tag, the outline, the line."""

    tag: str
    outline: int
    line: int

    def __str__(self) -> str:
        return f"{self.tag}.{self.outline}.{self.line}"


def parse_cursor(text: str) -> Cursor:
    """A cursor from its text; ``BadCursor`` if it is not one a snapshot gave."""
    match = _CURSOR.match(text.strip())
    if not match:
        raise BadCursor(
            f"{text[:40]!r} is not a cursor from snapshot; pass the next_cursor of the previous answer "
            "exactly, or leave cursor out for a new snapshot."
        )
    return Cursor(match.group(1), int(match.group(2)), int(match.group(3)))


@dataclass(frozen=True)
class Snapshot:
    """One page of an outline: ``text`` is the whole answer (header, lines, next_cursor line)."""

    text: str
    url: str
    title: str
    lines: int
    total_lines: int
    next_cursor: str | None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(url: str, title: str, *, continued: bool) -> str:
    """``page "Title" URL``: the same shape as every line below it."""
    head = f"page {dumps(_clip(title, 100), ensure_ascii=False)} {_clip(url, 300)}"
    return head + " (continued)" if continued else head


async def snapshot(
    page: Page,
    *,
    scope: Scope = "interactive",
    cursor: str | None = None,
    budget: int = SNAPSHOT_BUDGET,
    timeout: float,
) -> Snapshot:
    """The outline of the page (``scope``), or the page of a kept outline that ``cursor`` names."""
    position = parse_cursor(cursor) if cursor else None
    # The header's length is only known once the page answers; its URL and title are clipped,
    # so this bound holds: 5 + 2 + 100*6 (escaped) + 1 + 300 + len(" (continued)").
    lines_budget = budget - 930 - _FOOTER_RESERVE
    if position is None:
        found = await page.call_agent("snapshot", scope, lines_budget, timeout=timeout)
    else:
        found = await page.call_agent(
            "snapshotPage", position.tag, position.outline, position.line, lines_budget, timeout=timeout
        )
    return _shape(found)


def _shape(found: dict[str, Any]) -> Snapshot:
    url, title = str(found["url"]), str(found["title"])
    lines = [str(line) for line in found["lines"]]
    start, total = int(found["start"]), int(found["total"])
    parts = [_header(url, title, continued=start > 0)]
    if total == 0:
        parts.append(
            "(nothing to act on here; try scope=all for the text)"
            if found.get("scope") != "all"
            else "(the page shows nothing)"
        )
    parts.extend(lines)
    next_cursor = None
    if found.get("next") is not None:
        next_line = int(found["next"])
        next_cursor = str(Cursor(str(found["tag"]), int(found["id"]), next_line))
        parts.append(f"next_cursor: {next_cursor} ({total - next_line} more lines; pass it as cursor)")
    return Snapshot(
        text="\n".join(parts),
        url=url,
        title=title,
        lines=len(lines),
        total_lines=total,
        next_cursor=next_cursor,
    )


async def find(page: Page, query: str, *, role: str | None = None, timeout: float) -> str:
    """The few elements (at most ``FIND_LIMIT``) whose name or text contains ``query``, as lines
    with refs; no match is an answer saying so (and what else matched when ``role`` filtered it out)."""
    found = await page.call_agent("find", query, role, FIND_LIMIT, timeout=timeout)
    lines = [str(line) for line in found["lines"]]
    total = int(found["total"])
    quoted = _quote(query)
    what = f"{role} " if role else ""
    if not lines:
        others = [str(line) for line in found.get("others") or []]
        if not others:
            return (
                f"Nothing on the page matches {quoted}; try a shorter or different word, or take a snapshot."
            )
        unshown = int(found.get("others_total") or 0) - len(others)
        tail = [f"(+{unshown} more)"] if unshown > 0 else []
        return "\n".join([f"No {what.strip()} matches {quoted}; other elements do:", *others, *tail])
    more = total - len(lines)
    head = f"{total} {what}match{'es' if total != 1 else ''} for {quoted}" + (
        f" (first {len(lines)}; add role or a longer query to narrow):" if more else ":"
    )
    return "\n".join([head, *lines])


def _quote(text: str) -> str:
    return dumps(_clip(text, 80), ensure_ascii=False)
