"""Sessions as MCP resources, and the update notifications of 2026-07-28.

==================================  ==============================================================
``chaser://sessions``               this conversation's sessions: JSON, as ``list_sessions`` with
                                    ``owned_only`` answers (up to 100, newest first)
``chaser://sessions/{id}``          one session: JSON, exactly as ``get_session`` answers
``chaser://sessions/{id}/screenshot``  its screen as ``take_screenshot`` captures it by
                                    default; a blob whose ``mimeType`` is what the capture made
==================================  ==============================================================

Everything is read through ``SessionTools`` with the conversation the tools would resolve, so a
resource never says something a tool would not. Three things the SDK does not do by itself:

* Only template functions get a ``Context``; registering a static resource that takes one raises. So
  ``chaser://sessions`` is a ``Resource`` whose ``read`` finds the request's context in a context
  variable that the server's ``read_resource`` binds for the length of each read (``read_with``);
  it stays a plain resource in ``resources/list`` rather than becoming a template clients must fill.
* A template's ``mimeType`` is fixed when it is registered; the screenshot sets the real one on the
  same binding, and ``read_with`` puts it on the blob.
* An id is checked against the tools' pattern before anything else (a ``-32602`` naming the id);
  the SDK's path checks are skipped for it, since nothing that pattern allows can be a path.

Notifications (2026-07-28 ``subscriptions/listen`` only; the handshake era has no high-level
``resources/subscribe`` in ``MCPServer``): ``StatusWatch`` is told every status a session tool learns,
and publishes ``notifications/resources/updated`` for ``chaser://sessions/{id}`` and
``chaser://sessions`` when an owned session's status differs from the one last seen, to that
conversation's listen streams only (``ConversationBus``). ``ListenPoller``
adds the changes no tool call would see (ready, TTL expired): while a listen stream watches these
URIs, it checks the watched owned sessions that can still change, at most ``MAX_POLLED`` a pass,
every ``resource_poll`` seconds, with that stream's conversation, and stops with the stream.
The bus is the SDK's in-process one: with several replicas, a listener hears the changes its own
replica sees (its poller still covers the status changes).
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.resources import Resource
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, InputRequiredResult
from pydantic import Field

from .api import SESSION_ID_PATTERN, ChaserError, SessionNotFound
from .config import Settings
from .conversations import Conversation
from .tools import ConversationOf
from .tools.errors import MISSING_KEY, explain
from .tools.sessions import SessionTools

__all__ = [
    "MAX_POLLED",
    "SESSIONS_URI",
    "ConversationBus",
    "ListenPoller",
    "SessionResources",
    "StatusWatch",
    "read_with",
    "session_uri",
]

log = logging.getLogger("chaser_mcp.resources")

T = TypeVar("T")

SESSIONS_URI = "chaser://sessions"
SESSION_TEMPLATE = "chaser://sessions/{id}"
SCREENSHOT_TEMPLATE = "chaser://sessions/{id}/screenshot"
LISTED_MAX = 100  # the most list_sessions answers at once
MAX_POLLED = 25  # sessions one listen stream's poller checks a pass
SETTLED = frozenset({"closed", "error"})  # statuses a session never leaves
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_ID_IS_CHECKED_HERE = ResourceSecurity(exempt_params=frozenset({"id"}))


def session_uri(session_id: str) -> str:
    return f"chaser://sessions/{session_id}"


# -- the request's context during a read ----------------------------------------------------------


@dataclass
class _Reading:
    context: Context[Any, Any] | None
    mime_type: str | None = None  # a blob's type, when only its bytes decide it


_READING: contextvars.ContextVar[_Reading | None] = contextvars.ContextVar("chaser_reading", default=None)

Contents = Iterable[ReadResourceContents] | InputRequiredResult


async def read_with(context: Context[Any, Any] | None, read: Callable[[], Awaitable[Contents]]) -> Contents:
    """Run one ``resources/read`` with ``context`` reachable by static resources, and give a blob the
    MIME type its reader found (the server's ``read_resource`` calls this around the SDK's)."""
    reading = _Reading(context)
    token = _READING.set(reading)
    try:
        result = await read()
    finally:
        _READING.reset(token)
    if reading.mime_type is None or isinstance(result, InputRequiredResult):
        return result
    return [
        replace(item, mime_type=reading.mime_type) if isinstance(item.content, bytes) else item
        for item in result
    ]


class _ConversationResource(Resource):
    """A static resource read with the request's context (see the module docstring)."""

    reader: Callable[[Context[Any, Any]], Awaitable[str]] = Field(exclude=True)

    async def read(self) -> str:
        reading = _READING.get()
        if reading is None or reading.context is None:
            raise ResourceError(f"{self.uri} can only be read in a client's request.")
        return await self.reader(reading.context)


# -- status changes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionUpdated(ResourceUpdated):
    """A session resource changed; only its owner's listen streams hear it."""

    conversation_id: str


# The conversation a subscriptions/listen stream belongs to, bound by ListenPoller around the handler.
_LISTENER: contextvars.ContextVar[str | None] = contextvars.ContextVar("chaser_listener", default=None)


class ConversationBus(InMemorySubscriptionBus):
    """The SDK's in-process bus, but a session's update reaches only its own conversation's streams:
    every conversation reads the same ``chaser://sessions``, so the URI alone cannot tell them apart."""

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        listening_as = _LISTENER.get()  # called by the listen handler, inside ListenPoller

        def deliver(event: ServerEvent) -> None:
            if not isinstance(event, SessionUpdated) or event.conversation_id == listening_as:
                listener(event)

        return super().subscribe(deliver)


class StatusWatch:
    """The last status seen of each owned session, and the update events when it changes."""

    def __init__(self, bus: SubscriptionBus, *, remembered: int = 10_000) -> None:
        self._bus = bus
        self._last: dict[str, str] = {}
        self._remembered = remembered

    async def seen(self, conversation: Conversation, session_id: str, status: str) -> None:
        """Publish updates if ``status`` is new for this owned session (a first sighting counts)."""
        if not conversation.owns(session_id) or self._last.get(session_id) == status:
            return
        self._last.pop(session_id, None)  # re-inserted last: the oldest entry is forgotten first
        self._last[session_id] = status
        while len(self._last) > self._remembered:
            del self._last[next(iter(self._last))]
        await self._bus.publish(SessionUpdated(uri=session_uri(session_id), conversation_id=conversation.id))
        await self._bus.publish(SessionUpdated(uri=SESSIONS_URI, conversation_id=conversation.id))

    def settled(self, session_id: str) -> bool:
        return self._last.get(session_id) in SETTLED


class ListenPoller:
    """Server middleware: a ``subscriptions/listen`` stream that watches session URIs is bound to its
    conversation (``ConversationBus``), and while it is open the owned sessions it watches that can
    still change are checked, so readiness and TTL expiry are heard too."""

    def __init__(
        self,
        server: MCPServer,
        bus: SubscriptionBus,
        conversation_of: ConversationOf,
        sessions: SessionTools,
        watch: StatusWatch,
        interval: float,
    ) -> None:
        self._server = server
        self._bus = bus
        self._conversation_of = conversation_of
        self._sessions = sessions
        self._watch = watch
        self._interval = interval

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        uris = _watched_uris(ctx.params) if ctx.method == "subscriptions/listen" else set()
        if not uris or ctx.request_id is None:
            return await call_next(ctx)
        try:
            context: Context[Any, Any] = Context(
                request_context=ctx, mcp_server=self._server, subscriptions=self._bus
            )
            conversation = await self._conversation_of(context)
        except (ToolError, ChaserError) as exc:  # the stream still serves what tool calls publish
            log.info("not polling for a listen stream: %s", exc)
            return await call_next(ctx)
        token = _LISTENER.set(conversation.id)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._poll, conversation, uris)
                try:
                    result = await call_next(ctx)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            _LISTENER.reset(token)
        return result

    async def _poll(self, conversation: Conversation, uris: set[str]) -> None:
        while not conversation.ended:
            await anyio.sleep(self._interval)
            if not conversation.api.api_key:
                continue
            watched = conversation.owned_ids() if SESSIONS_URI in uris else []
            watched += [i for i in conversation.owned_ids() if session_uri(i) in uris and i not in watched]
            due = [i for i in watched if not self._watch.settled(i)][:MAX_POLLED]
            async with anyio.create_task_group() as tg:
                for session_id in due:
                    tg.start_soon(self._check, conversation, session_id)

    async def _check(self, conversation: Conversation, session_id: str) -> None:
        try:
            await self._sessions.session_info(conversation, session_id)  # tells the watch
        except SessionNotFound:
            await self._watch.seen(conversation, session_id, "closed")
        except ChaserError as exc:
            log.debug("polling %s for a listen stream failed: %s", session_id, exc)


def _watched_uris(params: Mapping[str, Any] | None) -> set[str]:
    """The session URIs a listen request asks to hear about."""
    notifications = (params or {}).get("notifications")
    wanted = notifications.get("resourceSubscriptions") if isinstance(notifications, Mapping) else None
    if not isinstance(wanted, list):
        return set()
    return {u for u in wanted if isinstance(u, str) and u.startswith(SESSIONS_URI)}


# -- the resources --------------------------------------------------------------------------------


class SessionResources:
    """The three session resources, read through the session tools' own paths."""

    def __init__(
        self, settings: Settings, sessions: SessionTools, conversation_of: ConversationOf, watch: StatusWatch
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._conversation_of = conversation_of
        self._watch = watch

    def register(self, server: MCPServer, bus: SubscriptionBus) -> None:
        server.add_resource(
            _ConversationResource(
                uri=SESSIONS_URI,
                name="sessions",
                title="This conversation's sessions",
                description="The sessions this conversation created, as list_sessions owned_only=true.",
                mime_type="application/json",
                reader=self.owned,
            )
        )
        server.resource(
            SESSION_TEMPLATE,
            name="session",
            title="Browser session",
            description="One session as get_session returns it.",
            mime_type="application/json",
            security=_ID_IS_CHECKED_HERE,
        )(self.session)
        server.resource(
            SCREENSHOT_TEMPLATE,
            name="screenshot",
            title="Session screen",
            description="The session's current screen, as take_screenshot captures it by default.",
            mime_type="image/png",
            security=_ID_IS_CHECKED_HERE,
        )(self.screenshot)
        server.middleware.append(
            ListenPoller(
                server, bus, self._conversation_of, self._sessions, self._watch, self._settings.resource_poll
            )
        )

    async def owned(self, ctx: Context[Any, Any]) -> str:
        conversation = await self._conversation(ctx, SESSIONS_URI)
        listing = await self._answer(self._sessions.owned_sessions(conversation, LISTED_MAX), SESSIONS_URI)
        return listing.model_dump_json(by_alias=True)

    async def session(self, id: str, ctx: Context[Any, Any]) -> str:
        uri = _checked(id, session_uri(id))
        conversation = await self._conversation(ctx, uri)
        info = await self._answer(self._sessions.session_info(conversation, id), uri, session_id=id)
        return info.model_dump_json(by_alias=True)

    async def screenshot(self, id: str, ctx: Context[Any, Any]) -> bytes:
        uri = _checked(id, f"{session_uri(id)}/screenshot")
        conversation = await self._conversation(ctx, uri)
        shot = await self._answer(self._sessions.screenshot(conversation, id), uri, session_id=id)
        reading = _READING.get()
        if reading is not None:
            reading.mime_type = shot.mime_type
        return shot.data

    async def _conversation(self, ctx: Context[Any, Any], uri: str) -> Conversation:
        try:
            conversation = await self._conversation_of(ctx)
        except ToolError as exc:
            raise ResourceError(f"{uri} cannot be read: {exc}") from exc
        if not conversation.api.api_key:
            raise ResourceError(MISSING_KEY)
        return conversation

    async def _answer(self, call: Awaitable[T], uri: str, *, session_id: str | None = None) -> T:
        """Await a read, its failure becoming the sentence the matching tool would give."""
        try:
            try:
                return await call
            except ToolError as exc:
                if isinstance(exc.__cause__, SessionNotFound):  # the screenshot path words it as a tool
                    raise exc.__cause__ from exc
                raise
        except SessionNotFound as exc:
            raise ResourceNotFoundError(
                f"{uri}: session {session_id} was not found (HTTP 404 session_not_found): it does not exist "
                "or belongs to another workspace. Read chaser://sessions or call list_sessions for valid ids."
            ) from exc
        except ChaserError as exc:
            base_url = self._settings.base_url
            raise ResourceError(explain(exc, session_id=session_id, base_url=base_url)) from exc
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc


def _checked(session_id: str, uri: str) -> str:
    """``uri`` if ``session_id`` is one the tools accept; else ``-32602``, before any request."""
    if _SESSION_ID.fullmatch(session_id):
        return uri
    shown = session_id if len(session_id) <= 60 else session_id[:57] + "..."
    raise MCPError(
        code=INVALID_PARAMS,
        message=(
            f"Malformed session id {shown!r}: ids look like 'sess_019ec0d0-…' (letters, digits, '_', '-')."
            " Nothing was sent; take an id from chaser://sessions or list_sessions."
        ),
        data={"session_id": shown},
    )
