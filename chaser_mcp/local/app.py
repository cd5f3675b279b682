"""The Chaser Sessions API served on loopback, each session a real headless Chromium.

Same paths, bodies, status codes and error codes as the cloud, so ``ChaserClient``
talks to it unchanged. Differences a caller may notice, all deliberate:

* ``cdp_url`` is a websocket on this server, ``ws://<host>:<port>/v1/sessions/<id>/cdp?token=…``,
  set when the session turns ``ready``. Chromium itself listens on no port (its DevTools
  run over a pipe to this process); the server proxies CDP for whoever shows the
  session's random token, compared in constant time, and refuses everyone else (403).
  A client attaches to the page target itself (``type == "page"``); a fresh session
  has exactly one, already showing the emulated phone.
* Every URL the server returns is built from ``public_base_url`` or the address the
  connection came in on, never from the request's ``Host``; requests naming a Host or
  Origin outside the allow-lists (loopback names plus configured ones) are refused.
* ``bytes_up``/``bytes_down`` are null: nothing is metered locally.
* At most ``max_sessions`` sessions are open at once (each browser costs ~150 MiB);
  one more is refused with 429 ``session_limit_reached``. A warm browser (``warm_browsers=1``)
  counts against the same cap and is handed to the next create (see ``backend.py``).
* Authentication: ``Authorization: Bearer <key>`` is required. With ``api_key`` set,
  only that key is accepted; without one, any non-empty key is, which is safe only
  because the server binds to loopback (``serve_local_api`` refuses another host
  unless a key is configured).
* ``GET /v1/sessions/:id`` honours ``Prefer: wait=N`` (RFC 7240): a session still ``creating``
  is answered once it settles or after N seconds (at most ``MAX_WAIT_SECONDS``), whichever
  comes first. The cloud ignores the preference and answers at once, which the RFC allows.
* The live view (``preview-token``'s ``url``) is a page served here:
  ``/v1/sessions/<id>/preview?token=…``, streaming over ``…/preview/ws?token=…``.
  Tokens are random, bound to one session and expire after ``preview_token_ttl``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
import uvicorn.config
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chaser_mcp._net import is_loopback
from chaser_mcp.api import check_session_id
from chaser_mcp.browser._tasks import first_to_finish, owned_tasks
from chaser_mcp.browser.cdp import CDPException, TransportClosed

from .backend import TTL_DEFAULT_SECONDS, BackendError, LocalBackend, LocalSession, session_not_found
from .devtools import PipeClient
from .guard import HostGuard, HostRules, deny_websocket, host_entry
from .preview import PREVIEW_PAGE_HEADERS, render_preview_page, stream_preview

log = logging.getLogger("chaser_mcp.local")


# Longest a GET is held for ``Prefer: wait``, whatever the caller asks: a client's read timeout
# (30 s by default) must cover the hold with room to spare, and a caller re-asks cheaply.
MAX_WAIT_SECONDS = 10.0
_WAIT_PREFERENCE = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,6})\"?\s*$", re.IGNORECASE)


def preferred_wait(prefer_headers: Sequence[str]) -> float:
    """Seconds the caller asked to wait (RFC 7240 ``Prefer: wait=N``), capped; 0 if it asked nothing.

    Preferences are comma-separated, each may carry ``;`` parameters; an unknown or malformed one
    is ignored, as the RFC asks, and the first ``wait`` wins.
    """
    for header in prefer_headers:
        for preference in header.split(","):
            found = _WAIT_PREFERENCE.match(preference.split(";", 1)[0])
            if found:
                return min(float(found.group(1)), MAX_WAIT_SECONDS)
    return 0.0


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_local_app(
    *,
    api_key: str | None = None,
    backend: LocalBackend | None = None,
    public_base_url: str | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    bind_host: str | None = None,
    **backend_options: Any,
) -> Starlette:
    """The ASGI app. ``backend_options`` go to ``LocalBackend`` (max_sessions, min_ttl_seconds, …).

    ``public_base_url`` fixes the scheme and host of the URLs the server hands out
    (``cdp_url``, live-view links); by default they use the address the connection
    came in on. ``allowed_hosts``/``allowed_origins`` extend the loopback defaults.
    """
    sessions = backend or LocalBackend(**backend_options)
    rules = HostRules.build(
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        public_base_url=public_base_url,
        bind_host=bind_host,
    )

    def base_url(scope: Mapping[str, Any]) -> str:
        """Where this server is, from configuration or the socket: never from a Host header."""
        if public_base_url:
            return public_base_url.rstrip("/")
        server = scope.get("server")
        if not server:
            return "http://127.0.0.1"
        host, port = server[0], server[1]
        return f"http://{host_entry(str(host))}" + (f":{port}" if port else "")

    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise BackendError(401, "unauthorized", "send the API key as 'Authorization: Bearer <key>'")
        if api_key is not None and not hmac.compare_digest(key.encode(), api_key.encode()):
            raise BackendError(401, "invalid_api_key", "the API key is not valid for this server")

    def session_for(request: Request) -> LocalSession:
        session_id = str(request.path_params["session_id"])
        try:
            check_session_id(session_id)
        except ValueError:
            raise session_not_found(session_id[:80]) from None
        return sessions.get(session_id)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise BackendError(400, "invalid_request", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BackendError(400, "invalid_request", "the request body must be a JSON object")
        return body

    async def create_session(request: Request) -> Response:
        authenticate(request)
        body = await json_body(request)
        ttl = body.get("ttl_seconds", TTL_DEFAULT_SECONDS)
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise BackendError(400, "invalid_request", "ttl_seconds must be an integer")
        profile = body.get("profile")
        if profile is not None and not isinstance(profile, str):
            raise BackendError(400, "invalid_request", "profile must be a string")
        session = sessions.create(ttl)
        return JSONResponse(session.to_json(base_url(request.scope)), status_code=201)

    async def list_sessions(request: Request) -> Response:
        authenticate(request)
        raw_limit = request.query_params.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise BackendError(400, "invalid_request", "limit must be an integer between 1 and 100")
        page, next_cursor, has_more = sessions.list(limit=limit, cursor=request.query_params.get("cursor"))
        return JSONResponse(
            {
                "object": "list",
                "data": [s.to_json(base_url(request.scope)) for s in page],
                "next_cursor": next_cursor,
                "has_more": has_more,
            }
        )

    async def get_session(request: Request) -> Response:
        authenticate(request)
        session = session_for(request)
        wait = preferred_wait(request.headers.getlist("prefer"))
        if wait and session.status == "creating":
            # Held until the session settles (ready, or ended) or the wait runs out, then the
            # state as it is: the caller hears of ready the instant it happens, without polling.
            with anyio.move_on_after(wait):
                await session.settled.wait()
        return JSONResponse(session.to_json(base_url(request.scope)))

    async def delete_session(request: Request) -> Response:
        authenticate(request)
        await sessions.delete(session_for(request).id)
        return Response(status_code=204)

    async def screenshot(request: Request) -> Response:
        authenticate(request)
        png = await sessions.screenshot(session_for(request).id)
        return Response(png, media_type="image/png")

    async def preview_token(request: Request) -> Response:
        authenticate(request)
        session = session_for(request)
        await json_body(request)  # reserved for future options; must still be JSON if present
        token, grant = sessions.mint_preview_token(session.id)
        base = base_url(request.scope)
        expires = (
            grant.expires_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{grant.expires_at.microsecond // 1000:03d}Z"
        )
        return JSONResponse(
            {
                "url": f"{base}/v1/sessions/{session.id}/preview?token={token}",
                "expires_at": expires,
                "input_enabled": sessions.input_enabled,
                "fps": sessions.preview_fps,
            }
        )

    async def preview_page(request: Request) -> Response:
        session = session_for(request)
        sessions.check_preview_token(session.id, request.query_params.get("token"))
        return HTMLResponse(render_preview_page(session.id), headers=PREVIEW_PAGE_HEADERS)

    async def preview_socket(websocket: WebSocket) -> None:
        session_id = str(websocket.path_params["session_id"])
        try:
            check_session_id(session_id)
            session = sessions.check_preview_token(session_id, websocket.query_params.get("token"))
            _, browser = sessions.ready_browser(session.id)
        except (ValueError, BackendError) as exc:
            status, code, message = (
                (exc.status, exc.code, exc.message)
                if isinstance(exc, BackendError)
                else (404, "session_not_found", "")
            )
            await deny_websocket(websocket, status, code, message)
            return
        await websocket.accept()
        try:
            await stream_preview(
                websocket,
                browser,
                fps=sessions.preview_fps,
                input_enabled=sessions.input_enabled,
                session_ended=session.ended,
            )
        except (WebSocketDisconnect, CDPException, TimeoutError) as exc:
            log.debug("live view of %s ended: %s", session_id, type(exc).__name__)
        with contextlib.suppress(Exception):
            await websocket.close(code=1000, reason="session ended" if not session.is_open else "")

    async def cdp_socket(websocket: WebSocket) -> None:
        """The session's cdp_url: CDP proxied to the browser's pipe for the token's holder only."""
        session_id = str(websocket.path_params["session_id"])
        try:
            session, browser = sessions.check_cdp_token(session_id, websocket.query_params.get("token"))
            client = await browser.process.devtools.open_client("cdp_url")
        except BackendError as exc:
            await deny_websocket(websocket, exc.status, exc.code, exc.message)
            return
        except CDPException:
            await deny_websocket(websocket, 409, "session_not_open", f"session {session_id} is ending")
            return
        try:
            await websocket.accept()
            await _proxy_cdp(websocket, client, session.ended)
        finally:
            await client.close()
        with contextlib.suppress(Exception):
            await websocket.close(code=1000, reason="session ended" if not session.is_open else "")

    async def on_backend_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BackendError)
        return _error(exc.status, exc.code, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("local API request %s %s failed", request.method, request.url.path)
        return _error(500, "internal_error", f"the local API failed: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.running():
            yield

    app = Starlette(
        routes=[
            Route("/v1/sessions", create_session, methods=["POST"]),
            Route("/v1/sessions", list_sessions, methods=["GET"]),
            Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
            Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
            Route("/v1/sessions/{session_id}/screenshot", screenshot, methods=["POST"]),
            Route("/v1/sessions/{session_id}/preview-token", preview_token, methods=["POST"]),
            Route("/v1/sessions/{session_id}/preview", preview_page, methods=["GET"]),
            WebSocketRoute("/v1/sessions/{session_id}/preview/ws", preview_socket),
            WebSocketRoute("/v1/sessions/{session_id}/cdp", cdp_socket),
        ],
        middleware=[Middleware(HostGuard, rules=rules)],
        exception_handlers={
            BackendError: on_backend_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.backend = sessions
    app.state.host_rules = rules
    return app


async def _proxy_cdp(websocket: WebSocket, client: PipeClient, session_ended: anyio.Event) -> None:
    """Carry CDP messages between one websocket and its pipe client until either side ends."""

    async def upstream() -> None:
        while True:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            raw = received.get("text")
            if raw is None:
                raw = (received.get("bytes") or b"").decode("utf-8", "replace")
            try:
                message = json.loads(raw)
            except ValueError:
                await websocket.send_text(json.dumps({"error": _INVALID_JSON}))
                continue
            if (
                not isinstance(message, dict)
                or isinstance(message.get("id"), bool)
                or not isinstance(message.get("id"), int)
                or not isinstance(message.get("method"), str)
            ):
                message_id = message.get("id") if isinstance(message, dict) else None
                await websocket.send_text(json.dumps({"id": message_id, "error": _INVALID_MESSAGE}))
                continue
            try:
                await client.send(message)
            except TransportClosed:
                return

    async def downstream() -> None:
        with contextlib.suppress(TransportClosed):
            while True:
                await websocket.send_text(json.dumps(await client.receive()))

    await first_to_finish(
        upstream,
        downstream,
        session_ended.wait,
        quiet=(WebSocketDisconnect, OSError, TransportClosed),
        what="CDP proxy",
    )


# What Chromium's own endpoint answers to malformed messages.
_INVALID_JSON = {"code": -32700, "message": "Message must be a valid JSON"}
_INVALID_MESSAGE = {
    "code": -32600,
    "message": "Message must have integer 'id' and string 'method' properties",
}


# -- running it -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalAPIServer:
    """A running local API: where to reach it and what runs it."""

    base_url: str
    host: str
    port: int
    app: Starlette

    @property
    def backend(self) -> LocalBackend:
        backend = self.app.state.backend
        assert isinstance(backend, LocalBackend)
        return backend


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host program."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound before the server starts so port 0 can be reported.

    ``proto`` must say TCP: asyncio turns on TCP_NODELAY only for sockets that do, and
    without it every response waits ~40 ms for a delayed ACK (Nagle), measured here.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _check_exposure(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"refusing to serve the local API on {host} without an api_key: "
            "it would accept any key from any machine that can reach it"
        )


class _RedactTokens(logging.Filter):
    """uvicorn logs each websocket's path with its query string: drop the token values from it."""

    _TOKEN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1[redacted]", message), ()
        return True


_REDACTOR = _RedactTokens()


def _config(app: Starlette, log_level: str) -> uvicorn.Config:
    for name in ("uvicorn.error", "uvicorn.access"):
        if _REDACTOR not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_REDACTOR)
    return uvicorn.Config(
        app,
        lifespan="on",
        # The sans-I/O implementation avoids the websockets library's deprecated legacy API.
        ws="websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS else "websockets",
        log_level=log_level,
        log_config=None,
        # Access logs would print live-view tokens (they travel in the query string).
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@contextlib.asynccontextmanager
async def running_local_api(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
    **options: Any,
) -> AsyncIterator[LocalAPIServer]:
    """Run the local API in this event loop for the ``async with`` block (``--local`` mode).

    Port 0 picks a free port; the yielded ``base_url`` says which. On exit every
    browser is closed before this returns.
    """
    _check_exposure(host, api_key)
    app = create_local_app(api_key=api_key, bind_host=host, **options)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    server = _EmbeddedServer(_config(app, log_level))
    stopped = anyio.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        # Stopped by should_exit (a graceful stop: the lifespan closes every browser), never by
        # a cancellation of the block, which would skip the lifespan's shutdown (owned tasks are
        # shielded from it); force_exit bounds it.
        try:
            await server.serve(sockets=[sock])
        except Exception as exc:  # reported by the startup wait below, not by the task group
            failure.append(exc)
        finally:
            stopped.set()

    try:
        async with owned_tasks() as tasks:
            tasks.start_soon(serve, name="local-api")
            try:
                with anyio.fail_after(startup_timeout):
                    # uvicorn offers a flag, not an event, for "started".
                    while not server.started:
                        if stopped.is_set():
                            if failure:
                                raise failure[0]
                            raise RuntimeError("the local API stopped during startup")
                        await anyio.sleep(0.01)
                url_host = f"[{host}]" if ":" in host else host
                yield LocalAPIServer(f"http://{url_host}:{bound_port}", host, bound_port, app)
            finally:
                server.should_exit = True  # a graceful stop closes every browser (the lifespan)
                with anyio.move_on_after(60, shield=True):
                    await stopped.wait()
                if not stopped.is_set():
                    server.force_exit = True
    finally:
        sock.close()


async def serve_local_api(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str | None = None,
    log_level: str = "info",
    on_ready: Callable[[LocalAPIServer], None] | None = None,
    **options: Any,
) -> None:
    """Serve the local API until SIGINT/SIGTERM (``chaser-mcp local-api``); closes every browser on exit.

    ``on_ready`` is called once the port is bound and startup is done, e.g. to print the URL.
    """
    _check_exposure(host, api_key)
    app = create_local_app(api_key=api_key, bind_host=host, **options)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, log_level))
    url_host = f"[{host}]" if ":" in host else host
    info = LocalAPIServer(f"http://{url_host}:{bound_port}", host, bound_port, app)

    async def announce() -> None:
        # uvicorn offers a flag, not an event, for "started".
        while not server.started and not server.should_exit:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(info)

    try:
        async with owned_tasks() as tasks:
            tasks.start_soon(announce, name="local-api-announce")
            await server.serve(sockets=[sock])
            tasks.cancel()
    finally:
        sock.close()


__all__ = [
    "MAX_WAIT_SECONDS",
    "LocalAPIServer",
    "create_local_app",
    "preferred_wait",
    "running_local_api",
    "serve_local_api",
]
