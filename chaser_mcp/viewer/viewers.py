"""Viewer links: who may open which session's live view, for how long, and the routes that serve it.

A link is a capability URL, ``<origin>/viewer/<token>``: 32 random bytes, bound when minted
to one session and to the caller who asked (its principal and its API view, so the viewer
acts with that caller's key and nobody else's), good until it expires, and for nothing but
that session's view, its input and its Done button. The token is kept only as its SHA-256;
the API key never leaves the server (the websocket to the browser is the server's own).

Guessing is bounded: an address that presents ``guess_limit`` unknown tokens within
``guess_window`` seconds gets 429 for every viewer request until the window passes. Requests
pass the same Host allow-list as ``/mcp`` (``admit``); the websocket and the Done POST must
also come from the viewer's own origin (a page elsewhere cannot drive a session through a
person's browser).

An embeddable link (minted inside ``Viewers.embedding()``, for a host that renders the server's MCP
App inline) may be framed by any page, since the host's sandbox origin is not known in advance and
the token is the credential; its websocket and Done also accept ``Origin: null``, which is what the
page sends when a host's sandbox gives the frame an opaque origin. Ordinary links stay unframeable.

Where it is served: on the HTTP transports, the app mounts ``routes()`` and calls
``serve_at(<public origin>)``; otherwise (stdio, an in-process client) the first ``mint``
opens a loopback server on an ephemeral port, owned by ``run()`` for the process's life.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import anyio
import anyio.abc
import uvicorn
from cachetools import TTLCache
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Scope
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..api import ChaserClient, ChaserError
from ..browser._tasks import first_to_finish
from ..browser.page import PageError
from .page import page_headers, render_page

__all__ = ["Admit", "ViewerLink", "ViewerUnavailable", "Viewers", "origin_of"]

log = logging.getLogger("chaser_mcp.viewer")

DEFAULT_TTL = 600.0
DEFAULT_FPS = 15
MAX_LINKS = 10_000
KEEP_EXPIRED = 3600.0  # an expired link still answers "expired" (not "unknown") for this long

_EMBEDDING: contextvars.ContextVar[bool] = contextvars.ContextVar("chaser_viewer_embedding", default=False)

Admit = Callable[[Scope], Response | None]
"""The transport's Host check for a viewer request: None to let it in, or the refusal to send."""

# Close codes the page shows the reason of.
CLOSE_ENDED = 4000  # the session ended, or its browser went away
CLOSE_EXPIRED = 4001
CLOSE_REVOKED = 4002
CLOSE_UNAVAILABLE = 4003  # the session could not be looked up or reached
CLOSE_GOING_AWAY = 1001  # the server is stopping


class ViewerUnavailable(Exception):
    """No viewer can be served right now (no public origin, and no loopback server could open)."""


@dataclass(frozen=True)
class ViewerLink:
    """A minted link: the URL to give a person, the id to wait on (``Viewers.done``), and its terms."""

    url: str
    link_id: str
    session_id: str
    expires_at: datetime
    input_enabled: bool
    fps: int
    embeddable: bool = False


@dataclass(eq=False)
class _Link:
    link_id: str
    session_id: str
    api: ChaserClient
    principal: str
    input_enabled: bool
    expires: float  # on the monotonic clock
    expires_at: datetime
    embeddable: bool = False
    done: anyio.Event = field(default_factory=anyio.Event)
    opened: anyio.Event = field(default_factory=anyio.Event)
    revoked: anyio.Event = field(default_factory=anyio.Event)
    watching: int = 0


class _Guesses:
    """Unknown tokens per client address: a fixed window from the first miss, in a bounded cache."""

    def __init__(self, limit: int, window: float, maxsize: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self._misses: TTLCache[str, list[int]] = TTLCache(maxsize, window)

    def blocked(self, address: str) -> bool:
        entry = self._misses.get(address)
        return entry is not None and entry[0] >= self.limit

    def miss(self, address: str) -> None:
        entry = self._misses.get(address)
        if entry is None:
            self._misses[address] = [1]
        else:
            entry[0] += 1  # in place: the window keeps running from the first miss


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL as a browser writes it in ``Origin`` (default ports dropped)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


class Viewers:
    """Every viewer link of this process, and the routes that serve them."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        fps: int = DEFAULT_FPS,
        timeout: float = 30.0,
        guess_limit: int = 20,
        guess_window: float = 60.0,
        frame_ancestors: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``frame_ancestors``: origins allowed to frame the page (a host showing it inline); none by
        default, when the page also says ``X-Frame-Options: DENY``."""
        self.ttl = ttl
        self.fps = fps
        self.timeout = timeout
        self.frame_ancestors = frame_ancestors
        self._clock = clock
        self._guesses = _Guesses(guess_limit, guess_window)
        self._by_digest: dict[bytes, _Link] = {}
        self._by_id: dict[str, _Link] = {}
        self._origin: str | None = None  # where links point: the public origin, or the loopback server's
        self._base = ""  # the public URL's path prefix (a proxy serving the app under a path)
        self._admit: Admit = self._own_host_only
        self._tasks: anyio.abc.TaskGroup | None = None
        self._starting = anyio.Lock()
        self._closing = anyio.Event()

    # -- the interface tools use --------------------------------------------------------------------

    async def mint(
        self,
        session_id: str,
        api: ChaserClient,
        principal: str,
        *,
        input_enabled: bool = True,
        ttl: float | None = None,
        embeddable: bool | None = None,
    ) -> ViewerLink:
        """A new link to ``session_id``'s live view for ``principal``, acting with ``api``.

        The caller checks first that ``api`` can reach the session (the viewer checks again
        each time the page connects). ``ttl`` defaults to the viewer's (10 minutes); an open
        view closes when its link expires. ``embeddable`` (by default, whether this runs inside
        ``embedding()``) lets any page frame the link's view.
        """
        origin = await self._serving_origin()
        embeddable = _EMBEDDING.get() if embeddable is None else embeddable
        lifetime = self.ttl if ttl is None else ttl
        token = secrets.token_urlsafe(32)
        link = _Link(
            link_id="vl_" + secrets.token_urlsafe(12),
            session_id=session_id,
            api=api,
            principal=principal,
            input_enabled=input_enabled,
            expires=self._clock() + lifetime,
            expires_at=(datetime.now(UTC) + timedelta(seconds=lifetime)).replace(microsecond=0),
            embeddable=embeddable,
        )
        self._forget_old()
        self._by_digest[_digest(token)] = link
        self._by_id[link.link_id] = link
        return ViewerLink(
            url=f"{origin}{self._base}/viewer/{token}",
            link_id=link.link_id,
            session_id=session_id,
            expires_at=link.expires_at,
            input_enabled=input_enabled,
            fps=self.fps,
            embeddable=embeddable,
        )

    def link(self, link_id: str, *, principal: str | None = None) -> ViewerLink:
        """A minted link's terms, by id (its ``url`` is empty: only the token's digest is kept).
        KeyError as ``done``."""
        found = self._link(link_id, principal)
        return ViewerLink(
            url="",
            link_id=found.link_id,
            session_id=found.session_id,
            expires_at=found.expires_at,
            input_enabled=found.input_enabled,
            fps=self.fps,
        )

    @staticmethod
    @contextmanager
    def embedding() -> Iterator[None]:
        """Links minted within are embeddable (a tool call whose result a host shows inline)."""
        token = _EMBEDDING.set(True)
        try:
            yield
        finally:
            _EMBEDDING.reset(token)

    def done(self, link_id: str, *, principal: str | None = None) -> anyio.Event:
        """Set when the person presses Done in the viewer. KeyError for an unknown link (or, with
        ``principal``, another caller's)."""
        return self._link(link_id, principal).done

    def opened(self, link_id: str, *, principal: str | None = None) -> anyio.Event:
        """Set once a viewer page has connected to the link's stream."""
        return self._link(link_id, principal).opened

    def is_open(self, link_id: str, *, principal: str | None = None) -> bool:
        """Whether a viewer page is connected to the link's stream right now."""
        return self._link(link_id, principal).watching > 0

    def revoke(self, link_id: str) -> None:
        """End the link now: open views close, and the URL stops working."""
        link = self._by_id.get(link_id)
        if link is not None:
            link.expires = min(link.expires, self._clock())
            link.revoked.set()

    def __len__(self) -> int:
        return len(self._by_id)

    def _link(self, link_id: str, principal: str | None) -> _Link:
        link = self._by_id.get(link_id)
        if link is None or (principal is not None and link.principal != principal):
            raise KeyError("no such viewer link")
        return link

    def _forget_old(self) -> None:
        now = self._clock()
        for link in [link for link in self._by_id.values() if link.expires + KEEP_EXPIRED < now]:
            self._drop(link)
        while len(self._by_id) >= MAX_LINKS:  # the oldest first (dicts keep insertion order)
            self._drop(next(iter(self._by_id.values())))

    def _drop(self, link: _Link) -> None:
        self._by_id.pop(link.link_id, None)
        for digest, held in list(self._by_digest.items()):
            if held is link:
                del self._by_digest[digest]

    # -- where it is served -------------------------------------------------------------------------

    def serve_at(self, public_url: str, admit: Admit | None = None) -> None:
        """Links point at ``public_url`` (the app mounts ``routes()``); ``admit`` is the Host check."""
        self._origin = origin_of(public_url)
        self._base = urlsplit(public_url).path.rstrip("/")
        if admit is not None:
            self._admit = admit

    @property
    def origin(self) -> str | None:
        """Where links point, once known."""
        return self._origin

    async def run(self) -> None:
        """Own the loopback server (opened by the first ``mint`` without a public origin) until
        cancelled; then close every open view."""
        try:
            async with anyio.create_task_group() as tg:
                self._tasks = tg
                await anyio.sleep_forever()
        finally:
            self._tasks = None
            self._closing.set()

    async def serving_origin(self) -> str:
        """Where links point, opening the loopback server first if there is no public origin.
        Raises ``ViewerUnavailable`` when neither can be had."""
        return await self._serving_origin()

    async def _serving_origin(self) -> str:
        if self._origin is not None:
            return self._origin
        async with self._starting:
            if self._origin is None:
                if self._tasks is None:
                    raise ViewerUnavailable("the live viewer is not running in this process")
                await self._tasks.start(self._serve_loopback)
        assert self._origin is not None
        return self._origin

    async def _serve_loopback(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            Starlette(routes=self.routes()),
            lifespan="off",
            log_config=None,  # uvicorn's own would send its access log to stdout: stdio's channel
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = _QuietServer(config)
        finished = anyio.Event()
        serving = anyio.CancelScope(shield=True)  # stopped by should_exit, so it shuts down in order

        async def serve() -> None:
            try:
                with serving:
                    await server.serve(sockets=[sock])
            finally:
                finished.set()
                server.up.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            await server.up.wait()
            if not server.started:
                raise ViewerUnavailable("the live viewer's loopback server did not start")
            self._origin = f"http://127.0.0.1:{port}"
            log.info("live viewer on http://127.0.0.1:%d", port)
            task_status.started()
            try:
                await finished.wait()
            finally:
                self._origin = None
                self._closing.set()  # open views end, so the server's graceful shutdown is quick
                server.should_exit = True
                with anyio.move_on_after(5, shield=True):
                    await finished.wait()
                serving.cancel()

    # -- the routes ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """``GET /viewer/{token}`` (the page), its websocket ``/viewer/{token}/ws`` and ``POST .../done``."""
        return [
            Route("/viewer/{token}", self._page, methods=["GET"]),
            Route("/viewer/{token}/done", self._done, methods=["POST"]),
            WebSocketRoute("/viewer/{token}/ws", self._socket),
        ]

    def _own_host_only(self, scope: Scope) -> Response | None:
        """The loopback server's Host check: its own address and nothing else (DNS rebinding)."""
        if self._origin is None or Headers(scope=scope).get("host", "") != self._origin.split("://", 1)[1]:
            return Response("Invalid Host header", status_code=421)
        return None

    def _check(self, scope: Scope, token: str, *, same_origin: bool) -> _Link | Response:
        """The link a request may use, or the response refusing it."""
        if (refusal := self._admit(scope)) is not None:
            return refusal
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if self._guesses.blocked(address):
            return _refusal(429, "too_many_guesses", "too many unknown viewer links; wait and try again",
                            headers={"Retry-After": str(round(self._guesses.window))})  # fmt: skip
        link = self._by_digest.get(_digest(token))
        if link is None:
            self._guesses.miss(address)
            return _refusal(404, "unknown_link", "no such viewer link; ask for a new one")
        origin = Headers(scope=scope).get("origin")
        if same_origin and origin != self._origin and not (link.embeddable and origin == "null"):
            return _refusal(403, "foreign_origin", "the viewer only answers its own page")
        if link.revoked.is_set() or link.expires <= self._clock():
            return _refusal(410, "link_expired", "this viewer link has expired; ask for a new one")
        return link

    async def _page(self, request: Request) -> Response:
        checked = self._check(request.scope, request.path_params["token"], same_origin=False)
        if isinstance(checked, Response):
            return checked
        headers = page_headers(self.frame_ancestors, embeddable=checked.embeddable)
        return HTMLResponse(render_page(), headers=headers)

    async def _done(self, request: Request) -> Response:
        checked = self._check(request.scope, request.path_params["token"], same_origin=True)
        if isinstance(checked, Response):
            return checked
        checked.done.set()
        log.info("a person pressed Done in the live view of %s", checked.session_id)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})

    async def _socket(self, websocket: WebSocket) -> None:
        checked = self._check(websocket.scope, websocket.path_params["token"], same_origin=True)
        if isinstance(checked, Response):
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await websocket.send_denial_response(checked)
            else:
                await websocket.close(1008)
            return
        link = checked
        await websocket.accept()
        with self._watching(link):
            code, reason = await self._serve_view(websocket, link)
        with anyio.move_on_after(2, shield=True):
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # the viewer already left
                await websocket.close(code, reason)

    @contextmanager
    def _watching(self, link: _Link) -> Iterator[None]:
        link.watching += 1
        link.opened.set()
        try:
            yield
        finally:
            link.watching -= 1

    async def _serve_view(self, websocket: WebSocket, link: _Link) -> tuple[int, str]:
        """Stream until the viewer leaves, the session ends, or the link expires; the close to send."""
        # Imported on use: the CDP client and websockets are not what a server start-up should pay for.
        from ..browser.cdp import CDPConnection, CDPException
        from .stream import stream_session

        try:
            cdp_url, headers = await self._cdp_target(link)
        except _NotViewable as exc:
            return CLOSE_UNAVAILABLE, str(exc)
        ended: list[tuple[int, str]] = []

        async def stream() -> None:
            try:
                async with CDPConnection.connect(cdp_url, headers=headers, open_timeout=self.timeout) as cdp:
                    await stream_session(
                        websocket, cdp, input_enabled=link.input_enabled, fps=self.fps, timeout=self.timeout
                    )
            except (CDPException, PageError, TimeoutError) as exc:
                log.info("a live view of %s ended: %s", link.session_id, type(exc).__name__)
            ended.append((CLOSE_ENDED, "the session's browser is gone"))

        async def expiry() -> None:
            await anyio.sleep(max(0.0, link.expires - self._clock()))
            ended.append((CLOSE_EXPIRED, "the link has expired"))

        async def revoked() -> None:
            await link.revoked.wait()
            ended.append((CLOSE_REVOKED, "the link was withdrawn"))

        async def closing() -> None:
            await self._closing.wait()
            ended.append((CLOSE_GOING_AWAY, "the server is stopping"))

        await first_to_finish(stream, expiry, revoked, closing, quiet=(), what="live view")
        return ended[0] if ended else (1000, "")

    async def _cdp_target(self, link: _Link) -> tuple[str, dict[str, str]]:
        """The session's CDP URL and handshake headers, looked up with the minting caller's key."""
        try:
            with anyio.fail_after(self.timeout):
                session = await link.api.get_session(link.session_id)
        except (ChaserError, TimeoutError) as exc:
            raise _NotViewable(f"the session could not be looked up ({type(exc).__name__})") from exc
        if session.status != "ready" or not session.cdp_url:
            raise _NotViewable(f"the session is {session.status}")
        headers: dict[str, str] = {}
        # The cloud's CDP endpoint wants the API key: sent by this server over TLS, never to the page.
        if session.cdp_url.startswith("wss://") and link.api.api_key:
            headers["Authorization"] = f"Bearer {link.api.api_key}"
        return session.cdp_url, headers


class _NotViewable(Exception):
    """The link's session cannot be shown (ended, unknown to its caller's key, or unreachable)."""


class _QuietServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals (stdio): it must not take them over.
    ``up`` is set once it listens (or has given up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
