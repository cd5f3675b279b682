"""The ``act`` tool: one tool for every interaction with a session's page.

Thin: check the request (``browser.act_request``, before anything is sent), reach the page
through ``SessionPages``, run ``browser.actions.act``, answer its short text. Every failure a
model reads is one sentence saying what went wrong and what to do next.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..browser.act_request import ActionInputError, ActionName, check_request
from ..config import Settings
from ._common import CHANGE, ConversationOf, SessionId, SessionPages, add_tool
from ._params import lean_optional

__all__ = ["ActTools"]


class ActTools:
    """act, bound to one server's settings and conversations."""

    def __init__(self, settings: Settings, conversation_of: ConversationOf, pages: SessionPages) -> None:
        self._settings = settings
        self._conversation_of = conversation_of
        self._pages = pages

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.act, "Act on the page", CHANGE, text_only=True)

    async def act(
        self,
        ctx: Context,
        session_id: SessionId,
        action: ActionName,
        target: Annotated[
            str, Field(description="Ref or CSS selector", json_schema_extra=lean_optional)
        ] = "",
        value: Annotated[
            str | None, Field(description="Text, option, key or direction", json_schema_extra=lean_optional)
        ] = None,
    ) -> str:
        """Act on the page like a person with a phone."""
        # Imported on use: the CDP client loads only for conversations that browse.
        from ..browser.actions import act
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        try:
            request = check_request(action, target, value)
        except ActionInputError as exc:
            raise ToolError(str(exc)) from exc
        conversation = await self._conversation_of(ctx)
        async with self._pages.open_link(conversation, session_id) as link:
            try:
                return await act(link, request, timeout=self._settings.timeout)
            except PageError as exc:  # one sentence; the page agent's may start with a role ("button …")
                message = str(exc)
                raise ToolError(message[:1].upper() + message[1:]) from exc
            except CDPException as exc:
                raise ToolError(f"Could not {action} in {session_id}: {exc}; try again.") from exc
