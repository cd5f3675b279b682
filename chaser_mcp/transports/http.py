"""Serve the MCP server over streamable HTTP (``/mcp``) and SSE (``/sse`` + ``/messages/``).

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
from .admission import transport_security
from .gate import CallerGate
from .health import ServingHealth
from .resolution import http_conversation_of

__all__ = ["bound_port", "build_http_app", "http_conversation_of", "serve_http"]

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
            tg.start_soon(state.links.run)  # the CDP links page tools keep open across calls
            try:
                with health.running(SESSION_MANAGER):
                    yield
            finally:
                tg.cancel_scope.cancel()
                await state.conversations.shutdown("server shutting down", create_grace=settings.timeout)

    return CallerGate(Starlette(routes=routes, lifespan=lifespan), state, settings)


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

    def __init__(self, config: uvicorn.Config, serving: str) -> None:
        super().__init__(config)
        self._serving = serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
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
    await _Server(config, f"{endpoints}, health at /healthz ({tenancy})").serve()
    with anyio.CancelScope(shield=True):
        await state.client.aclose()
