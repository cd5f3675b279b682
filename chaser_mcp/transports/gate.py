"""The caller gate: one ASGI layer in front of the SDK's apps that admits, authenticates,
resolves and watches every request to ``/mcp``, ``/sse`` and ``/messages/``.

Each step is its own module: ``admission`` (Host/Origin allow-lists), ``auth`` (who is
calling, as a Starlette authentication backend), ``resolution`` (which conversation),
``connections`` (whose connection it is, and per-caller caps) and ``ends`` (when a
conversation ends). This module only puts them in order and forwards to the SDK.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..server import ServerState
from .admission import HostOriginPolicy
from .auth import Caller, CallerBackend, refusal_response
from .connections import ConnectionRegistry
from .ends import ConversationEnds
from .resolution import BINDING_SCOPE_KEY, Binding, resolve

__all__ = ["CallerGate"]

log = logging.getLogger("chaser_mcp.transports.gate")

GATED_PATHS = ("/mcp", "/sse", "/messages")


class CallerGate:
    """Admit, authenticate, bind and route every request to ``/mcp``, ``/sse`` and ``/messages/``."""

    def __init__(self, app: ASGIApp, state: ServerState, settings: Settings) -> None:
        self._app = app
        self._state = state
        self._settings = settings
        self._policy = HostOriginPolicy(settings)
        self._authenticated = AuthenticationMiddleware(
            self._route, CallerBackend(state, settings), on_error=refusal_response
        )
        # The cap protects tenants from each other; a single tenant has no one to be protected from.
        self._connections = ConnectionRegistry(
            per_caller_limit=settings.max_connections_per_caller if settings.multi_tenant else None,
            session_idle_timeout=settings.session_idle_timeout,
            clock=state.conversations.clock,
        )
        self._ends = ConversationEnds(app, self._forward, state.conversations, self._connections)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GATED_PATHS):
            await self._app(scope, receive, send)
            return
        if (refusal := self._policy.refusal(scope)) is not None:
            await refusal(scope, receive, send)
            return
        await self._authenticated(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller: Caller = scope["user"]
        binding = resolve(
            scope,
            caller,
            self._connections,
            lease_seconds=self._settings.lease_seconds,
            session_idle_timeout=self._settings.session_idle_timeout,
        )
        if binding is None:
            await self._ends.sse_stream(scope, receive, send, caller)
            return
        if isinstance(binding, Response):
            await binding(scope, receive, send)
            return
        scope[BINDING_SCOPE_KEY] = binding
        conversations = self._state.conversations
        if binding.lease and conversations.shares_leases:
            # Every request renews the caller's lease for every replica (a tool call also reads back
            # what the caller owns there, when it resolves its conversation).
            assert binding.idle_timeout is not None
            await conversations.keep_lease(
                binding.conversation_id,
                binding.api,
                principal=binding.principal,
                lease_seconds=binding.idle_timeout,
            )
        elif not scope["path"].startswith("/messages"):
            conversations.touch(binding.conversation_id)
        await self._dispatch(scope, receive, send, binding)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, binding: Binding) -> None:
        if binding.session_id is not None:
            await self._ends.mcp_request(scope, receive, send, binding)
        elif binding.opens_session:
            await self._ends.open_mcp_session(scope, receive, send, binding.principal)
        else:
            await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> tuple[int | None, str | None]:
        """Pass the request to the SDK (its body read first); the status and Mcp-Session-Id it answered."""
        if scope["method"] == "POST":
            buffered = await _buffered_body(scope, receive, self._settings.max_body_bytes)
            if buffered is None:
                return None, None
            if isinstance(buffered, Response):
                await buffered(scope, receive, send)
                return buffered.status_code, None
            receive = buffered
        status: int | None = None
        session_id: str | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status, session_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                session_id = Headers(raw=message.get("headers", [])).get("mcp-session-id")
            await send(message)

        await self._app(scope, receive, recording_send)
        return status, session_id


async def _buffered_body(scope: Scope, receive: Receive, limit: int) -> Receive | Response | None:
    """Read a request's whole body before the SDK sees it: a replaying ``receive``, a 413
    response, or None when the client went away mid-body (logged here in one line; the SDK
    would log it as an error with a traceback)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            log.info("a client disconnected before sending its whole request body (%s)", scope["path"])
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return Response("Request body too large", status_code=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replay
