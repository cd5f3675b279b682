"""The ``wait_for`` tool: hold until the page shows what the agent expects (``browser/waiting.py``).

For pages that render after their load event (a single-page app, results that arrive later):
one call instead of a loop of snapshots. Answers one short line either way.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..config import Settings
from ._common import READ, ConversationOf, SessionId, SessionPages, add_tool
from ._params import OptionalText

__all__ = ["WaitTools"]


class WaitTools:
    """wait_for, bound to one server's settings and conversations."""

    def __init__(self, settings: Settings, conversation_of: ConversationOf, pages: SessionPages) -> None:
        self._settings = settings
        self._conversation_of = conversation_of
        self._pages = pages

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.wait_for, "Wait for the page", READ, text_only=True)

    async def wait_for(
        self,
        ctx: Context,
        session_id: SessionId,
        text: OptionalText = "",
        text_gone: OptionalText = "",
        selector: Annotated[OptionalText, Field(description="CSS, to be shown")] = "",
        url_contains: OptionalText = "",
        timeout_seconds: Annotated[float, Field(ge=0.1, le=60)] = 10,
    ) -> str:
        """Wait until all given conditions hold on the page (text ignores case)."""
        from ..browser.agent import AgentError
        from ..browser.cdp import CDPException
        from ..browser.page import PageError
        from ..browser.waiting import Conditions, WaitTimeout, wait_for

        try:
            conditions = Conditions(
                text=text or None,
                text_gone=text_gone or None,
                selector=selector or None,
                url_contains=url_contains or None,
            )
        except ValueError:
            raise ToolError(
                "Nothing to wait for: give at least one of text, text_gone, selector or url_contains."
            ) from None
        conversation = await self._conversation_of(ctx)
        try:
            async with self._pages.open(conversation, session_id) as page:
                waited = await wait_for(page, conditions, timeout=timeout_seconds)
        except (WaitTimeout, AgentError) as exc:
            raise ToolError(str(exc)) from exc
        except (PageError, CDPException) as exc:
            raise ToolError(f"Could not wait on the page of {session_id}: {exc}") from exc
        return waited.summary()
