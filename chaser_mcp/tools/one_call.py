"""One-call tools: ``screenshot_url`` and ``read_url`` each create a session, open the page, capture or
read it, and delete the session before answering.

For clients that open a new MCP session for every exchange and so lose any session they made,
and for a quick look that should never cost a forgotten session. The session lives only inside
``SessionLifecycle.temporary``: it is deleted however the call ends, an answer, an error or the
client cancelling, and a delete that fails is retried as a pending delete. A URL that is not
http(s) is refused before anything is created.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..config import Settings
from ..conversations import Conversations
from ._common import CHANGE, ConversationOf, SessionPages, add_tool
from ._lifecycle import SessionLifecycle
from .pages import READ_BUDGET
from .screenshots import (
    FullPage,
    ImageFormatParam,
    ScaleParam,
    ScreenshotBlocks,
    browser_capture,
    describe,
    image_answer,
)

if TYPE_CHECKING:
    from ..browser.browsing import NavigationResult
    from ..browser.page import Page

__all__ = ["OneCallTools"]

# Long enough for a slow start, a slow page and the capture; short enough that a session whose
# delete never gets through (API unreachable until exit) stops billing soon by itself.
TEMPORARY_TTL_SECONDS = 300

Url = Annotated[str, Field(min_length=1, max_length=8192, description="http(s) URL to open")]


class OneCallTools:
    """screenshot_url and read_url, bound to one server's settings and conversations."""

    def __init__(
        self,
        settings: Settings,
        conversations: Conversations,
        conversation_of: ConversationOf,
        pages: SessionPages,
    ) -> None:
        self._settings = settings
        self._conversation_of = conversation_of
        self._pages = pages
        self._life = SessionLifecycle(settings, conversations)

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.screenshot_url, "Screenshot a URL", CHANGE)
        add_tool(server, self.read_url, "Read a URL", CHANGE, text_only=True)

    async def screenshot_url(
        self,
        ctx: Context,
        url: Url,
        full_page: FullPage = False,
        image_format: ImageFormatParam = "auto",
        scale: ScaleParam = "css",
    ) -> ScreenshotBlocks:
        """Screenshot a URL in a new session that is deleted before answering."""
        async with self._page_at(ctx, url) as (page, visit):
            shot = await browser_capture(
                page,
                self._settings,
                where=visit.url[:200],
                full_page=full_page,
                image_format=image_format,
                scale=scale,
            )
        caption = f"{visit.url} ({_quote(visit.title)}), {describe(shot)}; the session was deleted"
        return image_answer(caption, shot.data, shot.mime_type)

    async def read_url(
        self,
        ctx: Context,
        url: Url,
        offset: Annotated[int, Field(ge=0, description="next_offset, to read on")] = 0,
    ) -> str:
        """Read a URL's text in a new session that is deleted before answering."""
        from ..browser.browsing import read_page
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        async with self._page_at(ctx, url) as (page, visit):
            try:
                text = await read_page(
                    page, offset=offset, max_chars=READ_BUDGET, timeout=self._settings.timeout
                )
            except (PageError, CDPException) as exc:
                raise ToolError(f"Could not read {visit.url[:200]}: {exc}") from exc
        end = text.offset + len(text.text)
        more = f"next_offset={text.next_offset}" if text.next_offset is not None else "the end"
        status = f", HTTP {visit.status}" if visit.status else ""
        return (
            f"{_quote(text.title)} at {text.url}{status}, characters {text.offset}-{end} of "
            f"{text.total_chars} ({more}):\n{text.text}"
        )

    @contextlib.asynccontextmanager
    async def _page_at(self, ctx: Context, url: str) -> AsyncIterator[tuple[Page, NavigationResult]]:
        """A temporary session's page, showing ``url``; the session is gone when the block ends."""
        from ..browser.browsing import InvalidURL, check_http_url, navigate
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        try:
            checked = check_http_url(url)  # refused before anything is created
        except InvalidURL as exc:
            raise ToolError(f"{exc}. Nothing was created; call again with an http(s) URL.") from exc
        conversation = await self._conversation_of(ctx)
        async with (
            self._life.temporary(ctx, conversation, ttl_seconds=TEMPORARY_TTL_SECONDS) as session_id,
            self._pages.open(conversation, session_id) as page,
        ):
            await ctx.report_progress(0, None, f"opening {checked[:200]}")
            try:
                visit = await navigate(page, checked, timeout=self._settings.timeout)
            except (PageError, CDPException) as exc:
                raise ToolError(f"Could not open {checked[:200]}: {exc}") from exc
            yield page, visit


def _quote(title: str) -> str:
    return json.dumps(" ".join(title.split())[:120], ensure_ascii=False)
