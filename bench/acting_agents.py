"""Two agents acting on a page, each with its own server's tools: chaser-mcp and Playwright MCP.

An agent does what a model connected to that server would do (open a page, take a snapshot, read the refs
out of it, fill, tap), and records every answer it receives: the tool, the seconds, and the bytes. The
bytes that count are the text of the answer's content blocks, what a model reads and a user pays for; the
whole result as JSON on the wire (with any structured copy) is recorded beside it.

Refs are read out of the answer text with a regex (``[ref=…]``, the notation both servers use), never by
position, so a change in either server's outline format changes the numbers, not the harness.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp.types import CallToolResult, TextContent

from bench.bench_vs_playwright_mcp import CHASER, Connected

REF = re.compile(r"\[ref=([A-Za-z0-9_-]+)\]")
NEXT_CURSOR = re.compile(r"next_cursor:\s*(\S+)")
MAX_SNAPSHOT_PAGES = 50  # a guard against a cursor that never ends, far above any page here


@dataclass(frozen=True)
class Answer:
    """One tool call as the agent saw it."""

    tool: str
    seconds: float
    text: str
    wire_bytes: int

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode())


@dataclass(frozen=True)
class Field:
    """A form field as an agent finds it in a snapshot: by role and accessible name."""

    roles: tuple[str, ...]
    name: str


def ref_for(text: str, field: Field) -> str:
    """The ref on the first line that names ``field`` (its name, and one of its roles, case-insensitive)."""
    name = field.name.lower()
    for line in text.splitlines():
        found = REF.search(line)
        low = line.lower()
        if found and name in low and any(role in low for role in field.roles):
            return found.group(1)
    raise LookupError(f"no {'/'.join(field.roles)} named {field.name!r} with a ref in: {text[:400]!r}")


def answer_text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


class Agent:
    """What every agent has: one connected server and the log of the answers it got."""

    def __init__(self, server: Connected) -> None:
        self.server = server
        self.name = server.spec.name
        self.answers: list[Answer] = []
        self.last_taken: list[Answer] = []

    async def call(self, tool: str, arguments: dict[str, Any]) -> Answer:
        started = time.perf_counter()
        result = await self.server.call(tool, arguments)
        elapsed = time.perf_counter() - started
        wire = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
        answer = Answer(tool, elapsed, answer_text(result), wire)
        self.answers.append(answer)
        return answer

    def take(self) -> list[Answer]:
        """The answers since the last ``take`` (so setup calls can be left out of a measurement)."""
        self.last_taken, self.answers = self.answers, []
        return self.last_taken

    async def open(self, url: str) -> Answer:
        raise NotImplementedError

    async def snapshot(self) -> str:
        raise NotImplementedError

    async def find(self, query: str) -> Answer:
        raise NotImplementedError

    async def tap(self, ref: str) -> Answer:
        raise NotImplementedError

    async def fill(self, ref: str, value: str) -> Answer:
        raise NotImplementedError

    async def wait_for_text(self, text: str) -> Answer:
        raise NotImplementedError

    async def fill_form(self, fields: Sequence[tuple[str, str, str]]) -> None:
        """Fill several fields given as (name, ref, value) in as few calls as the server allows."""
        raise NotImplementedError


class ChaserAgent(Agent):
    """chaser-mcp: ``navigate``, ``snapshot`` (every page of it), ``find``, ``act``."""

    @property
    def session_id(self) -> str:
        assert self.server.session_id is not None
        return self.server.session_id

    async def open(self, url: str) -> Answer:
        return await self.call("navigate", {"session_id": self.session_id, "url": url})

    async def snapshot(self) -> str:
        """The whole interactive outline: a long page comes in pages; an agent reads them all."""
        texts: list[str] = []
        cursor: str | None = None
        for _ in range(MAX_SNAPSHOT_PAGES):
            arguments: dict[str, Any] = {"session_id": self.session_id, "scope": "interactive"}
            if cursor is not None:
                arguments["cursor"] = cursor
            text = (await self.call("snapshot", arguments)).text
            texts.append(text)
            more = NEXT_CURSOR.search(text)
            if more is None:
                return "\n".join(texts)
            cursor = more.group(1)
        raise RuntimeError(f"snapshot still had a next_cursor after {MAX_SNAPSHOT_PAGES} pages")

    async def find(self, query: str) -> Answer:
        return await self.call("find", {"session_id": self.session_id, "query": query})

    async def act(self, action: str, target: str, value: str | None = None) -> Answer:
        arguments: dict[str, Any] = {"session_id": self.session_id, "action": action, "target": target}
        if value is not None:
            arguments["value"] = value
        return await self.call("act", arguments)

    async def tap(self, ref: str) -> Answer:
        return await self.act("tap", ref)

    async def fill(self, ref: str, value: str) -> Answer:
        return await self.act("fill", ref, value)

    async def wait_for_text(self, text: str) -> Answer:
        return await self.call("wait_for", {"session_id": self.session_id, "text": text})

    async def fill_form(self, fields: Sequence[tuple[str, str, str]]) -> None:
        for _, ref, value in fields:  # one act per field: act has no multi-field form
            await self.fill(ref, value)


class PlaywrightAgent(Agent):
    """Playwright MCP: ``browser_navigate``, ``browser_snapshot``, ``browser_find``, ``browser_click``,
    ``browser_type``, ``browser_fill_form``. Its navigate and click answers link the snapshot as a file
    (0.0.83), so a model that needs refs asks for ``browser_snapshot``."""

    async def open(self, url: str) -> Answer:
        return await self.call("browser_navigate", {"url": url})

    async def snapshot(self) -> str:
        return (await self.call("browser_snapshot", {})).text

    async def find(self, query: str) -> Answer:
        return await self.call("browser_find", {"text": query})

    async def tap(self, ref: str) -> Answer:
        return await self.call("browser_click", {"target": ref})

    async def fill(self, ref: str, value: str) -> Answer:
        return await self.call("browser_type", {"target": ref, "text": value})

    async def wait_for_text(self, text: str) -> Answer:
        return await self.call("browser_wait_for", {"text": text})

    async def fill_one_field_form(self, name: str, ref: str, value: str) -> Answer:
        await self.fill_form([(name, ref, value)])
        return self.answers[-1]

    async def fill_form(self, fields: Sequence[tuple[str, str, str]]) -> None:
        await self.call(
            "browser_fill_form",
            {
                "fields": [
                    {"target": ref, "name": name, "type": "textbox", "value": value}
                    for name, ref, value in fields
                ]
            },
        )


def agent_for(server: Connected) -> Agent:
    return ChaserAgent(server) if server.spec.name == CHASER else PlaywrightAgent(server)
