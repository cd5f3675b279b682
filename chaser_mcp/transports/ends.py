"""When a conversation ends: its SSE stream closing, the client's ``DELETE /mcp``, or idling out.

Why the gate watches the transport here rather than registering on the SDK's end hook
(``Connection.exit_stack``, unwound when a connection ends), checked against SDK 2.3:

* a tool reaches that hook only through a private attribute
  (``ctx.request_context.session._connection``), so only from inside a request the SDK
  serves, after a first tool call;
* its unwind is bounded by the SDK (``runner._EXIT_STACK_CLOSE_TIMEOUT``, 5 s), not by
  ``CHASER_CLEANUP_TIMEOUT``, and logs a warning when a cleanup runs past it;
* a 2026-07-28 request's connection ends with the request, so it says nothing about a
  caller's lease, which only the idle sweeper can end;
* the gate must learn each ``Mcp-Session-Id`` and SSE stream id from the SDK's answer
  anyway, to bind it to its principal before the client can use it.

Sticky routing needs the SSE stream id outside the body too: a load balancer learns which
replica holds a stream from a response header (``Mcp-Sse-Session-Id``, the ``session_id`` the
client will post to), as it learns an MCP session's replica from ``Mcp-Session-Id``; see
deploy/README.md.

So: an SSE stream ends when the SDK's endpoint returns (the stream closed); an MCP
session ends when the SDK accepts its ``DELETE``; the idle sweeper
(``Conversations.sweep_idle_forever``) ends abandoned sessions and expired leases; and
``Conversations.shutdown`` ends every conversation when the server stops.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from uuid import UUID

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..conversations import Conversations
from .auth import Caller
from .connections import ConnectionRegistry, announced_stream, parse_stream_id, too_many_connections
from .resolution import Binding, conversation_key

__all__ = ["SSE_SESSION_HEADER", "ConversationEnds"]

log = logging.getLogger("chaser_mcp.transports.ends")

# The SSE stream id, as the endpoint event's URL spells it, in the stream's response headers.
SSE_SESSION_HEADER = b"mcp-sse-session-id"
_SESSION_PARAM = re.compile(rb"[?&]session_id=([0-9A-Za-z_-]+)")

# Pass a request on to the SDK; returns the status and the Mcp-Session-Id it answered with.
Forward = Callable[[Scope, Receive, Send], Awaitable[tuple[int | None, str | None]]]


class ConversationEnds:
    """Serves the requests that open or end a connection, and ends its conversation with it."""

    def __init__(
        self, app: ASGIApp, forward: Forward, conversations: Conversations, connections: ConnectionRegistry
    ) -> None:
        self._app = app
        self._forward = forward
        self._conversations = conversations
        self._connections = connections

    async def mcp_request(self, scope: Scope, receive: Receive, send: Send, binding: Binding) -> None:
        """A request within an MCP session: a successful DELETE ends its conversation."""
        assert binding.session_id is not None
        session_id = binding.session_id
        owned = self._connections.session_owner(session_id) == binding.principal
        with self._connections.request_in(session_id):
            status, _ = await self._forward(scope, receive, send)
        if status == 404 and owned:
            self._connections.drop_session(session_id)  # the SDK has forgotten it (ended or crashed)
        if scope["method"] == "DELETE" and status is not None and status < 300:
            self._connections.drop_session(session_id)
            await self._conversations.end(binding.conversation_id, "client closed the MCP session")

    async def open_mcp_session(self, scope: Scope, receive: Receive, send: Send, principal: str) -> None:
        """A handshake-era POST without a session id: bind the session the SDK opens to its caller."""
        if not self._connections.hold(principal):
            await self._refuse("MCP session", scope, receive, send)
            return
        try:
            status, new_session = await self._forward(scope, receive, send)
            if status is not None and status < 400 and new_session:
                self._connections.add_session(new_session, principal)
        finally:
            self._connections.release(principal)

    async def sse_stream(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """One GET /sse is one conversation, keyed by the stream id the SDK announces; it ends on close."""
        if not self._connections.hold(caller.principal):
            await self._refuse("SSE stream", scope, receive, send)
            return
        stream: UUID | None = None
        conversation_id: str | None = None
        response_done = False
        start: Message | None = None  # held back until the first body says which stream this is

        async def watching_send(message: Message) -> None:
            nonlocal stream, conversation_id, response_done, start
            if response_done:
                # The SDK's SSE endpoint returns an empty Response after the stream it already
                # sent; uvicorn would log that as an error on every disconnect. Drop it.
                return
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                response_done = not message.get("more_body", False)
                body: bytes = message.get("body", b"")
                if start is not None:
                    await send(_with_stream_header(start, body))
                    start = None
                if stream is None and (announced := announced_stream(body)):
                    # Bound before the client can learn the id: no one else can ever post to it.
                    stream = announced
                    self._connections.add_stream(stream, caller.principal)
                    conversation_id = conversation_key("sse", stream.hex)
                    self._conversations.open(
                        conversation_id,
                        caller.api,
                        principal=caller.principal,
                        idle_timeout=None,
                        graceful=True,
                    )
            await send(message)

        try:
            await self._app(scope, receive, watching_send)
            if start is not None:  # a response without a body message: still answer
                await send(start)
        finally:
            self._connections.release(caller.principal)
            if stream is not None:
                self._connections.drop_stream(stream)
            if conversation_id is not None:
                await self._conversations.end(conversation_id, "SSE stream closed")

    async def _refuse(self, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._connections.limit or 0
        log.warning("refused a new %s: the caller already holds %d", what, limit)
        await too_many_connections(limit)(scope, receive, send)


def _with_stream_header(start: Message, body: bytes) -> Message:
    """``start`` plus the stream-id header when ``body`` is the SDK's ``endpoint`` event, so a load
    balancer can route the client's posts to this replica; any other response is left unchanged."""
    announced = announced_stream(body)
    param = _SESSION_PARAM.search(body)
    if announced is None or param is None or announced != parse_stream_id(param.group(1).decode()):
        return start
    headers = [*start.get("headers", []), (SSE_SESSION_HEADER, param.group(1))]
    return {**start, "headers": headers}
