"""Serve the MCP server over streamable HTTP (``/mcp``) and SSE (``/sse`` + ``/messages/``), and the
live viewer at ``/viewer/...`` (``chaser_mcp/viewer``) on the same origin.

Every request to those endpoints passes the caller gate first (``gate.py``: admission,
authentication, conversation resolution and ends, one module each). ``/healthz``
answers 503 while any part of the serving machinery (the SDK's session manager, the
idle sweeper, the pending-delete worker) is not running, so a supervisor can restart
the process.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from ..server import ServerState, build_server
from .admission import HostOriginPolicy, transport_security
from .gate import CallerGate
from .health import ServingHealth
from .resolution import http_conversation_of

__all__ = ["bound_port", "build_http_app", "http_conversation_of", "serve_http", "serve_viewer_at"]

log = logging.getLogger("chaser_mcp.transports.http")

SESSION_MANAGER = "the MCP session manager"
IDLE_SWEEPER = "the idle sweeper"
PENDING_DELETES = "the pending-delete worker"


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
        problems = health.problems()
        if state.store is not None and not await state.store.ping():
            # Without the shared store no session can be created (its owner could not be recorded).
            problems.append(f"the state store {state.store.url} does not answer")
        if problems:
            return JSONResponse(
                {"status": "unhealthy", "problems": problems, "conversations": conversations},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "conversations": conversations})

    # The viewer's token is its credential (a person's browser carries no bearer token); it passes the
    # same Host allow-list as /mcp, and checks Origin itself (its own origin only).
    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]), *state.viewers.routes()]
    if settings.transport == "http":
        routes += [r for r in streamable.routes if getattr(r, "path", "") == "/mcp"]
    else:
        routes += list(sse.routes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(health.watch, IDLE_SWEEPER, state.conversations.sweep_idle_forever)
            tg.start_soon(health.watch, PENDING_DELETES, state.conversations.pending.run)
            tg.start_soon(state.links.run)  # the CDP links page tools keep open across calls
            tg.start_soon(state.viewers.run)  # ends open live views at shutdown
            try:
                with health.running(SESSION_MANAGER):
                    yield
            finally:
                tg.cancel_scope.cancel()
                await state.conversations.shutdown("server shutting down", create_grace=settings.timeout)

    return CallerGate(Starlette(routes=routes, lifespan=lifespan), state, settings)


def serve_viewer_at(state: ServerState, port: int) -> None:
    """Point viewer links at this server: ``CHASER_PUBLIC_URL``, else the address it is bound to."""
    settings = state.settings
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    public = settings.public_url or f"http://{host}:{port}"
    state.viewers.serve_at(public, admit=HostOriginPolicy(settings).host_refusal)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started uvicorn server listens on (the one the OS chose for ``--port 0``)."""
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("the HTTP server is not listening")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown; we have cleaned up, so exit 0.

    Once listening, it logs the bound port: with ``--port 0`` the OS picks it, and that line is
    how a supervisor (or a test) learns it.
    """

    def __init__(self, config: uvicorn.Config, serving: str, state: ServerState) -> None:
        super().__init__(config)
        self._serving = serving
        self._state = state

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            serve_viewer_at(self._state, bound_port(self))
            log.info("serving MCP on http://%s:%d: %s", self.config.host, bound_port(self), self._serving)

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
    endpoints = "streamable HTTP at /mcp" if settings.transport == "http" else "SSE at /sse"
    tenancy = "multi-tenant" if settings.multi_tenant else "single-tenant"
    serving = f"{endpoints}, health at /healthz, live viewer at /viewer/ ({tenancy})"
    await _Server(config, serving, state).serve()
    with anyio.CancelScope(shield=True):
        await state.client.aclose()
