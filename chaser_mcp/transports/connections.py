"""Whose connection it is: which principal opened each ``Mcp-Session-Id`` and SSE stream.

Every MCP session and SSE stream belongs to the principal that opened it; anyone else
is answered 404, exactly as if it did not exist. Multi-tenant, each principal may hold
a bounded number of them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from starlette.responses import JSONResponse, Response

__all__ = ["ConnectionRegistry", "announced_stream", "parse_stream_id", "too_many_connections"]

PRUNE_INTERVAL = 5.0  # seconds between sweeps for the expired sessions of callers that never came back


@dataclass
class _McpSession:
    principal: str
    idle_since: float
    in_flight: int = 0


class ConnectionRegistry:
    """Which principal opened each ``Mcp-Session-Id`` and SSE stream, and how many each holds.

    An MCP session counts until the client deletes it, the SDK answers 404 for it, or it
    has had no request in flight for the SDK's idle timeout (the SDK's own rule, mirrored:
    a session's end has no other outside sign). An SSE stream counts while it is open.
    ``clock`` is the server's monotonic clock (tests move it forward instead of sleeping).
    """

    def __init__(
        self,
        *,
        per_caller_limit: int | None,
        session_idle_timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = per_caller_limit
        self._idle_timeout = session_idle_timeout
        self._clock = clock
        self._sessions: dict[str, _McpSession] = {}
        self._by_principal: dict[str, set[str]] = {}
        self._streams: dict[UUID, str] = {}
        self._held: Counter[str] = Counter()  # open SSE streams and MCP sessions being opened
        self._last_prune = clock()

    @property
    def limit(self) -> int | None:
        return self._limit

    def session_owner(self, session_id: str) -> str | None:
        session = self._sessions.get(session_id)
        if session is None or self._expired(session, self._clock()):
            return None
        return session.principal

    def stream_owner(self, stream: UUID) -> str | None:
        return self._streams.get(stream)

    def held_by(self, principal: str) -> int:
        now = self._clock()
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
        self._sessions[session_id] = _McpSession(principal, idle_since=self._clock())
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
            session.idle_since = self._clock()

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
        now = self._clock()
        if now - self._last_prune < PRUNE_INTERVAL:
            return
        self._last_prune = now
        for session_id in [s for s, session in self._sessions.items() if self._expired(session, now)]:
            self.drop_session(session_id)


def too_many_connections(limit: int) -> Response:
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


def announced_stream(body: bytes) -> UUID | None:
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
    return parse_stream_id(values[0]) if values else None


def parse_stream_id(raw: str) -> UUID | None:
    try:
        return UUID(hex=raw)  # exactly SseServerTransport's parse: every spelling it accepts
    except ValueError:
        return None
