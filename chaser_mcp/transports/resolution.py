"""Which conversation a request belongs to, decided in one place.

An SSE stream (keyed by its id as the SDK parses it), an ``Mcp-Session-Id`` (handshake
era only), or the principal's lease (2026-07-28, where a request has no conversation id
at all, whatever headers it carries). The gate stores the answer on the request; tools
read it back through ``http_conversation_of``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from ..api import ChaserClient
from ..conversations import Conversation
from ..server import ServerState
from .auth import Caller
from .connections import ConnectionRegistry, parse_stream_id

__all__ = [
    "BINDING_SCOPE_KEY",
    "Binding",
    "conversation_key",
    "http_conversation_of",
    "resolve",
]

log = logging.getLogger("chaser_mcp.transports.resolution")

BINDING_SCOPE_KEY = "chaser.binding"


@dataclass(frozen=True)
class Binding:
    """A request's conversation: who it is for, the API view it acts with, and how it idles out."""

    principal: str
    api: ChaserClient
    conversation_id: str
    idle_timeout: float | None
    session_id: str | None = None  # the Mcp-Session-Id it was resolved from, if any
    opens_session: bool = False  # a handshake-era POST without a session id: it opens one
    graceful: bool = False  # an MCP session or SSE stream: its sessions wait out the reconnect grace
    lease: bool = False  # a 2026-07-28 request: the caller's lease, shared by replicas on a shared store


def is_modern_request(scope: Scope) -> bool:
    """Whether a streamable-HTTP request speaks 2026-07-28 (or a later, stateless revision).

    The same test the SDK's session manager routes by: an ``MCP-Protocol-Version`` header
    naming anything but a handshake-era version. Such a request has no session, so its
    ``Mcp-Session-Id`` header (if any) means nothing.
    """
    version = Headers(scope=scope).get("mcp-protocol-version")
    return version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS


def conversation_key(kind: str, transport_id: str) -> str:
    """A conversation's id from its transport id, hashed: an Mcp-Session-Id or SSE session id is
    a capability (whoever holds it can talk as that client), so it never reaches a log line."""
    digest = hashlib.sha256(transport_id.encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


def mcp_session_not_found() -> Response:
    # The SDK's own answer for an unknown session, so another caller's id is indistinguishable.
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}},
        status_code=404,
    )


def resolve(
    scope: Scope,
    caller: Caller,
    connections: ConnectionRegistry,
    *,
    lease_seconds: float,
    session_idle_timeout: float | None,
) -> Binding | Response | None:
    """The conversation of a request to ``/mcp`` or ``/messages/``, or the response refusing it.

    None for ``GET /sse``: a new stream is its own conversation, whose id the SDK announces
    on the stream (``ends.serve_sse_stream`` binds it then).
    """
    path: str = scope["path"]
    if path.startswith("/sse"):
        return None
    if path.startswith("/messages"):
        return _sse_message(scope, caller, connections)
    modern = is_modern_request(scope)
    session_id = None if modern else Headers(scope=scope).get("mcp-session-id")
    if session_id is None:
        return Binding(
            caller.principal,
            caller.api,
            f"caller:{caller.principal}",
            lease_seconds,
            opens_session=not modern and scope["method"] == "POST",
            lease=modern,
        )
    owner = connections.session_owner(session_id)
    if owner is not None and owner != caller.principal:
        log.warning("refused a request for an MCP session that another caller opened")
        return mcp_session_not_found()
    return Binding(
        caller.principal,
        caller.api,
        conversation_key("mcp", session_id),
        session_idle_timeout,
        session_id=session_id,
        graceful=True,
    )


def _sse_message(scope: Scope, caller: Caller, connections: ConnectionRegistry) -> Binding | Response:
    """A POST into an SSE stream: only into a live stream this caller opened."""
    raw = Request(scope).query_params.get("session_id")
    stream = parse_stream_id(raw) if raw is not None else None
    if stream is None:
        # Refused here, before any conversation exists; the raw value is never logged.
        return Response(
            "session_id must be the id of an open SSE stream; connect to /sse and post to the "
            "endpoint it announces",
            status_code=400,
        )
    if connections.stream_owner(stream) != caller.principal:
        return Response("Could not find session", status_code=404)
    return Binding(caller.principal, caller.api, conversation_key("sse", stream.hex), None, graceful=True)


def http_conversation_of(state: ServerState) -> Callable[[Context], Awaitable[Conversation]]:
    """Resolve a tool call to its conversation from what the gate stored on the request."""

    async def conversation_of(ctx: Context) -> Conversation:
        request = ctx.request_context.request
        binding = getattr(request, "scope", {}).get(BINDING_SCOPE_KEY) if request is not None else None
        if not isinstance(binding, Binding):
            raise ToolError("This request did not come through the HTTP gate; reconnect to /mcp or /sse.")
        if binding.lease and state.conversations.shares_leases:
            # What the caller owns, as every replica knows it (and its lease renewed for all).
            assert binding.idle_timeout is not None
            conversation = await state.conversations.renew_lease(
                binding.conversation_id,
                binding.api,
                principal=binding.principal,
                lease_seconds=binding.idle_timeout,
            )
        else:
            conversation = state.conversations.open(
                binding.conversation_id,
                binding.api,
                principal=binding.principal,
                idle_timeout=binding.idle_timeout,
                graceful=binding.graceful,
                lease=binding.lease,
            )
        if conversation.principal != binding.principal:
            raise ToolError("This conversation belongs to another caller; open your own connection.")
        await adopt_what_the_call_names(state, conversation, ctx.request_context.params)
        return conversation

    return conversation_of


async def adopt_what_the_call_names(state: ServerState, conversation: Conversation, params: object) -> None:
    """The reconnect grace: a tool call naming a session its caller left waiting (any tool taking
    ``session_id``), or listing the caller's owned sessions, makes it this conversation's.

    Read from the call's own parameters, here where every tool resolves its conversation, so no
    tool has to remember it; ``adopt`` checks the caller, so another caller's id adopts nothing."""
    if not isinstance(params, Mapping):
        return
    arguments = params.get("arguments")
    if not isinstance(arguments, Mapping):
        return
    session_id = arguments.get("session_id")
    lists_owned = params.get("name") == "list_sessions" and arguments.get("owned_only") is True
    named = isinstance(session_id, str) and not conversation.owns(session_id)
    if not (named or lists_owned) or not await state.conversations.may_have_held(conversation.principal):
        return
    if isinstance(session_id, str) and named:
        await state.conversations.adopt(conversation, session_id)
    if lists_owned:
        await state.conversations.adopt_all(conversation)
