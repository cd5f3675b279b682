"""Session bookkeeping for the local API: one real Chromium per session, nothing left behind.

A session's life is a cancel scope: its deadline is the TTL, DELETE and server
shutdown cancel it, the browser exiting ends it. Inside, one runner task (in the
backend's task group, which the server's lifespan owns) holds the browser's
``async with`` block from launch to teardown, so the browser is always closed.
HTTP handlers only read state and cancel the scope.

With ``warm_browsers=1`` the backend keeps one browser launched ahead of need (a Chromium launch
is most of a local session's ~0.5 s create -> ready). Its runner holds it like a session's and,
when a create claims it, goes on to serve that session with it, so a claimed browser is owned
exactly like a freshly launched one. The warm browser counts against ``max_sessions``: one is
launched only while sessions plus live browsers leave room, and a create always takes it rather
than failing. A replacement is launched only once no session is launching (so two launches never
compete for the cores), ``warm_refill_delay`` after a session readied on the warm one (so it does
not compete with the agent's first page either), and after a session's browser is gone; no
browser ever serves a second session.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread

from chaser_mcp.browser._tasks import OwnedTasks, first_to_finish, owned_tasks

from .chromium import BrowserNotFound, find_chromium, sweep_stale_profiles
from .runtime import LocalBrowser

log = logging.getLogger("chaser_mcp.local")

TTL_MAX_SECONDS = 3600
TTL_DEFAULT_SECONDS = 1800
TTL_MIN_SECONDS = 60

Status = Literal["creating", "ready", "closed", "error"]


class BackendError(Exception):
    """An API-level refusal: HTTP status, error code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status} {code}: {message}")


def session_not_found(session_id: str) -> BackendError:
    return BackendError(404, "session_not_found", f"no session {session_id} in this workspace")


def new_session_id() -> str:
    """``sess_`` + a UUIDv7 (time-ordered, like the cloud's ids)."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    text = f"{value:032x}"
    return f"sess_{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class LocalSession:
    """One session's public fields plus the runner that owns its browser."""

    id: str
    created_at: datetime
    expires_at: datetime
    life: anyio.CancelScope  # its deadline is the TTL's end; cancelled by DELETE and shutdown
    status: Status = "creating"
    device: str | None = None
    # The credential of this session's cdp_url: the CDP proxy opens for it alone.
    cdp_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    ready_at: datetime | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None
    browser: LocalBrowser | None = None
    ended: anyio.Event = field(default_factory=anyio.Event)
    # Set when the session leaves ``creating`` (ready, or ended first): what a held GET waits on.
    settled: anyio.Event = field(default_factory=anyio.Event)
    browser_gone: anyio.Event = field(default_factory=anyio.Event)  # every process ended

    @property
    def is_open(self) -> bool:
        return self.status in ("creating", "ready")

    def end(self, status: Status, reason: str) -> None:
        """Record how the session ended; the first recorded reason wins."""
        if not self.is_open:
            return
        self.status = status
        self.ended_reason = reason
        self.ended_at = datetime.now(UTC)
        self.ended.set()
        self.settled.set()

    def become_ready(self, browser: LocalBrowser) -> None:
        """Record the browser as ready and wake every GET held for it (``Prefer: wait``)."""
        self.device = browser.device.label
        self.status = "ready"
        self.ready_at = datetime.now(UTC)
        self.settled.set()

    def cdp_url(self, base_url: str) -> str | None:
        """The session's CDP websocket on the local API at ``base_url`` (None until it was ready).

        ``base_url`` is the server's configured or bound address, never a request's Host.
        """
        if self.ready_at is None:
            return None
        ws_base = "ws" + base_url.removeprefix("http") if base_url.startswith("http") else base_url
        return f"{ws_base.rstrip('/')}/v1/sessions/{self.id}/cdp?token={self.cdp_token}"

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "session",
            "status": self.status,
            "device": self.device,
            "cdp_url": self.cdp_url(base_url),
            # A local browser has no proxy and no metered traffic.
            "bytes_up": None,
            "bytes_down": None,
            "proxy_ip": None,
            "proxy_region": None,
            "created_at": _iso(self.created_at),
            "ready_at": _iso(self.ready_at),
            "expires_at": _iso(self.expires_at),
            "ended_at": _iso(self.ended_at),
            "ended_reason": self.ended_reason,
        }


@dataclass(eq=False)
class WarmBrowser:
    """A browser launched ahead of need, and the session that claimed it (None while it waits)."""

    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)  # cancelled at shutdown
    browser: LocalBrowser | None = None  # set once launched
    session: LocalSession | None = None
    claimed: anyio.Event = field(default_factory=anyio.Event)
    gone: anyio.Event = field(default_factory=anyio.Event)  # its runner has ended

    def claim(self, session: LocalSession) -> None:
        self.session = session
        self.claimed.set()


@dataclass(frozen=True)
class PreviewGrant:
    session_id: str
    expires_at: datetime
    deadline: float


class LocalBackend:
    """Every session of one local API server.

    ``min_ttl_seconds`` exists so tests can watch a TTL expire in a second or two; the
    API's documented minimum is 60 s and the CLI never lowers it. ``warm_browsers`` (0 or 1)
    defaults to 0 here, so counts of browsers stay exact; the command lines default to 1.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 3,
        executable: str | None = None,
        base_dir: Path | None = None,
        min_ttl_seconds: int = TTL_MIN_SECONDS,
        launch_timeout: float = 30.0,
        close_timeout: float = 10.0,
        history_limit: int = 1000,
        preview_token_ttl: float = 300.0,
        preview_fps: int = 10,
        input_enabled: bool = True,
        warm_browsers: int = 0,
        warm_refill_delay: float = 1.0,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if warm_browsers not in (0, 1):
            raise ValueError(f"warm_browsers must be 0 or 1, got {warm_browsers!r}")
        self.max_sessions = max_sessions
        self.executable = executable
        self.base_dir = base_dir
        self.min_ttl_seconds = min_ttl_seconds
        self.launch_timeout = launch_timeout
        self.close_timeout = close_timeout
        self.history_limit = history_limit
        self.preview_token_ttl = preview_token_ttl
        self.preview_fps = preview_fps
        self.input_enabled = input_enabled
        self.warm_browsers = warm_browsers
        self.warm_refill_delay = warm_refill_delay
        self._warm: WarmBrowser | None = None  # the one waiting for a session, launched or launching
        self._warms: set[WarmBrowser] = set()  # every warm runner still running, claimed or not
        self._sessions: dict[str, LocalSession] = {}  # insertion order = creation order
        self._grants: dict[str, PreviewGrant] = {}  # sha256(token) -> grant
        self._runners: OwnedTasks | None = None
        self._shutting_down = False

    # -- life of the server ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LocalBackend]:
        """Serve sessions for the block (the server's lifespan); every browser is closed on exit.

        Starts by sweeping profile dirs (and browsers) left behind by servers that died hard.
        On exit every open session ends ``server_shutdown`` and its runner closes its browser,
        each step bounded (see ``BrowserProcess.stop``).
        """
        await anyio.to_thread.run_sync(sweep_stale_profiles, self.base_dir)
        async with owned_tasks() as runners:
            self._runners = runners
            self._top_up()
            try:
                yield self
            finally:
                self._end_all()

    async def aclose(self) -> None:
        """End every open session now (``server_shutdown``); return once their browsers are gone (bounded)."""
        self._end_all()
        with anyio.move_on_after(self.close_timeout + self.launch_timeout):
            for session in list(self._sessions.values()):
                await session.browser_gone.wait()
            for warm in list(self._warms):
                await warm.gone.wait()

    def _end_all(self) -> None:
        self._shutting_down = True
        for session in self._sessions.values():
            if session.is_open:
                session.end("closed", "server_shutdown")
            session.life.cancel()
        for warm in self._warms:
            warm.scope.cancel()

    @property
    def has_warm(self) -> bool:
        """A warm browser is launched or being launched, waiting for the next create."""
        return self._warm is not None

    @property
    def warm(self) -> LocalBrowser | None:
        """The launched browser waiting for the next create, if there is one."""
        warm = self._warm
        return warm.browser if warm is not None and not warm.gone.is_set() else None

    # -- the API --------------------------------------------------------------------------------

    def open_sessions(self) -> list[LocalSession]:
        return [s for s in self._sessions.values() if s.is_open]

    def create(self, ttl_seconds: int) -> LocalSession:
        """Register a session and start its browser in the background; returns at once."""
        if self._shutting_down:
            raise BackendError(503, "shutting_down", "the local API is shutting down")
        if not self.min_ttl_seconds <= ttl_seconds <= TTL_MAX_SECONDS:
            raise BackendError(
                400,
                "invalid_request",
                f"ttl_seconds must be between {self.min_ttl_seconds} and {TTL_MAX_SECONDS}, "
                f"got {ttl_seconds}",
            )
        open_now = len(self.open_sessions())
        if open_now >= self.max_sessions:
            raise BackendError(
                429,
                "session_limit_reached",
                f"{open_now} sessions are open, the local limit is {self.max_sessions}; "
                "delete one (DELETE /v1/sessions/:id) before creating another",
            )
        if self.executable is None:
            try:
                find_chromium()
            except BrowserNotFound as exc:
                raise BackendError(503, "browser_not_found", str(exc)) from None
        if self._runners is None:
            raise BackendError(503, "not_running", "the local API has not started")
        now = datetime.now(UTC)
        session = LocalSession(
            id=new_session_id(),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            life=anyio.CancelScope(deadline=anyio.current_time() + ttl_seconds),
        )
        self._sessions[session.id] = session
        self._forget_old_sessions()
        warm, self._warm = self._warm, None
        if warm is not None and not warm.gone.is_set():
            # Launched (or launching) already: its runner serves this session from here on.
            warm.claim(session)
        else:
            self._runners.start_soon(self._run, session, name=f"session {session.id}")
        return session

    def get(self, session_id: str) -> LocalSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise session_not_found(session_id)
        return session

    def list(self, *, limit: int, cursor: str | None) -> tuple[list[LocalSession], str | None, bool]:
        """Newest first; the cursor names the last session of the previous page."""
        ordered = sorted(self._sessions.values(), key=lambda s: (s.created_at, s.id), reverse=True)
        if cursor:
            after = _decode_cursor(cursor)
            ordered = [s for s in ordered if (s.created_at, s.id) < after]
        page, rest = ordered[:limit], ordered[limit:]
        next_cursor = _encode_cursor(page[-1]) if rest and page else None
        return page, next_cursor, bool(rest)

    async def delete(self, session_id: str) -> None:
        """Stop a session and return once its browser is gone (bounded)."""
        session = self.get(session_id)
        if not session.is_open:
            raise BackendError(409, "session_not_open", f"session {session_id} is already {session.status}")
        session.end("closed", "client_delete")
        session.life.cancel()
        # Answer once no process is left (each step of the stop is bounded); the profile's
        # files are removed right after.
        with anyio.move_on_after(self.close_timeout + self.launch_timeout):
            await session.browser_gone.wait()

    async def screenshot(self, session_id: str) -> bytes:
        session = self.get(session_id)
        browser = self._ready_browser(session)
        try:
            return await browser.screenshot(image_format="png")
        except Exception as exc:
            if not session.is_open:
                raise BackendError(409, "session_not_open", f"session {session_id} ended") from None
            raise BackendError(
                502, "browser_error", f"the browser failed to capture the screen: {exc}"
            ) from None

    def ready_browser(self, session_id: str) -> tuple[LocalSession, LocalBrowser]:
        session = self.get(session_id)
        return session, self._ready_browser(session)

    def _ready_browser(self, session: LocalSession) -> LocalBrowser:
        if session.status != "ready" or session.browser is None:
            raise BackendError(
                409, "session_not_open", f"session {session.id} is {session.status}, not ready"
            )
        return session.browser

    # -- live-view tokens -----------------------------------------------------------------------

    def mint_preview_token(self, session_id: str) -> tuple[str, PreviewGrant]:
        session = self.get(session_id)
        self._ready_browser(session)
        now = time.monotonic()
        self._grants = {k: g for k, g in self._grants.items() if g.deadline > now}
        token = secrets.token_urlsafe(32)
        grant = PreviewGrant(
            session_id,
            datetime.now(UTC) + timedelta(seconds=self.preview_token_ttl),
            now + self.preview_token_ttl,
        )
        self._grants[_token_key(token)] = grant
        return token, grant

    def check_preview_token(self, session_id: str, token: str | None) -> LocalSession:
        """The session a live-view token opens; 401 if unknown, 403 if expired or for another session."""
        grant = self._grants.get(_token_key(token)) if token else None
        if grant is None:
            raise BackendError(401, "invalid_token", "missing or unknown preview token; mint a new one")
        if grant.session_id != session_id:
            raise BackendError(403, "invalid_token", "this preview token belongs to another session")
        if grant.deadline <= time.monotonic():
            raise BackendError(403, "token_expired", "this preview token has expired; mint a new one")
        session = self.get(session_id)
        self._ready_browser(session)
        return session

    def check_cdp_token(self, session_id: str, token: str | None) -> tuple[LocalSession, LocalBrowser]:
        """The ready session a cdp_url token opens; 403 for anything else (unknown id included).

        One answer for every failure, so the endpoint tells a caller without the token
        nothing, not even whether the session exists. Compared in constant time.
        """
        session = self._sessions.get(session_id)
        expected = session.cdp_token if session is not None else secrets.token_urlsafe(32)
        matches = hmac.compare_digest((token or "").encode(), expected.encode())
        if session is None or not matches:
            raise BackendError(403, "invalid_token", "missing or wrong CDP token; use the session's cdp_url")
        return session, self._ready_browser(session)

    # -- the runner -----------------------------------------------------------------------------

    async def _run(self, session: LocalSession) -> None:
        """The session's life: launch, ready, wait for its end, close. Never raises."""
        try:
            with session.life:
                async with self._launch() as browser:
                    await self._serve(session, browser)
            if session.life.cancelled_caught:
                session.end("closed", "ttl_expired")  # no-op when DELETE or shutdown came first
        except Exception as exc:
            self._launch_or_browser_failed(session, exc)
        finally:
            self._session_over(session)

    def _launch(self) -> contextlib.AbstractAsyncContextManager[LocalBrowser]:
        """A browser as every session gets it: same binary, flags, profile base and phone."""
        return LocalBrowser.running(
            executable=self.executable,
            base_dir=self.base_dir,
            timeout=self.launch_timeout,
            grace=self.close_timeout / 4,  # the stop takes up to four steps
        )

    async def _serve(self, session: LocalSession, browser: LocalBrowser) -> None:
        """Ready the session on ``browser`` and wait for its end; the browser is stopped after."""
        try:
            session.browser = browser
            if not session.is_open:  # ended while the browser was starting
                return
            session.become_ready(browser)
            log.info("session %s ready (browser pid %d)", session.id, browser.process.pid)
            self._top_up_soon()
            code = await browser.wait_exited()
            session.end("error", "browser_exited")
            log.warning("session %s: the browser exited on its own (code %s)", session.id, code)
        finally:
            # Shielded and bounded; DELETE answers now, the profile goes right after.
            await browser.stop(grace=self.close_timeout / 4)
            session.browser_gone.set()

    def _launch_or_browser_failed(self, session: LocalSession, exc: Exception) -> None:
        reason = "launch_failed" if session.ready_at is None else "browser_error"
        log.warning("session %s: %s: %s", session.id, reason.replace("_", " "), exc)
        session.end("error", reason)

    def _session_over(self, session: LocalSession) -> None:
        session.browser_gone.set()
        log.info("session %s %s (%s)", session.id, session.status, session.ended_reason)
        self._top_up()  # its browser is gone (never reused): room for a fresh warm one

    # -- the warm browser -----------------------------------------------------------------------

    def _top_up_soon(self) -> None:
        """A replacement for the warm browser a session just readied on, a moment later.

        Not at once: on a small machine a Chromium launch takes a core for a few hundred
        milliseconds, and the agent's first page usually comes right after create_session.
        """
        if self.warm_browsers < 1 or self._runners is None:
            return
        self._runners.start_soon(self._top_up_after_delay, name="warm browser refill")

    async def _top_up_after_delay(self) -> None:
        await anyio.sleep(self.warm_refill_delay)
        self._top_up()

    def _live_browsers(self) -> int:
        """Sessions whose browser is not gone yet, plus every warm browser (claimed ones are sessions)."""
        sessions = sum(1 for s in self._sessions.values() if not s.browser_gone.is_set())
        return sessions + sum(1 for w in self._warms if w.session is None)

    def _top_up(self) -> None:
        """Launch a warm browser if one is wanted, there is room under the cap and nothing is launching."""
        if (
            self.warm_browsers < 1
            or self._shutting_down
            or self._runners is None
            or self._warm is not None
            or self._live_browsers() >= self.max_sessions
            or any(s.status == "creating" for s in self._sessions.values())
        ):
            return
        if self.executable is None:
            try:
                find_chromium()
            except BrowserNotFound:
                return  # a create says so; a warm browser just does not happen
        warm = WarmBrowser()
        self._warm = warm
        self._warms.add(warm)
        self._runners.start_soon(self._run_warm, warm, name="warm browser")

    async def _run_warm(self, warm: WarmBrowser) -> None:
        """Launch a browser, wait for a session to claim it, then serve that session. Never raises."""
        session: LocalSession | None = None
        try:
            with warm.scope:
                async with self._launch() as browser:
                    warm.browser = browser
                    log.info("warm browser ready (pid %d)", browser.process.pid)
                    if warm.session is None:
                        await first_to_finish(
                            browser.wait_exited, warm.claimed.wait, quiet=(), what="warm browser"
                        )
                    session = warm.session
                    if session is None:
                        log.warning("the warm browser (pid %d) exited on its own", browser.process.pid)
                        return
                    with session.life:
                        await self._serve(session, browser)
                    if session.life.cancelled_caught:
                        session.end("closed", "ttl_expired")
        except Exception as exc:
            session = warm.session
            if session is not None:
                self._launch_or_browser_failed(session, exc)
            else:
                log.warning("the warm browser failed to start: %s", exc)
        finally:
            if self._warm is warm:
                self._warm = None
            self._warms.discard(warm)
            warm.gone.set()
            session = warm.session
            if session is not None:
                if session.is_open:  # claimed as the warm browser was ending: it never served
                    if self._shutting_down:
                        session.end("closed", "server_shutdown")
                    else:
                        session.end("error", "launch_failed")
                self._session_over(session)
            # An unclaimed warm browser that failed is not relaunched here (a broken binary would
            # loop); the next session's ready or end tries again.

    def _forget_old_sessions(self) -> None:
        ended = [s for s in self._sessions.values() if not s.is_open and s.browser_gone.is_set()]
        for session in ended[: max(0, len(self._sessions) - self.history_limit)]:
            del self._sessions[session.id]


def _token_key(token: str) -> str:
    # Look tokens up by hash: timing differences in the dict lookup say nothing about a token.
    return hashlib.sha256(token.encode()).hexdigest()


def _encode_cursor(session: LocalSession) -> str:
    raw = f"{session.created_at.isoformat()}|{session.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, session_id = raw.split("|", 1)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive time")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BackendError(400, "invalid_cursor", "cursor is not one this server handed out") from None
    return moment, session_id


__all__ = [
    "TTL_DEFAULT_SECONDS",
    "TTL_MAX_SECONDS",
    "TTL_MIN_SECONDS",
    "BackendError",
    "LocalBackend",
    "LocalSession",
    "PreviewGrant",
    "WarmBrowser",
    "new_session_id",
]
