"""A session's life as the tools see it: create it (recorded as owned before anything can fail), wait
until it is ready, delete it.

``create_session`` hands the session to the agent; the one-call tools (``one_call.py``) use
``temporary``: a session for the length of one block, deleted when the block ends however it
ends (an answer, an error, the client cancelling), through the same conversation bookkeeping,
so a server that dies mid-call still leaves it to the crash journal and a conversation that
ends mid-call still deletes it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from ..api import ChaserError, Session
from ..config import Settings
from ..conversations import Conversation, ConversationEnded, Conversations
from ..store import StoreUnavailable
from .errors import explain

__all__ = ["SessionLifecycle"]

log = logging.getLogger("chaser_mcp.tools.sessions")


class SessionLifecycle:
    """Create, wait for and delete sessions on behalf of one server's tools."""

    def __init__(self, settings: Settings, conversations: Conversations) -> None:
        self._settings = settings
        self._conversations = conversations

    async def create(self, conversation: Conversation, *, ttl_seconds: int, persist: bool) -> Session:
        """Create a session and record it as the conversation's; failures become a ToolError."""
        try:
            async with self._conversations.creating(conversation):
                session = await conversation.api.create_session(
                    ttl_seconds=ttl_seconds, profile=self._settings.profile
                )
                # Recorded before anything else can fail, so no later error loses track of it.
                await self._conversations.record_created(
                    conversation, session.id, persist=persist, ttl_seconds=ttl_seconds
                )
        except ConversationEnded as exc:
            if exc.handed_off:
                raise ToolError(
                    f"This conversation ended while {exc.handed_off} was being created, so it is being "
                    "deleted. Open a new conversation to create a session."
                ) from exc
            raise ToolError("This conversation is ending; no new session was created.") from exc
        except StoreUnavailable as exc:
            raise ToolError(
                f"No session was created: {exc}. The session the API had started was deleted at once, "
                "because a session whose owner no replica can see could outlive this conversation."
            ) from exc
        except ChaserError as exc:
            raise ToolError(
                explain(exc, base_url=self._settings.base_url)
                + " If the failure happened after the request was sent, a session may exist:"
                " call list_sessions before creating another."
            ) from exc
        log.info("conversation %s created %s (persist=%s)", conversation.id, session.id, persist)
        return session

    async def wait_until_ready(self, ctx: Context, conversation: Conversation, session: Session) -> Session:
        """Poll with backoff until the session leaves ``creating``, reporting progress meanwhile.

        Each poll asks the server to hold its answer for the poll's interval (``Prefer: wait``):
        the local API answers the instant the browser is ready, so the agent waits for the
        browser, not for the schedule. The cloud ignores the preference and answers at once;
        then the rest of the interval is slept, so it sees the same gentle backoff (0.25 s,
        0.5 s, ... capped at 2 s) as plain polling, plus one poll as soon as the wait begins.
        """
        started = time.monotonic()
        delay = 0.25
        with anyio.move_on_after(self._settings.ready_timeout):
            while session.status == "creating":
                elapsed = time.monotonic() - started
                await ctx.report_progress(
                    elapsed,
                    self._settings.ready_timeout,
                    f"{session.id} is {session.status} ({elapsed:.0f} s)",
                )
                asked = time.monotonic()
                try:
                    session = await conversation.api.get_session(session.id, wait=delay)
                except ChaserError as exc:
                    # The session exists and is owned; a failed poll must not lose it.
                    log.warning("polling %s failed: %s", session.id, exc)
                if session.status == "creating":
                    # Answered sooner than asked (a server that ignores the preference, or a
                    # failure): keep the schedule rather than asking again at once.
                    await anyio.sleep(max(0.0, delay - (time.monotonic() - asked)))
                delay = min(delay * 2, 2.0)
        if session.status != "creating":
            await ctx.report_progress(
                time.monotonic() - started, self._settings.ready_timeout, f"{session.id} is {session.status}"
            )
        return session

    async def delete_quietly(self, conversation: Conversation, session_id: str) -> None:
        """Delete now if the API lets us; otherwise it stays owned, for the conversation's cleanup."""
        try:
            await conversation.api.delete_session(session_id)
        except ChaserError as exc:
            log.warning("could not delete %s now, it stays owned for cleanup: %s", session_id, exc)
            return
        await self._conversations.record_closed(conversation, session_id)

    @contextlib.asynccontextmanager
    async def temporary(
        self, ctx: Context, conversation: Conversation, *, ttl_seconds: int
    ) -> AsyncIterator[str]:
        """A ready session for the block, deleted when the block ends however it ends.

        The delete is shielded and bounded; one that fails becomes a pending delete, retried
        until the session is gone (``Conversations.discard``). The short TTL bounds the cost of
        the worst case, where even that cannot reach the API.
        """
        session = await self.create(conversation, ttl_seconds=ttl_seconds, persist=False)
        try:  # no await between the create and here: a cancel cannot land in between
            if session.status == "creating":
                session = await self.wait_until_ready(ctx, conversation, session)
            if session.status != "ready":
                raise ToolError(
                    f"The browser session did not become ready (status '{session.status}'"
                    + (f", {session.ended_reason}" if session.ended_reason else "")
                    + "); it was deleted. Try again in a moment."
                )
            yield session.id
        finally:
            await self._conversations.discard(conversation, session.id)
