"""Serve the MCP server over streamable HTTP (``/mcp``) and SSE (``/sse`` + ``/messages/``).

Everything happens in front of the SDK's apps, in one ASGI layer (``CallerGate``):

* **Which requests may come in at all.** The Host allow-list and the Origin
  allow-list (DNS rebinding), checked independently of each other.
* **Who is calling.** Single-tenant, the server holds ``CHASER_KEY`` and callers
  may have to show an inbound bearer token; multi-tenant, each caller's bearer
  *is* its Chaser key, checked against the API once (concurrent checks of one key
  share that call) and cached briefly in bounded caches. The caller's principal
  is a hash, never the key.
* **Whose connection it is.** Every ``Mcp-Session-Id`` and SSE stream belongs to
  the principal that opened it; anyone else is answered 404, exactly as if it did
  not exist. Multi-tenant, each principal may hold a bounded number of them.
* **Which conversation.** An SSE stream (keyed by its id as the SDK parses it), an
  ``Mcp-Session-Id`` (handshake era only), or the principal's lease (2026-07-28,
  where a request has no conversation id at all, whatever headers it carries).
* **When it ends.** The SSE stream closing, the client's ``DELETE /mcp``, or the
  idle sweeper (abandoned ``Mcp-Session-Id``, expired caller lease); and every
  conversation at shutdown.

``/healthz`` answers 503 while any part of the serving machinery (the SDK's session
manager, the idle sweeper) is not running, so a supervisor can restart the process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import anyio
import uvicorn
from cachetools import TTLCache
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._ids import key_fingerprint
from ..api import AuthenticationError, ChaserClient, ChaserError
from ..config import Settings
from ..conversations import Conversation
from ..server import ServerState, build_server

log = logging.getLogger("chaser_mcp.transports.http")

CALLER_SCOPE_KEY = "chaser.caller"
SESSION_MANAGER = "the MCP session manager"
IDLE_SWEEPER = "the idle sweeper"
PENDING_DELETES = "the pending-delete worker"


def is_modern_request(scope: Scope) -> bool:
    """Whether a streamable-HTTP request speaks 2026-07-28 (or a later, stateless revision).

    The same test the SDK's session manager routes by: an ``MCP-Protocol-Version`` header
    naming anything but a handshake-era version. Such a request has no session, so its
    ``Mcp-Session-Id`` header (if any) means nothing.
    """
    version = Headers(scope=scope).get("mcp-protocol-version")
    return version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS


@dataclass(frozen=True)
class Caller:
    """What the gate learned about one HTTP request."""

    principal: str
    api: ChaserClient  # multi-tenant: a view that sends the caller's own key
    conversation_id: str
    idle_timeout: float | None


# -- who is calling -------------------------------------------------------------------------------


@dataclass
class _PendingCheck:
    done: anyio.Event = field(default_factory=anyio.Event)
    valid: bool | None = None
    error: ChaserError | None = None


class KeyVerifier:
    """Checks a caller's Chaser key against the API once, then trusts the answer briefly.

    Both caches are bounded (a flood of made-up keys costs upstream calls, never memory),
    and refused keys live in their own smaller cache, so they cannot evict good ones.
    Concurrent checks of one key share a single upstream call.
    """

    def __init__(
        self,
        client: ChaserClient,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 10.0,
        maxsize: int = 10_000,
        negative_maxsize: int = 1_000,
    ) -> None:
        self._client = client
        self._valid: TTLCache[bytes, bool] = TTLCache(maxsize, ttl)
        self._invalid: TTLCache[bytes, bool] = TTLCache(negative_maxsize, negative_ttl)
        self._checking: dict[bytes, _PendingCheck] = {}

    def __len__(self) -> int:
        """Keys remembered or being checked right now."""
        return len(self._valid) + len(self._invalid) + len(self._checking)

    async def is_valid(self, api_key: str) -> bool:
        # The full digest, not the 64-bit fingerprint: a cache hit grants access.
        digest = hashlib.sha256(api_key.encode()).digest()
        while True:
            if digest in self._valid:
                return True
            if digest in self._invalid:
                return False
            pending = self._checking.get(digest)
            if pending is None:
                return await self._check(digest, api_key)
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.valid is not None:
                return pending.valid
            # The request that was checking went away before the answer came: check again.

    async def _check(self, digest: bytes, api_key: str) -> bool:
        pending = self._checking[digest] = _PendingCheck()
        try:
            await self._client.for_key(api_key).list_sessions(limit=1)
            pending.valid = True
            self._valid[digest] = True
        except AuthenticationError:
            pending.valid = False
            self._invalid[digest] = True
        except ChaserError as exc:
            pending.error = exc
            raise
        finally:
            del self._checking[digest]
            pending.done.set()
        return pending.valid


class _MalformedToken(Exception):
    """The Authorization header carries a bearer token no key or token can ever equal."""


def _bearer(scope: Scope) -> str | None:
    """The bearer token of a request, None without one; raises ``_MalformedToken`` for a token
    with characters outside printable ASCII (no key has them, and they cannot be sent on)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            raw: bytes = value
            scheme, _, token = raw.partition(b" ")
            token = token.strip()
            if scheme.lower() != b"bearer" or not token:
                return None
            if not all(0x21 <= byte <= 0x7E for byte in token):
                raise _MalformedToken
            return token.decode("ascii")
    return None


def _principal_user(principal: str) -> AuthenticatedUser:
    """The principal as the SDK's own transports understand it: they refuse (404) any request
    for a session or stream made under another one. A second lock behind the gate's own."""
    return AuthenticatedUser(AccessToken(token=principal, client_id=principal, scopes=[]))


def _unauthorized(description: str) -> Response:
    return JSONResponse(
        {"error": {"code": "unauthorized", "message": description}},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="chaser-mcp", error="invalid_token", '
            f'error_description="{description}"'
        },
    )


# -- which requests may come in -------------------------------------------------------------------


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    """Exact match, or ``name:*`` matching ``name:<port>``."""
    for pattern in patterns:
        if value == pattern:
            return True
        if pattern.endswith(":*"):
            base, _, port = value.rpartition(":")
            if base == pattern[:-2] and port.isdigit():
                return True
    return False


class HostOriginPolicy:
    """DNS-rebinding defence: the Host and Origin allow-lists, each checked on its own.

    ``--allowed-host '*'`` (behind a proxy that rewrites Host) turns off only the Host
    check; a browser page from a foreign Origin is still refused (``--allowed-origin '*'``
    is the separate, explicit way to accept any).
    """

    def __init__(self, settings: Settings) -> None:
        self._any_host = "*" in settings.allowed_hosts
        self._any_origin = "*" in settings.allowed_origins
        self._hosts = ("127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts)
        self._origins = (
            "http://127.0.0.1:*",
            "http://localhost:*",
            "http://[::1]:*",
            *settings.allowed_origins,
        )

    def refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if not self._any_host and not _matches(headers.get("host", ""), self._hosts):
            return Response("Invalid Host header", status_code=421)
        origin = headers.get("origin")
        # Origin is absent on same-origin and non-browser requests.
        if origin and not self._any_origin and not _matches(origin, self._origins):
            return Response("Invalid Origin header", status_code=403)
        return None


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The same allow-lists for the SDK's own check, behind the gate's (which alone applies the
    Origin list when the Host check is off: the SDK can only switch both off together)."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in settings.allowed_hosts,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


# -- whose connection it is -----------------------------------------------------------------------


@dataclass
class _McpSession:
    principal: str
    in_flight: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class ConnectionRegistry:
    """Which principal opened each ``Mcp-Session-Id`` and SSE stream, and how many each holds.

    An MCP session counts until the client deletes it, the SDK answers 404 for it, or it
    has had no request in flight for the SDK's idle timeout (the SDK's own rule, mirrored:
    a session's end has no other outside sign). An SSE stream counts while it is open.
    """

    def __init__(self, *, per_caller_limit: int | None, session_idle_timeout: float | None) -> None:
        self._limit = per_caller_limit
        self._idle_timeout = session_idle_timeout
        self._sessions: dict[str, _McpSession] = {}
        self._by_principal: dict[str, set[str]] = {}
        self._streams: dict[UUID, str] = {}
        self._held: Counter[str] = Counter()  # open SSE streams and MCP sessions being opened
        self._last_prune = time.monotonic()

    def session_owner(self, session_id: str) -> str | None:
        session = self._sessions.get(session_id)
        if session is None or self._expired(session, time.monotonic()):
            return None
        return session.principal

    def stream_owner(self, stream: UUID) -> str | None:
        return self._streams.get(stream)

    def held_by(self, principal: str) -> int:
        now = time.monotonic()
        for session_id in list(self._by_principal.get(principal, ())):
            if self._expired(self._sessions[session_id], now):
                self.drop_session(session_id)
        return len(self._by_principal.get(principal, ())) + self._held[principal]

    def hold(self, principal: str) -> bool:
        """Take one of ``principal``'s connection slots (``release`` gives it back); False at the cap."""
        self._prune_all()
        if self._limit is not None and self.held_by(principal) >= self._limit:
            return False
        self._held[principal] += 1
        return True

    def release(self, principal: str) -> None:
        self._held[principal] -= 1
        if self._held[principal] <= 0:
            del self._held[principal]

    def add_session(self, session_id: str, principal: str) -> None:
        self._sessions[session_id] = _McpSession(principal)
        self._by_principal.setdefault(principal, set()).add(session_id)

    def drop_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            owned = self._by_principal.get(session.principal)
            if owned is not None:
                owned.discard(session_id)
                if not owned:
                    del self._by_principal[session.principal]

    @contextmanager
    def request_in(self, session_id: str) -> Iterator[None]:
        """A request to ``session_id`` is in flight: the session cannot idle out meanwhile."""
        session = self._sessions.get(session_id)
        if session is None:
            yield
            return
        session.in_flight += 1
        try:
            yield
        finally:
            session.in_flight -= 1
            session.idle_since = time.monotonic()

    def add_stream(self, stream: UUID, principal: str) -> None:
        self._streams[stream] = principal

    def drop_stream(self, stream: UUID) -> None:
        self._streams.pop(stream, None)

    def _expired(self, session: _McpSession, now: float) -> bool:
        return (
            session.in_flight == 0
            and self._idle_timeout is not None
            and now - session.idle_since > self._idle_timeout
        )

    def _prune_all(self) -> None:
        """Forget expired sessions of callers that never came back (at most every few seconds)."""
        now = time.monotonic()
        if now - self._last_prune < 5.0:
            return
        self._last_prune = now
        for session_id in [s for s, session in self._sessions.items() if self._expired(session, now)]:
            self.drop_session(session_id)


def _too_many_connections(limit: int) -> Response:
    return JSONResponse(
        {
            "error": {
                "code": "too_many_connections",
                "message": f"This caller already holds {limit} open MCP sessions and SSE streams, the most "
                "one caller may hold (CHASER_MAX_CONNECTIONS_PER_CALLER). Close one it no longer uses "
                "(DELETE /mcp with its Mcp-Session-Id, or close the SSE stream) or let an idle one "
                "expire, then retry.",
            }
        },
        status_code=429,
    )


def _mcp_session_not_found() -> Response:
    # The SDK's own answer for an unknown session, so another caller's id is indistinguishable.
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}},
        status_code=404,
    )


def _announced_stream(body: bytes) -> UUID | None:
    """The stream id in the SDK's ``endpoint`` event (``data: /messages/?session_id=<hex>``),
    parsed the way the SDK parses it back when the client posts there."""
    event: str | None = None
    data: list[str] = []
    for line in body.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if event != "endpoint" or not data:
        return None
    values = parse_qs(urlsplit("\n".join(data)).query).get("session_id")
    return _parse_stream_id(values[0]) if values else None


def _parse_stream_id(raw: str) -> UUID | None:
    try:
        return UUID(hex=raw)  # exactly SseServerTransport's parse: every spelling it accepts
    except ValueError:
        return None


# -- which conversation ---------------------------------------------------------------------------


def conversation_key(kind: str, transport_id: str) -> str:
    """A conversation's id from its transport id, hashed: an Mcp-Session-Id or SSE session id is
    a capability (whoever holds it can talk as that client), so it never reaches a log line."""
    digest = hashlib.sha256(transport_id.encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


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


class CallerGate:
    """Admit, authenticate, bind and route every request to ``/mcp``, ``/sse`` and ``/messages/``."""

    def __init__(self, app: ASGIApp, state: ServerState, settings: Settings) -> None:
        self._app = app
        self._state = state
        self._settings = settings
        self._verifier = KeyVerifier(state.client) if settings.multi_tenant else None
        self._policy = HostOriginPolicy(settings)
        # The cap protects tenants from each other; a single tenant has no one to be protected from.
        self._limit = settings.max_connections_per_caller if settings.multi_tenant else None
        self._connections = ConnectionRegistry(
            per_caller_limit=self._limit, session_idle_timeout=settings.session_idle_timeout
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/mcp", "/sse", "/messages")):
            await self._app(scope, receive, send)
            return
        refusal = self._policy.refusal(scope)
        authenticated = await self._authenticate(scope) if refusal is None else refusal
        if isinstance(authenticated, Response):
            await authenticated(scope, receive, send)
            return
        principal, api = authenticated
        scope["user"] = _principal_user(principal)
        if scope["path"].startswith("/sse"):
            await self._serve_sse_stream(scope, receive, send, principal, api)
        elif scope["path"].startswith("/messages"):
            await self._serve_sse_message(scope, receive, send, principal, api)
        else:
            await self._serve_mcp(scope, receive, send, principal, api)

    async def _authenticate(self, scope: Scope) -> tuple[str, ChaserClient] | Response:
        """(principal, the client to act with), or the response that refuses the request."""
        try:
            token = _bearer(scope)
        except _MalformedToken:
            return _unauthorized("the bearer token may only contain printable ASCII characters")
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

    async def _serve_mcp(
        self, scope: Scope, receive: Receive, send: Send, principal: str, api: ChaserClient
    ) -> None:
        modern = is_modern_request(scope)
        session_id = None if modern else Headers(scope=scope).get("mcp-session-id")
        if session_id is None:
            caller = Caller(principal, api, f"caller:{principal}", self._settings.lease_seconds)
            scope[CALLER_SCOPE_KEY] = caller
            self._state.conversations.touch(caller.conversation_id)
            if not modern and scope["method"] == "POST":
                # A handshake-era POST without a session id opens a new MCP session.
                await self._open_mcp_session(scope, receive, send, principal)
                return
            await self._forward(scope, receive, send)
            return
        owner = self._connections.session_owner(session_id)
        if owner is not None and owner != principal:
            log.warning("refused a request for an MCP session that another caller opened")
            await _mcp_session_not_found()(scope, receive, send)
            return
        caller = Caller(
            principal, api, conversation_key("mcp", session_id), self._settings.session_idle_timeout
        )
        scope[CALLER_SCOPE_KEY] = caller
        self._state.conversations.touch(caller.conversation_id)
        with self._connections.request_in(session_id):
            status, _ = await self._forward(scope, receive, send)
        if status == 404 and owner == principal:
            self._connections.drop_session(session_id)  # the SDK has forgotten it (ended or crashed)
        if scope["method"] == "DELETE" and status is not None and status < 300:
            self._connections.drop_session(session_id)
            await self._state.conversations.end(caller.conversation_id, "client closed the MCP session")

    async def _open_mcp_session(self, scope: Scope, receive: Receive, send: Send, principal: str) -> None:
        if not self._connections.hold(principal):
            await self._refuse_connection("MCP session", scope, receive, send)
            return
        try:
            status, new_session = await self._forward(scope, receive, send)
            if status is not None and status < 400 and new_session:
                self._connections.add_session(new_session, principal)
        finally:
            self._connections.release(principal)

    async def _refuse_connection(self, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit or 0
        log.warning("refused a new %s: the caller already holds %d", what, limit)
        await _too_many_connections(limit)(scope, receive, send)

    async def _serve_sse_stream(
        self, scope: Scope, receive: Receive, send: Send, principal: str, api: ChaserClient
    ) -> None:
        """One GET /sse is one conversation, keyed by the stream id the SDK announces; it ends on close."""
        if not self._connections.hold(principal):
            await self._refuse_connection("SSE stream", scope, receive, send)
            return
        stream: UUID | None = None
        conversation_id: str | None = None
        response_done = False

        async def watching_send(message: Message) -> None:
            nonlocal stream, conversation_id, response_done
            if response_done:
                # The SDK's SSE endpoint returns an empty Response after the stream it already
                # sent; uvicorn would log that as an error on every disconnect. Drop it.
                return
            if message["type"] == "http.response.body":
                response_done = not message.get("more_body", False)
                if stream is None and (announced := _announced_stream(message.get("body", b""))):
                    # Bound before the client can learn the id: no one else can ever post to it.
                    stream = announced
                    self._connections.add_stream(stream, principal)
                    conversation_id = conversation_key("sse", stream.hex)
                    self._state.conversations.open(
                        conversation_id, api, principal=principal, idle_timeout=None
                    )
            await send(message)

        try:
            await self._app(scope, receive, watching_send)
        finally:
            self._connections.release(principal)
            if stream is not None:
                self._connections.drop_stream(stream)
            if conversation_id is not None:
                await self._state.conversations.end(conversation_id, "SSE stream closed")

    async def _serve_sse_message(
        self, scope: Scope, receive: Receive, send: Send, principal: str, api: ChaserClient
    ) -> None:
        """A POST into an SSE stream: only into a live stream this caller opened."""
        raw = Request(scope).query_params.get("session_id")
        stream = _parse_stream_id(raw) if raw is not None else None
        if stream is None:
            # Refused here, before any conversation exists; the raw value is never logged.
            await Response(
                "session_id must be the id of an open SSE stream; connect to /sse and post to the "
                "endpoint it announces",
                status_code=400,
            )(scope, receive, send)
            return
        if self._connections.stream_owner(stream) != principal:
            await Response("Could not find session", status_code=404)(scope, receive, send)
            return
        scope[CALLER_SCOPE_KEY] = Caller(principal, api, conversation_key("sse", stream.hex), None)
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


# -- health ---------------------------------------------------------------------------------------


class ServingHealth:
    """Whether the parts every request needs are running, for ``/healthz``.

    A part is healthy while its ``running`` block is open; ``watch`` runs a background task
    that must never end, and records (and logs once) the exception that ended it instead of
    letting it tear down the task group that serves every other conversation.
    """

    def __init__(self, *parts: str) -> None:
        self._parts = parts
        self._running: set[str] = set()
        self._failures: dict[str, str] = {}

    @contextmanager
    def running(self, part: str) -> Iterator[None]:
        self._running.add(part)
        try:
            yield
        finally:
            self._running.discard(part)

    async def watch(self, part: str, work: Callable[[], Awaitable[None]]) -> None:
        with self.running(part):
            try:
                await work()
            except Exception as exc:
                self._failures[part] = f"{part} stopped ({type(exc).__name__})"
                log.exception("%s stopped; /healthz reports unhealthy until the server is restarted", part)
                return
        self._failures.setdefault(part, f"{part} returned")

    def problems(self) -> list[str]:
        down = [part for part in self._parts if part not in self._running]
        return [self._failures.get(part, f"{part} is not running") for part in down]


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
    health = ServingHealth(SESSION_MANAGER, IDLE_SWEEPER, PENDING_DELETES)

    async def healthz(request: Request) -> Response:
        conversations = len(state.conversations)
        if problems := health.problems():
            return JSONResponse(
                {"status": "unhealthy", "problems": problems, "conversations": conversations},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "conversations": conversations})

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    if settings.transport == "http":
        routes += [r for r in streamable.routes if getattr(r, "path", "") == "/mcp"]
    else:
        routes += list(sse.routes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(health.watch, IDLE_SWEEPER, state.conversations.sweep_idle_forever)
            tg.start_soon(health.watch, PENDING_DELETES, state.conversations.pending.run)
            try:
                with health.running(SESSION_MANAGER):
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


__all__ = [
    "Caller",
    "CallerGate",
    "ConnectionRegistry",
    "HostOriginPolicy",
    "KeyVerifier",
    "ServingHealth",
    "build_http_app",
    "is_modern_request",
    "serve_http",
]
