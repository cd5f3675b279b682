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
from ..conversations import Conversation
from ._common import CHANGE, COMPACT, READ, ConversationOf, SessionId, add_tool, call_api

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

    def __init__(self, settings: Settings, conversation_of: ConversationOf) -> None:
        self._settings = settings
        self._conversation_of = conversation_of

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
        from ..browser.browsing import BrowsingError, InvalidURL, check_http_url, navigate
        from ..browser.cdp import CDPException

        try:
            check_http_url(url)  # refused before any request is sent
        except InvalidURL as exc:
            raise ToolError(f"{exc}. Nothing was sent; call navigate again with an http(s) URL.") from exc
        conversation = self._conversation_of(ctx)
        cdp_url, headers = await self._cdp_target(conversation, session_id)
        try:
            visit = await navigate(cdp_url, url, headers=headers, timeout=self._settings.timeout)
        except (BrowsingError, CDPException) as exc:
            raise ToolError(f"Could not open {url[:200]} in {session_id}: {exc}") from exc
        return PageVisit(session_id=session_id, url=visit.url, title=visit.title, status=visit.status)

    async def read_page(
        self,
        ctx: Context,
        session_id: SessionId,
        offset: Annotated[int, Field(ge=0, description="Character to start from (next_offset)")] = 0,
    ) -> PageRead:
        """Read the visible text of the session's current page, a chunk at a time."""
        from ..browser.browsing import BrowsingError, read_page  # on use, as in navigate
        from ..browser.cdp import CDPException

        conversation = self._conversation_of(ctx)
        cdp_url, headers = await self._cdp_target(conversation, session_id)
        try:
            page = await read_page(
                cdp_url, headers=headers, offset=offset, max_chars=READ_BUDGET, timeout=self._settings.timeout
            )
        except (BrowsingError, CDPException) as exc:
            raise ToolError(f"Could not read the page of {session_id}: {exc}") from exc
        return PageRead(session_id=session_id, **asdict(page))

    async def _cdp_target(self, conversation: Conversation, session_id: str) -> tuple[str, dict[str, str]]:
        """The session's CDP URL, and the headers its websocket handshake needs."""
        session = await call_api(
            conversation.api.get_session(session_id), base_url=self._settings.base_url, session_id=session_id
        )
        if session.status != "ready" or not session.cdp_url:
            raise ToolError(
                f"Session {session_id} is {session.status}, not ready: "
                + (
                    "wait a few seconds and try again."
                    if session.status == "creating"
                    else "create a new session with create_session."
                )
            )
        headers: dict[str, str] = {}
        # The cloud's CDP endpoint wants the API key; only ever send it over TLS.
        if session.cdp_url.startswith("wss://") and conversation.api.api_key:
            headers["Authorization"] = f"Bearer {conversation.api.api_key}"
        return session.cdp_url, headers
