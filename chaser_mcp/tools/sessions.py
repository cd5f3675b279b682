"""The session tools: validate input, call the API client, shape the result.

Each tool is a thin method of ``SessionTools``; the API client does the HTTP, the
``Conversations`` registry does ownership, ``images`` fits screenshots, and
``errors.explain`` writes the sentence a model reads when something fails.
Input limits live in the signatures, so bad input is refused before any request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ..api import ChaserError, Session, SessionNotFound, SessionNotOpen
from ..config import Settings
from ..conversations import Conversation, Conversations
from ..viewer import Viewers, ViewerUnavailable
from ._common import (
    CHANGE,
    COMPACT,
    DESTROY,
    READ,
    BrowserUnreachable,
    ConversationOf,
    SessionId,
    SessionPages,
    StatusSeen,
    add_tool,
    api_error,
    call_api,
)
from ._lifecycle import SessionLifecycle
from .errors import MISSING_KEY, explain
from .screenshots import (
    FullPage,
    ImageFormatParam,
    MaxWidth,
    ScaleParam,
    ScreenshotBlocks,
    Shot,
    Target,
    browser_capture,
    describe,
)

if TYPE_CHECKING:  # images (and Pillow) and the browser load when a capture needs them
    from ..browser.capture import Scale
    from ..images import ImageFormat

__all__ = ["SessionInfo", "SessionList", "SessionTools"]

log = logging.getLogger("chaser_mcp.tools.sessions")

T = TypeVar("T")


class SessionInfo(Session):
    """A session as the API reports it, plus what this conversation knows about it."""

    model_config = COMPACT

    owned: bool = Field(description="Created by this conversation (deleted when it ends unless persisted)")
    persist: bool = Field(default=False, description="Kept running after this conversation ends")
    note: str | None = Field(default=None, description="What to do next, when there is something to do")


class SessionList(BaseModel):
    model_config = COMPACT

    sessions: list[SessionInfo]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")
    has_more: bool


class DeleteResult(BaseModel):
    model_config = COMPACT

    session_id: str
    outcome: Literal["deleted", "already_closed"]
    owned: bool


class PreviewLink(BaseModel):
    model_config = COMPACT

    session_id: str
    url: str = Field(description="Live view of the session's screen; give it to a person")
    expires_at: datetime | None
    input_enabled: bool = Field(description="Whether clicks and taps in the live view reach the session")
    fps: int | None


class SessionTools:
    """The six session tools, bound to one server's settings and conversations."""

    def __init__(
        self,
        settings: Settings,
        conversations: Conversations,
        conversation_of: ConversationOf,
        pages: SessionPages,
        viewers: Viewers,
        status_seen: StatusSeen | None = None,
    ) -> None:
        """``status_seen`` hears every status a tool learns of a session (the resources' notifications)."""
        self._settings = settings
        self._viewers = viewers
        self._base_url = settings.base_url
        self._conversations = conversations
        self._conversation_of = conversation_of
        self._pages = pages
        self._life = SessionLifecycle(settings, conversations)
        self._status_seen = status_seen

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.create_session, "Create browser session", CHANGE)
        add_tool(server, self.list_sessions, "List browser sessions", READ)
        add_tool(server, self.get_session, "Get browser session", READ)
        add_tool(server, self.delete_session, "Delete browser session", DESTROY)
        add_tool(server, self.take_screenshot, "Take screenshot", READ)
        add_tool(server, self.get_preview_link, "Get live preview link", CHANGE)  # mints a token

    # -- tools ------------------------------------------------------------------------------------

    async def create_session(
        self,
        ctx: Context,
        ttl_seconds: Annotated[int, Field(ge=60, le=3600, description="Lifetime in seconds")] = 1800,
        wait_until_ready: Annotated[bool, Field(description="Wait (~15-25 s) until it can be used")] = True,
        persist: Annotated[bool, Field(description="Keep it running after this conversation ends")] = False,
    ) -> SessionInfo:
        """Start a real mobile browser session (billed while open). It is deleted when this
        conversation ends unless persist is true; delete it yourself when done."""
        conversation = await self._conversation_of(ctx)
        session = await self._life.create(conversation, ttl_seconds=ttl_seconds, persist=persist)
        if wait_until_ready and session.status == "creating":
            try:
                session = await self._life.wait_until_ready(ctx, conversation, session)
            except BaseException:
                # Cancelled (or crashed) while waiting: nobody will ever learn this id.
                await self._conversations.discard(conversation, session.id)
                raise
        if session.status == "error":
            await self._life.delete_quietly(conversation, session.id)
            raise ToolError(
                f"Session {session.id} failed to start (ended_reason: {session.ended_reason or 'unknown'}) "
                "and was deleted. Call create_session again; if it keeps failing, check https://chaser.sh."
            )
        await self._seen(conversation, session.id, session.status)
        note = None
        if session.status == "creating":
            note = (
                f"Still creating after {self._settings.ready_timeout:g} s. Call get_session with this id "
                "in a few seconds; it is owned by this conversation and will be cleaned up with it."
                if wait_until_ready
                else "Creating; call get_session until status is 'ready' (usually 15-25 s)."
            )
        return self._info(conversation, session, note=note)

    async def list_sessions(
        self,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="Page size")] = 20,
        cursor: Annotated[
            str | None, Field(max_length=2048, description="next_cursor of a previous page")
        ] = None,
        owned_only: Annotated[bool, Field(description="Only sessions this conversation created")] = False,
    ) -> SessionList:
        """List sessions in the workspace, newest first, marking the ones this conversation owns."""
        conversation = await self._conversation_of(ctx)
        if owned_only:
            if not conversation.api.api_key:
                # Nothing to fetch, but an empty list would hide that no call can work yet.
                raise ToolError(MISSING_KEY)
            return await self.owned_sessions(conversation, limit)
        page = await call_api(
            conversation.api.list_sessions(limit=limit, cursor=cursor), base_url=self._base_url
        )
        for session in page.data:
            await self._seen(conversation, session.id, session.status)
        return SessionList(
            sessions=[self._info(conversation, s) for s in page.data],
            next_cursor=page.next_cursor,
            has_more=page.has_more,
        )

    async def get_session(self, ctx: Context, session_id: SessionId) -> SessionInfo:
        """Get a session's status, CDP URL, device and times."""
        conversation = await self._conversation_of(ctx)
        return await call_api(
            self.session_info(conversation, session_id), base_url=self._base_url, session_id=session_id
        )

    async def delete_session(
        self,
        ctx: Context,
        session_id: SessionId,
        force: Annotated[
            bool, Field(description="Also delete a session this conversation did not create")
        ] = False,
    ) -> DeleteResult:
        """Stop a session and its billing. Deleting one that already ended is not an error."""
        conversation = await self._conversation_of(ctx)
        owned = conversation.owns(session_id)
        if not owned and not force:
            raise ToolError(
                f"Session {session_id} was not created by this conversation, so it was not deleted. "
                "If the user really wants it stopped, call delete_session again with force=true."
            )
        stopped = await call_api(
            conversation.api.delete_session(session_id), base_url=self._base_url, session_id=session_id
        )
        await self._conversations.record_closed(conversation, session_id)
        await self._seen(conversation, session_id, "closed")
        log.info("conversation %s deleted %s (%s)", conversation.id, session_id, stopped)
        return DeleteResult(
            session_id=session_id, outcome="deleted" if stopped else "already_closed", owned=owned
        )

    async def take_screenshot(
        self,
        ctx: Context,
        session_id: SessionId,
        max_width: MaxWidth = None,
        image_format: ImageFormatParam = "auto",
        full_page: FullPage = False,
        target: Target = "",
        scale: ScaleParam = "css",
    ) -> ScreenshotBlocks:
        """Capture the screen, whole page or one element as an image within the size budget."""
        conversation = await self._conversation_of(ctx)
        if full_page and target:
            raise ToolError("Pass full_page or target, not both: the whole page already has every element.")
        shot = await self.screenshot(
            conversation,
            session_id,
            full_page=full_page,
            target=target or None,
            image_format=image_format,
            scale=scale,
            max_width=max_width,
        )
        return shot.blocks()

    async def get_preview_link(self, ctx: Context, session_id: SessionId) -> PreviewLink:
        """Mint a live-view link so a person can watch (and, if enabled, tap) the session."""
        # This server's own viewer (viewer/), on both backends: the page a person opens streams the
        # session over its cdp_url with this caller's key, which stays here. The cloud's own token is
        # a stream for its dashboard, which a person's browser cannot open.
        conversation = await self._conversation_of(ctx)
        session = await call_api(
            conversation.api.get_session(session_id), base_url=self._base_url, session_id=session_id
        )
        await self._seen(conversation, session_id, session.status)
        if session.status != "ready" or not session.cdp_url:
            raise ToolError(await self._not_ready_reason(conversation, session))
        try:
            link = await self._viewers.mint(session_id, conversation.api, conversation.principal)
        except ViewerUnavailable as exc:
            raise ToolError(f"The live viewer cannot be served here ({exc}); use take_screenshot.") from exc
        return PreviewLink(
            session_id=session_id,
            url=link.url,
            expires_at=link.expires_at,
            input_enabled=link.input_enabled,
            fps=link.fps,
        )

    # -- shared with the resources (resources.py) --------------------------------------------------

    async def session_info(self, conversation: Conversation, session_id: str) -> SessionInfo:
        """What ``get_session`` answers; raises the API's ``ChaserError``."""
        session = await conversation.api.get_session(session_id)
        if not session.is_open:
            await self._conversations.record_closed(conversation, session_id)
        await self._seen(conversation, session_id, session.status)
        return self._info(conversation, session)

    async def screenshot(
        self,
        conversation: Conversation,
        session_id: str,
        *,
        full_page: bool = False,
        target: str | None = None,
        image_format: ImageFormat = "auto",
        scale: Scale = "css",
        max_width: int | None = None,
    ) -> Shot:
        """What ``take_screenshot`` shows (its defaults are the resource's): captured by the browser
        over CDP (``capture.py``); the screen falls back to the API's PNG endpoint when the browser
        cannot be reached. Failures are a ToolError."""
        try:
            async with self._pages.open(conversation, session_id) as page:
                shot = await browser_capture(
                    page,
                    self._settings,
                    where=f"the page of {session_id}",
                    full_page=full_page,
                    target=target,
                    image_format=image_format,
                    scale=scale,
                    max_width=max_width,
                )
        except BrowserUnreachable as exc:
            if full_page or target:  # only the browser can capture those
                raise
            return await self._api_screen(conversation, session_id, image_format, max_width, exc)
        return Shot(f"Screenshot of {session_id}, {describe(shot)}", shot.data, shot.mime_type)

    async def _api_screen(
        self,
        conversation: Conversation,
        session_id: str,
        image_format: ImageFormat,
        max_width: int | None,
        unreachable: BrowserUnreachable,
    ) -> Shot:
        """The API's PNG of the screen (device pixels: the API knows no other), fitted to the budget
        and untouched when it fits."""
        from ..images import fit_screenshot  # Pillow is loaded only when a capture needs it

        log.info("screenshot of %s through the API: %s", session_id, unreachable)
        png = await self._call_open(conversation, session_id, conversation.api.screenshot(session_id))
        try:
            fitted = await anyio.to_thread.run_sync(
                lambda: fit_screenshot(
                    png,
                    max_base64_bytes=self._settings.screenshot_max_bytes,
                    max_width=max_width,
                    image_format=image_format,
                )
            )
        except ValueError as exc:
            raise ToolError(f"The screenshot of {session_id} could not be used: {exc}") from exc
        caption = (
            f"Screenshot of {session_id}: {fitted.summary()}; device pixels from the session API's "
            "screenshot endpoint, as the browser could not be reached over CDP"
        )
        return Shot(caption, fitted.data, fitted.mime_type)

    async def owned_sessions(self, conversation: Conversation, limit: int) -> SessionList:
        """This conversation's sessions, fetched one by one (the API cannot filter by owner)."""
        ids = conversation.owned_ids()
        found: dict[str, Session] = {}

        async def fetch(session_id: str) -> None:
            with contextlib.suppress(SessionNotFound):
                found[session_id] = await conversation.api.get_session(session_id)

        try:
            async with anyio.create_task_group() as tg:
                for session_id in ids:
                    tg.start_soon(fetch, session_id)
        except* ChaserError as group:
            first = group.exceptions[0]
            assert isinstance(first, ChaserError)
            raise api_error(first, base_url=self._base_url) from group
        for session in found.values():
            await self._seen(conversation, session.id, session.status)
        oldest = datetime.min.replace(tzinfo=UTC)
        newest_first = sorted(found.values(), key=lambda s: s.created_at or oldest, reverse=True)
        return SessionList(
            sessions=[self._info(conversation, s) for s in newest_first[:limit]],
            next_cursor=None,
            has_more=len(newest_first) > limit,
        )

    # -- helpers ----------------------------------------------------------------------------------

    async def _seen(self, conversation: Conversation, session_id: str, status: str) -> None:
        if self._status_seen is not None:
            await self._status_seen(conversation, session_id, status)

    def _info(self, conversation: Conversation, session: Session, *, note: str | None = None) -> SessionInfo:
        return SessionInfo(
            **session.model_dump(),
            owned=conversation.owns(session.id),
            persist=conversation.is_persisted(session.id),
            note=note,
        )

    async def _call_open(self, conversation: Conversation, session_id: str, call: Awaitable[T]) -> T:
        """An API call that needs the session open: a 409 says whether it is starting or over."""
        try:
            return await call
        except SessionNotOpen as exc:
            raise ToolError(await self._not_open_reason(conversation, session_id, exc)) from exc
        except ChaserError as exc:
            raise api_error(exc, base_url=self._base_url, session_id=session_id) from exc

    async def _not_ready_reason(self, conversation: Conversation, session: Session) -> str:
        """Why a session that is not ready cannot be shown, and what to do."""
        if session.status == "creating":
            return (
                f"Session {session.id} is still starting (status 'creating'). "
                "Wait a few seconds and try again, or call get_session until status is 'ready'."
            )
        if not session.is_open:
            await self._conversations.record_closed(conversation, session.id)
        reason = f", ended_reason '{session.ended_reason}'" if session.ended_reason else ""
        return f"Session {session.id} has ended (status '{session.status}'{reason}). Create a new session."

    async def _not_open_reason(self, conversation: Conversation, session_id: str, exc: ChaserError) -> str:
        """Say whether a 409 session is still starting or already over, and what to do."""
        try:
            session = await conversation.api.get_session(session_id)
        except SessionNotFound:
            return f"Session {session_id} was not found: check the id with list_sessions."
        except ChaserError:
            return explain(exc, session_id=session_id)
        if session.status == "creating":
            return (
                f"Session {session_id} is still starting (HTTP 409 session_not_open, status 'creating'). "
                "Wait a few seconds and try again, or call get_session until status is 'ready'."
            )
        await self._conversations.record_closed(conversation, session_id)
        await self._seen(conversation, session_id, session.status)
        reason = f", ended_reason '{session.ended_reason}'" if session.ended_reason else ""
        return (
            f"Session {session_id} has ended (HTTP 409 session_not_open, status '{session.status}'{reason}). "
            "Create a new session with create_session."
        )
