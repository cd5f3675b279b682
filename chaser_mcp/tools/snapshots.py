"""The outline tools: ``snapshot`` (the page as compact lines with refs) and ``find`` (the few
elements matching a query). Thin: check the input, reach the page through ``SessionPages``,
call ``browser.snapshot``, answer its text (the bytes an agent pays, so nothing else rides along).
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..config import Settings
from ._common import READ, ConversationOf, SessionId, SessionPages, add_tool

__all__ = ["SnapshotTools"]


class SnapshotTools:
    """snapshot and find, bound to one server's settings and conversations."""

    def __init__(self, settings: Settings, conversation_of: ConversationOf, pages: SessionPages) -> None:
        self._settings = settings
        self._conversation_of = conversation_of
        self._pages = pages

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.snapshot, "Outline the page", READ, text_only=True)
        add_tool(server, self.find, "Find on the page", READ, text_only=True)

    async def snapshot(
        self,
        ctx: Context,
        session_id: SessionId,
        scope: Annotated[
            Literal["interactive", "all"], Field(description="interactive: controls+headings; all: +text")
        ] = "interactive",
        cursor: Annotated[str, Field(max_length=40, description="next_cursor, to read on")] = "",
    ) -> str:
        """The page as an outline, one element a line; actionable ones carry [ref=…] for act."""
        # Imported on use, like every browser module: conversations that never browse skip them.
        from ..browser.cdp import CDPException
        from ..browser.page import PageError
        from ..browser.snapshot import BadCursor, parse_cursor, snapshot

        if cursor:
            try:
                parse_cursor(cursor)  # refused before the page is reached
            except BadCursor as exc:
                raise ToolError(str(exc)) from exc
        conversation = await self._conversation_of(ctx)
        try:
            async with self._pages.open(conversation, session_id) as page:
                outline = await snapshot(
                    page, scope=scope, cursor=cursor or None, timeout=self._settings.timeout
                )
        except (PageError, CDPException) as exc:
            raise ToolError(_failure("snapshot", session_id, exc)) from exc
        return outline.text

    async def find(
        self,
        ctx: Context,
        session_id: SessionId,
        query: Annotated[str, Field(min_length=1, max_length=200, description="Text to look for")],
        role: Annotated[str, Field(max_length=30, description="e.g. button, link, textbox")] = "",
    ) -> str:
        """Elements whose name or text contains query, with refs: cheaper than a snapshot."""
        from ..browser.cdp import CDPException
        from ..browser.page import PageError
        from ..browser.snapshot import find

        if not query.strip():
            raise ToolError("query is blank; pass the text to look for.")
        conversation = await self._conversation_of(ctx)
        try:
            async with self._pages.open(conversation, session_id) as page:
                return await find(page, query, role=role or None, timeout=self._settings.timeout)
        except (PageError, CDPException) as exc:
            raise ToolError(_failure("find", session_id, exc)) from exc


def _failure(tool: str, session_id: str, exc: Exception) -> str:
    """The agent's own sentences (stale cursor, …) are already what a model should read."""
    from ..browser.agent import AgentError

    if isinstance(exc, AgentError):
        return exc.message
    return f"Could not {tool} the page of {session_id}: {exc}"
