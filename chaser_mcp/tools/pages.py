"""The browsing tools: open a page in a session and read it, over the session's CDP websocket.

They complete the workflows the session API alone cannot (a screenshot check has
to open the page first). Thin, like the session tools: look the session up through
the API for its ``cdp_url``, call ``browsing``, shape the result.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ..config import Settings
from ._common import CHANGE, COMPACT, READ, ConversationOf, SessionId, SessionPages, add_tool

__all__ = ["PageTools"]

READ_BUDGET = 8000


class PageVisit(BaseModel):
    model_config = COMPACT

    session_id: str
    url: str = Field(description="Final URL, after redirects")
    title: str
    status: int | None = Field(description="HTTP status of the page's document")


class PageRead(BaseModel):
    model_config = COMPACT

    session_id: str
    url: str
    title: str
    text: str = Field(description="Visible text of the page, from offset")
    offset: int
    total_chars: int
    next_offset: int | None = Field(description="Pass as offset to read on; null at the end")


class PageTools:
    """navigate and read_page, bound to one server's settings and conversations."""

    def __init__(self, settings: Settings, conversation_of: ConversationOf, pages: SessionPages) -> None:
        self._settings = settings
        self._conversation_of = conversation_of
        self._pages = pages

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.navigate, "Open a page", CHANGE)
        add_tool(server, self.read_page, "Read the page", READ)

    async def navigate(
        self,
        ctx: Context,
        session_id: SessionId,
        url: Annotated[str, Field(min_length=1, max_length=8192, description="http(s) URL to open")],
    ) -> PageVisit:
        """Open a URL in the session's browser and wait for it to load."""
        # Imported on use: browsing loads the CDP client and websockets, which a server start-up
        # (and every conversation that never browses) should not pay for.
        from ..browser.browsing import InvalidURL, check_http_url, navigate
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        try:
            check_http_url(url)  # refused before any request is sent
        except InvalidURL as exc:
            raise ToolError(f"{exc}. Nothing was sent; call navigate again with an http(s) URL.") from exc
        conversation = await self._conversation_of(ctx)
        try:
            async with self._pages.open(conversation, session_id) as page:
                visit = await navigate(page, url, timeout=self._settings.timeout)
        except (PageError, CDPException) as exc:
            raise ToolError(f"Could not open {url[:200]} in {session_id}: {exc}") from exc
        return PageVisit(session_id=session_id, url=visit.url, title=visit.title, status=visit.status)

    async def read_page(
        self,
        ctx: Context,
        session_id: SessionId,
        offset: Annotated[int, Field(ge=0, description="Character to start from (next_offset)")] = 0,
    ) -> PageRead:
        """Read the visible text of the session's current page, a chunk at a time."""
        from ..browser.browsing import read_page  # on use, as in navigate
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        conversation = await self._conversation_of(ctx)
        try:
            async with self._pages.open(conversation, session_id) as page:
                text = await read_page(
                    page, offset=offset, max_chars=READ_BUDGET, timeout=self._settings.timeout
                )
        except (PageError, CDPException) as exc:
            raise ToolError(f"Could not read the page of {session_id}: {exc}") from exc
        return PageRead(session_id=session_id, **asdict(text))
