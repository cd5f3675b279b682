"""``hand_off``: give a person the session's live view through the protocol, and wait until they
press Done in it.

How the person is asked depends on what the client can do:

* a 2025-11-25 client that declares URL elicitation: ``elicitation/create`` (mode ``url``) while the
  call waits, with progress notifications, then ``notifications/elicitation/complete``;
* a 2026-07-28 client that declares it: the call answers with an input-required result carrying the
  URL and a ``request_state``; the client's retry carries the person's answer and waits for Done.
  The SDK seals ``request_state`` (AES-GCM; with ``CHASER_STATE_SECRET`` every replica shares the
  key) and checks it is this caller's; a one-time nonce inside it refuses a replay;
* any other client, or ``wait=false``: the link and what to tell the person, at once.

While a person works, the conversation's idle or lease end waits (bounded by the link's life, which is
bounded by the session's TTL), so the session is not deleted under their fingers. The answer says
what the page is now (URL and title) so the agent can carry on.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Annotated, Literal

import anyio
from cachetools import TTLCache
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ElicitRequest, ElicitRequestURLParams, ElicitResult, InputRequiredResult
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from ..config import Settings
from ..conversations import Conversation, Conversations
from ..viewer import ViewerLink, Viewers, ViewerUnavailable
from ._common import CHANGE, COMPACT, ConversationOf, SessionId, SessionPages, add_tool, call_api

__all__ = ["HAND_OFF_SECONDS", "HandOffResult", "HandOffTools"]

log = logging.getLogger("chaser_mcp.tools.hand_off")

HAND_OFF_SECONDS = 900.0  # a person's time with the session: the link's life, at most the session's
PROGRESS_EVERY = 5.0  # seconds between progress notifications while the person works
INPUT_KEY = "person"  # the key of the one input request of the 2026-07-28 round trip

Outcome = Literal["done", "link_only", "declined", "timed_out"]


class HandOffResult(BaseModel):
    model_config = COMPACT

    session_id: str
    outcome: Outcome = Field(description="done: they pressed Done; link_only: give them viewer_url")
    url: str = ""  # the page now ("" when it could not be read)
    title: str = ""
    viewer_url: str = ""
    note: str


class HandOffTools:
    """The hand-off tool, bound to one server's viewers, conversations and page links."""

    def __init__(
        self,
        settings: Settings,
        conversations: Conversations,
        conversation_of: ConversationOf,
        pages: SessionPages,
        viewers: Viewers,
    ) -> None:
        self._settings = settings
        self._conversations = conversations
        self._conversation_of = conversation_of
        self._pages = pages
        self._viewers = viewers
        # Nonces of request states already answered: each may be used once (a replay is refused).
        self._spent: TTLCache[str, bool] = TTLCache(10_000, HAND_OFF_SECONDS * 2)

    def register(self, server: MCPServer) -> None:
        add_tool(server, self.hand_off, "Hand session to a person", CHANGE)

    async def hand_off(
        self,
        ctx: Context,
        session_id: SessionId,
        reason: Annotated[str, Field(min_length=1, max_length=500, description="What the person should do")],
        wait: Annotated[bool, Field(description="Wait until they press Done")] = True,
    ) -> HandOffResult | InputRequiredResult:
        """Ask a person to do a step (a login, a CAPTCHA) in the session's live view and wait until
        they press Done; answers with the page they left."""
        conversation = await self._conversation_of(ctx)
        if ctx.request_state is not None:
            return await self._resumed(ctx, conversation, session_id)
        link = await self._mint(conversation, session_id)
        message = f"{reason} (open the live view of {session_id}, then press Done)"
        if not wait:
            return self._link_only(link, "Give viewer_url to the person; call get_session later to check.")
        if not _declares_url_elicitation(ctx):
            return self._link_only(
                link,
                "This client cannot show the person a link: give them viewer_url with what to do, ask them "
                "to press Done in it, and wait for their reply before using the session again.",
            )
        await self._conversations.pause(conversation, self._link_seconds(link))
        if _is_stateless(ctx):
            nonce = secrets.token_urlsafe(16)
            state = json.dumps({"link": link.link_id, "session": session_id, "nonce": nonce})
            params = ElicitRequestURLParams(message=message, url=link.url)
            return InputRequiredResult(
                input_requests={INPUT_KEY: ElicitRequest(params=params)}, request_state=state
            )
        try:
            answer = await ctx.elicit_url(message, link.url, link.link_id)
            if answer.action != "accept":
                return self._declined(link)
            outcome = await self._wait_for_done(ctx, conversation, link)
            if outcome == "done":
                await ctx.session.send_elicit_complete(link.link_id)
        finally:
            self._conversations.resume(conversation)
        return await self._answer(conversation, session_id, outcome, link)

    # -- the 2026-07-28 retry -----------------------------------------------------------------------

    async def _resumed(self, ctx: Context, conversation: Conversation, session_id: str) -> HandOffResult:
        """The client came back with the person's answer: check the state is this call's, once."""
        try:
            state = json.loads(ctx.request_state or "")
            link_id, nonce = str(state["link"]), str(state["nonce"])
            if state["session"] != session_id:
                raise ValueError("another session")
            self._viewers.done(link_id, principal=conversation.principal)  # KeyError: not this caller's
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(
                "This hand-off's state is not valid here (it belongs to another call, caller or server). "
                "Call hand_off again without it."
            ) from exc
        if nonce in self._spent:
            raise ToolError("This hand-off was already answered; call hand_off again to ask once more.")
        self._spent[nonce] = True
        answer = (ctx.input_responses or {}).get(INPUT_KEY)
        link = self._viewers.link(link_id, principal=conversation.principal)
        if not isinstance(answer, ElicitResult) or answer.action != "accept":
            self._conversations.resume(conversation)
            return self._declined(link)
        try:
            outcome = await self._wait_for_done(ctx, conversation, link)
        finally:
            self._conversations.resume(conversation)
        return await self._answer(conversation, session_id, outcome, link)

    # -- helpers --------------------------------------------------------------------------------------

    async def _mint(self, conversation: Conversation, session_id: str) -> ViewerLink:
        session = await call_api(
            conversation.api.get_session(session_id), base_url=self._settings.base_url, session_id=session_id
        )
        if session.status != "ready" or not session.cdp_url:
            raise ToolError(
                f"Session {session_id} is '{session.status}', not ready: a person cannot use it. "
                + (
                    "Call get_session until it is ready, then hand_off again."
                    if session.status == "creating"
                    else "Create a new session with create_session."
                )
            )
        seconds = HAND_OFF_SECONDS
        if session.expires_at is not None:
            seconds = max(60.0, min(seconds, session.expires_at.timestamp() - time.time()))
        try:
            return await self._viewers.mint(session_id, conversation.api, conversation.principal, ttl=seconds)
        except ViewerUnavailable as exc:
            raise ToolError(
                f"The live viewer cannot be served here ({exc}); a person cannot take over."
            ) from exc

    @staticmethod
    def _link_seconds(link: ViewerLink) -> float:
        return max(0.0, link.expires_at.timestamp() - time.time())

    async def _wait_for_done(self, ctx: Context, conversation: Conversation, link: ViewerLink) -> Outcome:
        """Until the person presses Done or the link expires, telling the client every few seconds."""
        done = self._viewers.done(link.link_id, principal=conversation.principal)
        started = time.monotonic()
        total = self._link_seconds(link)
        with anyio.move_on_after(total):
            while not done.is_set():
                waited = time.monotonic() - started
                viewing = "the person has the live view open" if self._viewers.is_open(link.link_id) else ""
                await ctx.report_progress(
                    waited, total, f"waiting for Done{': ' + viewing if viewing else ''}"
                )
                with anyio.move_on_after(PROGRESS_EVERY):
                    await done.wait()
        return "done" if done.is_set() else "timed_out"

    async def _answer(
        self, conversation: Conversation, session_id: str, outcome: Outcome, link: ViewerLink
    ) -> HandOffResult:
        url = title = ""
        from ..browser.cdp import CDPException
        from ..browser.page import PageError

        try:
            async with self._pages.open(conversation, session_id) as page:
                found = await page.evaluate("({url: location.href, title: document.title})")
            url, title = str(found["url"]), str(found["title"])
        except (PageError, CDPException, KeyError, TypeError) as exc:
            log.warning("could not read the page of %s after a hand-off: %s", session_id, exc)
        if outcome == "done":
            self._viewers.revoke(link.link_id)
            note = "The person pressed Done; carry on from this page (take_screenshot to see it)."
        else:
            note = (
                "The person did not press Done before the link expired. Ask them in the chat, or call "
                "hand_off again for a fresh link."
            )
        return HandOffResult(session_id=session_id, outcome=outcome, url=url, title=title, note=note)

    def _link_only(self, link: ViewerLink, note: str) -> HandOffResult:
        return HandOffResult(
            session_id=link.session_id,
            outcome="link_only",
            viewer_url=link.url,
            note=f"{note} The link works until {link.expires_at:%H:%M} UTC.",
        )

    def _declined(self, link: ViewerLink) -> HandOffResult:
        self._viewers.revoke(link.link_id)
        return HandOffResult(
            session_id=link.session_id,
            outcome="declined",
            note="The person declined to take over. Ask them in the chat how to go on.",
        )


def _is_stateless(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS


def _declares_url_elicitation(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and elicitation.url is not None
