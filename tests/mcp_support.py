"""Shared harness for the MCP-level tests: a real server on a FakeChaser, reached through the SDK's Client.

``running_server`` builds what ``chaser_mcp.cli.run`` builds (settings, one API client, the conversation
registry, the MCP server) but with fast retries and short waits, so failure tests stay quick. Tests talk
to it through ``mcp.Client`` in memory, or spawn the real ``python -m chaser_mcp`` over stdio with
``stdio_params``. The helpers below read tool results the way a model would see them.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import BlobResourceContents, CallToolResult, ImageContent, TextContent

from chaser_mcp import user_agent
from chaser_mcp.api import ChaserClient
from chaser_mcp.config import Settings
from chaser_mcp.conversations import Conversations
from chaser_mcp.server import ServerState, build_server
from tests.fake_chaser import DEFAULT_KEY, FakeChaser

Mode = Literal["legacy", "auto"]
MODES: tuple[Mode, ...] = ("legacy", "auto")
REPO = Path(__file__).resolve().parent.parent

TOOL_NAMES = (
    "create_session",
    "delete_session",
    "get_preview_link",
    "get_session",
    "list_sessions",
    "take_screenshot",
)
# Tools that take a session id, with the other arguments a valid call needs.
SESSION_ID_TOOLS: dict[str, dict[str, Any]] = {
    "get_session": {},
    "delete_session": {"force": True},
    "take_screenshot": {},
    "get_preview_link": {},
}


def fast_settings(base_url: str, *, api_key: str | None = DEFAULT_KEY, **changes: Any) -> Settings:
    """Settings for tests: short request and ready timeouts, quiet logs, no crash journal, no grace."""
    settings = Settings.model_validate(
        {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": 3.0,
            "ready_timeout": 5.0,
            "cleanup_timeout": 3.0,
            "log_level": "WARNING",
            "journal_enabled": False,
            # Sessions are deleted the moment a conversation ends: the tests about the reconnect
            # grace (test_reconnect_grace.py) turn it on.
            "reconnect_grace": 0,
        }
    )
    return settings.with_(**changes)


@dataclass
class Harness:
    """One server process's worth of state, on one FakeChaser."""

    fake: FakeChaser
    settings: Settings
    state: ServerState
    server: MCPServer

    def connect(self, mode: Mode) -> Client:
        """An in-memory client; ``legacy`` speaks the initialize handshake, ``auto`` 2026-07-28."""
        return Client(self.server, mode=mode)


@asynccontextmanager
async def running_server(
    fake: FakeChaser, *, api_key: str | None = DEFAULT_KEY, **settings_changes: Any
) -> AsyncIterator[Harness]:
    """A server wired like ``cli.run`` wires one, ended (sessions cleaned up) on exit."""
    settings = fast_settings(fake.url, api_key=api_key, **settings_changes)
    client = ChaserClient(
        settings.api_key,
        base_url=settings.base_url,
        timeout=settings.timeout,
        user_agent=user_agent(),
        # Millisecond backoffs: a test of a persistent 503 or 429 sits through every retry.
        backoff_base=0.01,
        backoff_max=0.05,
        retry_after_cap=0.2,
    )
    conversations = Conversations(cleanup_timeout=settings.cleanup_timeout)
    state = ServerState(settings, client, conversations)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.viewers.run)  # the live viewer's loopback port, as over stdio
            yield Harness(fake, settings, state, build_server(state))
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await conversations.end_all("test finished")
            await client.aclose()


def stdio_params(
    base_url: str, *, api_key: str | None = DEFAULT_KEY, **extra_env: str
) -> StdioServerParameters:
    """``python -m chaser_mcp`` as a client launches it: configuration only through the environment."""
    env = {"CHASER_BASE_URL": base_url, "CHASER_JOURNAL": "off", "CHASER_LOG_LEVEL": "WARNING"}
    if api_key is not None:
        env["CHASER_KEY"] = api_key
    env.update(extra_env)
    return StdioServerParameters(command=sys.executable, args=["-m", "chaser_mcp"], env=env, cwd=str(REPO))


# -- reading results ------------------------------------------------------------------------------


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


def text_of(result: CallToolResult) -> str:
    return "\n".join(texts(result))


def images(result: CallToolResult) -> list[ImageContent]:
    return [block for block in result.content if isinstance(block, ImageContent)]


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful call (fails the test, showing the text, otherwise)."""
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None, text_of(result)
    return content


def error_text(result: CallToolResult) -> str:
    """The text of a failed call (fails the test if the call succeeded)."""
    assert result.is_error, f"expected an error, got {result.structured_content or text_of(result)}"
    return text_of(result)


async def read_blob(client: Client, uri: str) -> tuple[bytes, str | None]:
    """A blob resource's bytes and MIME type."""
    result = await client.read_resource(uri)
    [content] = result.contents
    assert isinstance(content, BlobResourceContents)
    return base64.b64decode(content.blob, validate=True), content.mime_type


def image_bytes(block: ImageContent) -> bytes:
    return base64.b64decode(block.data, validate=True)


def sniff_mime(data: bytes) -> str | None:
    """The MIME type the bytes' own signature declares, or None when it is not a PNG, JPEG or WebP."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def session_ids(listing: dict[str, Any]) -> list[str]:
    return [s["id"] for s in listing["sessions"]]


async def wait_until(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await anyio.sleep(0.02)


class ManualClock:
    """A monotonic clock that moves only when a test says so: idle and lease rules are tested by
    advancing it, never by sleeping."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
