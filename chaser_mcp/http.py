"""Serve the MCP server over streamable HTTP (``/mcp``) and SSE (``/sse`` + ``/messages/``).

Three things happen in front of the SDK's apps, in one ASGI layer (``CallerGate``):

* **Who is calling.** Single-tenant, the server holds ``CHASER_KEY`` and callers
  may have to show an inbound bearer token; multi-tenant, each caller's bearer
  *is* its Chaser key, checked against the API once and cached briefly. The
  caller's principal is a hash, never the key.
* **Which conversation.** An SSE stream, an ``Mcp-Session-Id``, or (2026-07-28,
  which has no conversation id at all) the principal itself, holding a lease.
* **When it ends.** The SSE stream closing, the client's ``DELETE /mcp``, or the
  idle sweeper (abandoned ``Mcp-Session-Id``, expired caller lease); and every
  conversation at shutdown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api import AuthenticationError, ChaserClient, ChaserError
from .conversations import Conversation
from .journal import key_fingerprint
from .server import ServerState, build_server
from .settings import Settings

log = logging.getLogger("chaser_mcp.http")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CALLER_SCOPE_KEY = "chaser.caller"
_SSE_ENDPOINT = re.compile(rb"session_id=([0-9a-fA-F-]+)")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True)
class Caller:
    """What the gate learned about one HTTP request."""

    principal: str
    api: ChaserClient  # multi-tenant: a view that sends the caller's own key
    conversation_id: str
    idle_timeout: float | None


class KeyVerifier:
    """Checks a caller's Chaser key against the API once, then trusts the answer briefly."""

    def __init__(self, client: ChaserClient, *, ttl: float = 60.0, negative_ttl: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._cache: dict[str, tuple[bool, float]] = {}

    async def is_valid(self, api_key: str) -> bool:
        digest = key_fingerprint(api_key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        try:
            await self._client.for_key(api_key).list_sessions(limit=1)
            valid = True
        except AuthenticationError:
            valid = False
        self._cache[digest] = (valid, now + (self._ttl if valid else self._negative_ttl))
        return valid


def _unauthorized(description: str) -> Response:
    return JSONResponse(
        {"error": {"code": "unauthorized", "message": description}},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="chaser-mcp", error="invalid_token", '
            f'error_description="{description}"'
        },
    )


def conversation_key(kind: str, transport_id: str) -> str:
    """A conversation's id from its transport id, hashed: an Mcp-Session-Id or SSE session id is
    a capability (whoever holds it can talk as that client), so it never reaches a log line."""
    digest = hashlib.sha256(transport_id.replace("-", "").lower().encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class CallerGate:
    """Authenticate, pick the conversation, and notice conversations ending, for every request."""

    def __init__(self, app: ASGIApp, state: ServerState, settings: Settings) -> None:
        self._app = app
        self._state = state
        self._settings = settings
        self._verifier = KeyVerifier(state.client) if settings.multi_tenant else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/mcp", "/sse", "/messages")):
            await self._app(scope, receive, send)
            return
        authenticated = await self._authenticate(scope)
        if not isinstance(authenticated, tuple):
            await authenticated(scope, receive, send)
            return
        principal, api = authenticated
        request = Request(scope)
        if scope["path"].startswith("/sse"):
            await self._serve_sse_stream(scope, receive, send, principal, api)
            return
        if scope["path"].startswith("/messages"):
            stream_id = conversation_key("sse", request.query_params.get("session_id", ""))
            caller = Caller(principal, api, stream_id, None)
        elif session_id := request.headers.get("mcp-session-id"):
            caller = Caller(
                principal, api, conversation_key("mcp", session_id), self._settings.session_idle_timeout
            )
        else:
            caller = Caller(principal, api, f"caller:{principal}", self._settings.lease_seconds)
        scope[CALLER_SCOPE_KEY] = caller
        self._state.conversations.touch(caller.conversation_id)
        if scope["method"] == "DELETE" and caller.conversation_id.startswith("mcp:"):
            status = await self._forward_recording_status(scope, receive, send)
            if status is not None and status < 300:
                await self._state.conversations.end(caller.conversation_id, "client closed the MCP session")
            return
        await self._app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> tuple[str, ChaserClient] | Response:
        """(principal, the client to act with), or the response that refuses the request."""
        token = _bearer(scope)
        if self._verifier is not None:
            if token is None:
                return _unauthorized("send your Chaser API key as 'Authorization: Bearer <key>'")
            try:
                valid = await self._verifier.is_valid(token)
            except ChaserError as exc:
                log.warning("could not verify a caller's key: %s", type(exc).__name__)
                return JSONResponse(
                    {
                        "error": {
                            "code": "upstream_unavailable",
                            "message": "the Chaser API could not be reached to check the key; retry",
                        }
                    },
                    status_code=503,
                )
            if not valid:
                return _unauthorized("the Chaser API refused this key")
            fingerprint = key_fingerprint(token)
            # One view per key, also what the crash reaper deletes this caller's leftovers with.
            api = self._state.clients_by_key_id.setdefault(fingerprint, self._state.client.for_key(token))
            return f"key:{fingerprint}", api
        expected = self._settings.auth_token
        if expected:
            if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
                return _unauthorized("a valid bearer token is required")
            return "token", self._state.client
        return "local", self._state.client

    async def _serve_sse_stream(
        self, scope: Scope, receive: Receive, send: Send, principal: str, api: ChaserClient
    ) -> None:
        """One GET /sse is one conversation: learn its id from the endpoint event, end it on close."""
        conversation_id: str | None = None
        response_done = False

        async def watching_send(message: Message) -> None:
            nonlocal conversation_id, response_done
            if response_done:
                # The SDK's SSE endpoint returns an empty Response after the stream it already
                # sent; uvicorn would log that as an error on every disconnect. Drop it.
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_done = True
            if conversation_id is None and message["type"] == "http.response.body":
                found = _SSE_ENDPOINT.search(message.get("body", b""))
                if found:
                    conversation_id = conversation_key("sse", found.group(1).decode())
                    self._state.conversations.open(
                        conversation_id, api, principal=principal, idle_timeout=None
                    )
            await send(message)

        try:
            await self._app(scope, receive, watching_send)
        finally:
            if conversation_id is not None:
                await self._state.conversations.end(conversation_id, "SSE stream closed")

    async def _forward_recording_status(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        status: int | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self._app(scope, receive, recording_send)
        return status


def http_conversation_of(state: ServerState) -> Callable[[Context], Conversation]:
    """Resolve a tool call to its conversation from what the gate stored on the request."""

    def conversation_of(ctx: Context) -> Conversation:
        request = ctx.request_context.request
        caller = getattr(request, "scope", {}).get(CALLER_SCOPE_KEY) if request is not None else None
        if not isinstance(caller, Caller):
            raise ToolError("This request did not come through the HTTP gate; reconnect to /mcp or /sse.")
        conversation = state.conversations.open(
            caller.conversation_id, caller.api, principal=caller.principal, idle_timeout=caller.idle_timeout
        )
        if conversation.principal != caller.principal:
            raise ToolError("This conversation belongs to another caller; open your own connection.")
        return conversation

    return conversation_of


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin allow-lists against DNS rebinding: loopback names plus whatever is configured."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in settings.allowed_hosts,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


def build_http_app(state: ServerState, server: MCPServer) -> ASGIApp:
    """One ASGI app: streamable HTTP at /mcp, SSE at /sse and /messages/, and /healthz."""
    settings = state.settings
    security = transport_security(settings)
    streamable = server.streamable_http_app(
        streamable_http_path="/mcp",
        session_idle_timeout=settings.session_idle_timeout,
        max_request_body_size=settings.max_body_bytes,
        transport_security=security,
        host=settings.host,
    )
    sse = server.sse_app(max_request_body_size=settings.max_body_bytes, transport_security=security)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "conversations": len(state.conversations)})

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    if settings.transport == "http":
        routes += [r for r in streamable.routes if getattr(r, "path", "") == "/mcp"]
    else:
        routes += list(sse.routes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(state.conversations.sweep_idle_forever)
            tg.start_soon(state.conversations.pending.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                await state.conversations.shutdown("server shutting down", create_grace=settings.timeout)

    return CallerGate(Starlette(routes=routes, lifespan=lifespan), state, settings)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown; we have cleaned up, so exit 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


async def serve_http(state: ServerState) -> None:
    settings = state.settings
    app = build_http_app(state, build_server(state, http_conversation_of(state)))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = _Server(config)
    endpoints = "streamable HTTP at /mcp" if settings.transport == "http" else "SSE at /sse"
    tenancy = "multi-tenant" if settings.multi_tenant else "single-tenant"
    log.info(
        "serving MCP on http://%s:%d: %s, health at /healthz (%s)",
        settings.host,
        settings.port,
        endpoints,
        tenancy,
    )
    await server.serve()
    with anyio.CancelScope(shield=True):
        await state.client.aclose()


__all__ = ["Caller", "CallerGate", "KeyVerifier", "build_http_app", "is_loopback", "serve_http"]
