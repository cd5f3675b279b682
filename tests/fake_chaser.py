"""A loopback stand-in for the Chaser Sessions API, with fault injection.

It speaks the API as ``shared/reference/chaser-sessions-api.md`` documents it (paths, bodies, status
codes, error codes, the creating -> ready delay, cursor paging, TTL expiry, one workspace per key) over
real sockets, so the real client code runs unchanged against it.

It is built on ``http.server`` rather than ASGI because faults need the raw socket: a dropped
connection must close without any HTTP answer, which an ASGI app cannot do.

Use it in-process (``with FakeChaser() as fake: ... fake.url``) or as its own process::

    python -m tests.fake_chaser --port 0 --ready-delay 0.2 --key ck_... [--fault-rate 0.1 --fault-seed 7]

which prints its URL on the first line of stdout and serves until SIGTERM or SIGINT. ``--fault-rate``
spreads that share of every request over the fault kinds of ``FAULT_KINDS`` (seeded, so a run can be
repeated); ``GET /_fake/state`` (never faulted, never recorded) tells another process what happened.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import io
import json
import os
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

DEFAULT_KEY = "ck_test_fake_0123456789abcdef"
DEVICE = "Android 10 - Chrome 137 (Mobile)"
TTL_MIN, TTL_MAX, TTL_DEFAULT = 60, 3600, 1800
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 100, 20
PREVIEW_TOKEN_LIFETIME = timedelta(minutes=5)

# Paths are matched on the raw request target, never percent-decoded: an id such as ``sess_%2e%2e``
# is just an id that no session has, and ``..`` never climbs anywhere.
_SESSIONS = re.compile(r"/v1/sessions")
_SESSION = re.compile(r"/v1/sessions/(?P<id>[^/]+)")
STATE_PATH = "/_fake/state"
_SESSION_ACTION = re.compile(r"/v1/sessions/(?P<id>[^/]+)/(?P<action>screenshot|preview-token)")


# -- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer with this status and body instead of doing anything (state is left untouched).

    ``body``: bytes as they are, str as text, a dict or list as JSON, None for an empty body.
    ``after_effect=True`` performs the request first and sends this answer instead of its own (a
    broken proxy mangling a real answer).
    """

    code: int
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    after_effect: bool = False


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (on top of any latency), then answer normally."""

    seconds: float


@dataclass(frozen=True)
class Hang:
    """Never answer; the connection is closed without a response when the server stops.

    ``after_effect=True`` performs the request first (a create really creates), then hangs.
    """

    after_effect: bool = False


@dataclass(frozen=True)
class Drop:
    """Close the connection without any HTTP response.

    ``after_effect=True`` performs the request first and then drops the answer: the case where a
    client cannot know whether its request landed. ``reset=True`` aborts the connection with a TCP
    RST (connection reset by peer) instead of closing it in order.
    """

    after_effect: bool = False
    reset: bool = False


Fault = Status | Delay | Hang | Drop


def fault_kinds(slow_seconds: float = 1.5) -> dict[str, Fault]:
    """Every kind of fault a real API (or what stands between it and the client) answers with, by the
    name the fault mix reports it under."""

    def error(code: int, error_code: str, headers: Mapping[str, str] | None = None) -> Status:
        body = {"error": {"code": error_code, "message": f"injected {code}"}}
        return Status(code, body, headers or {})

    return {
        "429": error(429, "rate_limited", {"Retry-After": "1"}),
        "500": error(500, "internal_error"),
        "503": error(503, "unavailable"),
        "reset": Drop(reset=True),
        "reset_after_effect": Drop(after_effect=True, reset=True),
        "drop": Drop(),
        "drop_after_effect": Drop(after_effect=True),
        "slow": Delay(slow_seconds),
        # What a broken proxy can send: a success that says gzip and is not.
        "malformed_gzip": Status(
            200, b"this body is not gzip", {"Content-Encoding": "gzip"}, "application/json"
        ),
    }


FAULT_KINDS = tuple(fault_kinds())


@dataclass
class _Rule:
    fault: Fault
    method: str | None
    path: re.Pattern[str] | None
    remaining: int | None  # None: until clear_faults()
    probability: float | None = None  # None: every matching request; else each one with this chance
    label: str | None = None  # the name faults_injected() counts it under

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.fullmatch(path) is not None


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it, whatever answer (or fault) it then got.

    ``path`` is the raw request path without the query; ``headers`` has lower-case names;
    ``conn_id`` numbers TCP connections, so two requests with the same id shared a connection.
    """

    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    conn_id: int
    received_at: float  # time.monotonic()

    @property
    def api_key(self) -> str | None:
        """The bearer token the request carried, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Session:
    id: str
    key: str
    seq: int
    created_at: datetime
    expires_at: datetime
    ready_point: datetime
    profile: str
    fail_reason: str | None
    proxy_ip: str
    deleted_at: datetime | None = None
    cdp_url: str | None = None  # a real browser's, given by a test; else the cloud's own form


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return _Response(status, body, "application/json", headers or {})


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload).encode(), "application/json")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339_ms(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid7(now: datetime) -> uuid.UUID:
    """A time-ordered UUIDv7, like the ids in the reference (the stdlib has none before 3.14)."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


# -- screenshots ----------------------------------------------------------------------------------

_png_cache: dict[tuple[int, int, bool], bytes] = {}
_png_lock = threading.Lock()


def render_png(size: tuple[int, int], noise: bool = False) -> bytes:
    """A real PNG of ``size``; with ``noise`` its pixels are random, so it barely compresses.

    Cached per (size, noise) for the whole process: generating a 1082x2402 noise image takes a while.
    """
    cache_key = (size[0], size[1], noise)
    with _png_lock:
        cached = _png_cache.get(cache_key)
        if cached is not None:
            return cached
        from PIL import Image, ImageDraw  # imported lazily: only screenshots need Pillow

        width, height = size
        if noise:
            image = Image.frombytes("RGB", size, os.urandom(width * height * 3))
        else:
            image = Image.new("RGB", size, (246, 247, 249))
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, 0, width, max(1, height // 12)), fill=(32, 33, 36))
            for row in range(1, 8):
                top = row * height // 9
                draw.rectangle(
                    (width // 16, top, width - width // 16, top + height // 20), fill=(200, 210, 230)
                )
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1 if noise else 6)
        _png_cache[cache_key] = out.getvalue()
        return _png_cache[cache_key]


# -- the server -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeChaser

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-answer (a timeout, a test that gave up) is normal here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        # A connection to reset must not be shut down in order first (that sends a FIN): closing
        # it with SO_LINGER 0 sends the RST alone.
        if self.fake._take_reset(request):
            self.close_request(request)
            return
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-chaser/1"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't wait on ACKs
    server: _Server
    conn_id: int

    def setup(self) -> None:
        super().setup()
        self.conn_id = self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and benchmarks read what they need from the records

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        fake = self.server.fake
        try:
            body = self._read_body()
        except ValueError:
            self._send(_error(400, "invalid_request", "unreadable request body"))
            self.close_connection = True
            return
        path, _, raw_query = self.path.partition("?")
        if path == STATE_PATH and self.command == "GET":
            return self._send(_json(200, fake.state()))  # the control view: no record, no fault
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = fake._record(self.command, path, raw_query, body, headers, self.conn_id)
        fault = fake._take_fault(self.command, path)

        if fake.latency > 0 and fake._stopping.wait(fake.latency):
            return self._drop()
        if isinstance(fault, Status):
            if fault.after_effect:
                fake._dispatch_unanswered(record)
            return self._send(_fault_response(fault))
        if isinstance(fault, Delay) and fake._stopping.wait(fault.seconds):
            return self._drop()
        if isinstance(fault, Hang | Drop):
            if fault.after_effect:
                fake._dispatch_unanswered(record)
            if isinstance(fault, Hang):
                fake._stopping.wait()
            return self._drop(reset=isinstance(fault, Drop) and fault.reset)
        self._send(fake._dispatch(record))

    def _drop(self, *, reset: bool = False) -> None:
        """Close the connection without writing a single byte of response (``reset``: with an RST)."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.fake._mark_reset(self.connection)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and response.status != 204:
            self.wfile.write(response.body)


def _fault_response(fault: Status) -> _Response:
    body, content_type = fault.body, fault.content_type
    if body is None:
        return _Response(fault.code, b"", content_type, fault.headers)
    if isinstance(body, dict | list):
        return _Response(
            fault.code, json.dumps(body).encode(), content_type or "application/json", fault.headers
        )
    if isinstance(body, str):
        return _Response(
            fault.code, body.encode(), content_type or "text/plain; charset=utf-8", fault.headers
        )
    return _Response(fault.code, body, content_type or "application/octet-stream", fault.headers)


class FakeChaser:
    """The Chaser Sessions API on 127.0.0.1, in a background thread, with fault injection.

    Every key in ``api_keys`` is its own workspace. Status is computed lazily from the fake's clock
    (``advance_clock`` moves it), so a session turns ready ``ready_delay`` seconds after creation and
    closed (``ttl_expired``) at ``expires_at`` without anything running in the background.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_KEY,),
        ready_delay: float = 0.2,
        latency: float = 0.0,
        screenshot_size: tuple[int, int] = (412, 915),
        screenshot_noise: bool = False,
        port: int = 0,
        bound_socket: socket.socket | None = None,
        seed: int | None = None,
    ) -> None:
        """``bound_socket``: a socket already bound (not listening) to serve on, so a test can hold a
        port where connections are refused and start serving on it later, without any race.
        ``seed``: for the draws of probabilistic faults, so a fault mix can be repeated."""
        self.api_keys = frozenset(api_keys)
        self.ready_delay = ready_delay
        self.latency = latency
        self.screenshot_size = screenshot_size
        self.screenshot_noise = screenshot_noise
        self._port = port
        self._bound_socket = bound_socket
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._seq = 0
        self._clock_offset = timedelta(0)
        self._fail_next: list[str] = []
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._deleted: list[str] = []
        self._deleted_at: dict[str, float] = {}  # id -> time.time() of the DELETE that closed it
        self._redundant_deletes: dict[str, int] = {}  # id -> DELETEs that reached it after that one
        self._unanswered_creates: set[str] = set()  # created, but the 201 never reached the client
        self._random = random.Random(seed)
        self._injected: dict[str, dict[str, int]] = {}  # label -> method -> count
        self._resets: set[socket.socket] = set()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._conn_counter = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("already started")
        if self._bound_socket is not None:
            server = _Server(self._bound_socket.getsockname()[:2], _Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = self._bound_socket
            host, port = self._bound_socket.getsockname()[:2]
            server.server_address = (host, port)
            server.server_name, server.server_port = host, port
            server.server_activate()
        else:
            server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-chaser", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even while requests hang or connections sit idle."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # releases every Hang, Delay and latency wait
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._handler_threads)
        for conn in connections:  # idle keep-alive connections would otherwise block their threads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls ----------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        probability: float | None = None,
        label: str | None = None,
    ) -> None:
        """Queue ``fault`` for the next ``times`` requests (None: all of them) matching ``method`` and
        ``path`` (a regex matched against the whole raw path). The first queued match wins.

        With ``probability``, a matching request gets the fault only with that chance (drawn from the
        fake's seeded generator: the same sequence of requests gets the same faults; concurrent requests
        may take the draws in another order); otherwise the next rule is tried and ``times`` is not used up.
        ``label`` names the rule in ``faults_injected()`` (default: the fault's kind).
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every matching request")
        if probability is not None and not 0 < probability <= 1:
            raise ValueError("probability must be above 0 and at most 1")
        rule = _Rule(
            fault,
            method.upper() if method else None,
            re.compile(path) if path else None,
            times,
            probability,
            label or type(fault).__name__.lower(),
        )
        with self._lock:
            self._rules.append(rule)

    def inject_mix(
        self, rate: float, kinds: Mapping[str, Fault], *, method: str | None = None, path: str | None = None
    ) -> None:
        """Give ``rate`` of the matching requests a fault, shared evenly among ``kinds`` (by name), for
        as long as the fake runs (or until ``clear_faults``)."""
        if not 0 < rate <= 1 or not kinds:
            raise ValueError("rate must be above 0 and at most 1, with at least one kind")
        share = rate / len(kinds)
        for i, (name, fault) in enumerate(kinds.items()):
            # Rules are tried in order, so rule i only sees what the i before it left: its chance
            # given that is share / (1 - i * share), which makes every kind's overall share equal.
            chance = min(1.0, share / (1 - i * share))
            self.inject(fault, method=method, path=path, times=None, probability=chance, label=name)

    def faults_injected(self) -> dict[str, dict[str, int]]:
        """How many faults each rule (by label) gave, by request method."""
        with self._lock:
            return {label: dict(by_method) for label, by_method in self._injected.items()}

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def fail_next_creates(self, n: int = 1, reason: str = "browser_crashed") -> None:
        """The next ``n`` sessions created go creating -> error (``ended_reason=reason``) after the
        ready delay, instead of turning ready."""
        with self._lock:
            self._fail_next.extend([reason] * n)

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's clock forward: sessions turn ready and expire as if that time had passed."""
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    def seed_session(
        self,
        *,
        key: str = DEFAULT_KEY,
        ttl_seconds: int = TTL_DEFAULT,
        ready: bool = True,
        cdp_url: str | None = None,
    ) -> str:
        """Create a session directly (no request is recorded); returns its id.

        ``ready=True``: ready at once; ``ready=False``: stays creating until its TTL runs out.
        ``cdp_url``: a real browser's CDP websocket (a local session's) to report as this session's,
        for tests that drive a cloud session's page; the fake has no browsers of its own."""
        with self._lock:
            session = self._create(key, ttl_seconds, "default", ready_delay=0.0 if ready else None)
            session.cdp_url = cdp_url
            return session.id

    def now(self) -> datetime:
        with self._lock:
            return self._now()

    # -- inspection -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many requests matched ``method`` and ``path_regex`` (fullmatch on the raw path)."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.fullmatch(r.path))
        )

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def deleted_ids(self) -> list[str]:
        """Ids a DELETE request stopped (its 204 was produced, whether or not it was delivered)."""
        with self._lock:
            return list(self._deleted)

    def state(self) -> dict[str, Any]:
        """What another process needs to judge a run (``GET /_fake/state`` answers with this): every
        session with its TTL, when a DELETE closed it (Unix time) and whether its create was answered;
        the faults given by label and method; the requests seen by method; and, per session, the
        DELETEs that reached it after one had already closed it (a double delete, unless a fault
        hid the first one's answer)."""
        with self._lock:
            now = self._now()
            sessions = [
                {
                    "id": s.id,
                    "status": self._status(s, now),
                    "ttl_seconds": round((s.expires_at - s.created_at).total_seconds()),
                    "deleted_at": self._deleted_at.get(s.id),
                    "create_answered": s.id not in self._unanswered_creates,
                }
                for s in self._newest_first(self._sessions.values())
            ]
            injected = {label: dict(by_method) for label, by_method in self._injected.items()}
            requests: dict[str, int] = {}
            for r in self._requests:
                requests[r.method] = requests.get(r.method, 0) + 1
            redundant = dict(self._redundant_deletes)
        return {
            "sessions": sessions,
            "faults": injected,
            "requests": requests,
            "redundant_deletes": redundant,
        }

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Every session of every workspace, newest first, as GET /v1/sessions/:id shows it."""
        with self._lock:
            now = self._now()
            return [self._render(s, now) for s in self._newest_first(self._sessions.values())]

    def session(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._sessions.get(session_id)
            return self._render(found, self._now()) if found else None

    def open_sessions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Sessions still creating or ready (the ones that cost money), optionally of one workspace."""
        with self._lock:
            now = self._now()
            chosen = (s for s in self._sessions.values() if key is None or s.key == key)
            rendered = [self._render(s, now) for s in self._newest_first(chosen)]
        return [s for s in rendered if s["status"] in ("creating", "ready")]

    # -- plumbing used by the handler -------------------------------------------------------------

    def _connection_opened(self, conn: socket.socket) -> int:
        with self._lock:
            self._conn_counter += 1
            self._connections.add(conn)
            self._handler_threads.add(threading.current_thread())
            return self._conn_counter

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._handler_threads.discard(threading.current_thread())

    def _record(
        self, method: str, path: str, raw_query: str, body: bytes, headers: dict[str, str], conn_id: int
    ) -> RecordedRequest:
        record = RecordedRequest(
            method=method,
            path=path,
            raw_query=raw_query,
            query=parse_qs(raw_query, keep_blank_values=True),
            body=body,
            headers=headers,
            conn_id=conn_id,
            received_at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)
        return record

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.probability is not None and self._random.random() >= rule.probability:
                        continue
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    by_method = self._injected.setdefault(rule.label or "", {})
                    by_method[method] = by_method.get(method, 0) + 1
                    return rule.fault
        return None

    def _dispatch_unanswered(self, request: RecordedRequest) -> None:
        """Perform a request whose own answer will never reach the client; a create made this way is
        remembered as one whose id nobody learned."""
        response = self._dispatch(request)
        if request.method == "POST" and response.status == 201 and _SESSIONS.fullmatch(request.path):
            with self._lock:
                self._unanswered_creates.add(json.loads(response.body)["id"])

    def _mark_reset(self, conn: socket.socket) -> None:
        with self._lock:
            self._resets.add(conn)

    def _take_reset(self, conn: socket.socket) -> bool:
        with self._lock:
            if conn in self._resets:
                self._resets.discard(conn)
                return True
            return False

    def _now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    # -- the API ----------------------------------------------------------------------------------

    def _dispatch(self, request: RecordedRequest) -> _Response:
        key = request.api_key
        if key is None or key not in self.api_keys:
            return _error(401, "unauthorized", "missing or invalid API key")
        method, path = request.method, request.path
        if _SESSIONS.fullmatch(path):
            if method == "POST":
                return self._handle_create(key, request.body)
            if method == "GET":
                return self._handle_list(key, request.query)
            return _method_not_allowed("GET, POST")
        if match := _SESSION_ACTION.fullmatch(path):
            if method != "POST":
                return _method_not_allowed("POST")
            if match["action"] == "screenshot":
                return self._handle_screenshot(key, match["id"])
            return self._handle_preview_token(key, match["id"], request.body)
        if match := _SESSION.fullmatch(path):
            if method == "GET":
                return self._handle_get(key, match["id"])
            if method == "DELETE":
                return self._handle_delete(key, match["id"])
            return _method_not_allowed("GET, DELETE")
        return _error(404, "not_found", f"no route for {method} {path}")

    def _handle_create(self, key: str, body: bytes) -> _Response:
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error(400, "invalid_request", "request body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "invalid_request", "request body must be a JSON object")
        ttl = payload.get("ttl_seconds", TTL_DEFAULT)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
            return _error(
                400, "invalid_request", f"ttl_seconds must be an integer between {TTL_MIN} and {TTL_MAX}"
            )
        profile = payload.get("profile", "default")
        if not isinstance(profile, str):
            return _error(400, "invalid_request", "profile must be a string")
        with self._lock:
            session = self._create(key, ttl, profile, ready_delay=self.ready_delay)
            fields = ("id", "object", "status", "cdp_url", "created_at", "expires_at")
            rendered = self._render(session, self._now())
        return _json(201, {name: rendered[name] for name in fields})

    def _create(self, key: str, ttl: int, profile: str, *, ready_delay: float | None) -> _Session:
        """Must hold the lock. ``ready_delay=None``: never turns ready by itself."""
        now = self._now()
        self._seq += 1
        session_id = f"sess_{_uuid7(now)}"
        ready_point = now + (
            timedelta(seconds=ready_delay) if ready_delay is not None else timedelta(days=3650)
        )
        session = _Session(
            id=session_id,
            key=key,
            seq=self._seq,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            ready_point=ready_point,
            profile=profile,
            fail_reason=self._fail_next.pop(0) if self._fail_next else None,
            proxy_ip=f"203.0.113.{self._seq % 254 + 1}",
        )
        self._sessions[session_id] = session
        return session

    def _handle_list(self, key: str, query: dict[str, list[str]]) -> _Response:
        limit = LIMIT_DEFAULT
        if "limit" in query:
            raw = query["limit"][-1]
            if not re.fullmatch(r"[0-9]{1,4}", raw) or not LIMIT_MIN <= int(raw) <= LIMIT_MAX:
                return _error(
                    400, "invalid_request", f"limit must be an integer between {LIMIT_MIN} and {LIMIT_MAX}"
                )
            limit = int(raw)
        after: tuple[datetime, int] | None = None
        if "cursor" in query:
            after = _decode_cursor(query["cursor"][-1])
            if after is None:
                return _error(400, "invalid_request", "cursor is not a cursor this API returned")
        with self._lock:
            now = self._now()
            ordered = self._newest_first(s for s in self._sessions.values() if s.key == key)
            if after is not None:
                ordered = [s for s in ordered if (s.created_at, s.seq) < after]
            page, has_more = ordered[:limit], len(ordered) > limit
            data = [self._render(s, now) for s in page]
        next_cursor = _encode_cursor(page[-1]) if has_more else None
        return _json(200, {"object": "list", "data": data, "next_cursor": next_cursor, "has_more": has_more})

    def _lookup(self, key: str, session_id: str) -> _Session | None:
        """Must hold the lock. Another workspace's session is as absent as an unknown one."""
        session = self._sessions.get(session_id)
        return session if session is not None and session.key == key else None

    def _handle_get(self, key: str, session_id: str) -> _Response:
        with self._lock:
            session = self._lookup(key, session_id)
            if session is None:
                return _not_found(session_id)
            return _json(200, self._render(session, self._now()))

    def _handle_delete(self, key: str, session_id: str) -> _Response:
        with self._lock:
            session = self._lookup(key, session_id)
            if session is None:
                return _not_found(session_id)
            now = self._now()
            if self._status(session, now) not in ("creating", "ready"):
                if session_id in self._deleted_at:
                    self._redundant_deletes[session_id] = self._redundant_deletes.get(session_id, 0) + 1
                return _not_open(session_id)
            session.deleted_at = now
            self._deleted.append(session_id)
            self._deleted_at[session_id] = time.time()
        return _Response(204)

    def _handle_screenshot(self, key: str, session_id: str) -> _Response:
        with self._lock:
            session = self._lookup(key, session_id)
            if session is None:
                return _not_found(session_id)
            if self._status(session, self._now()) != "ready":
                return _not_open(session_id)
        return _Response(200, render_png(self.screenshot_size, self.screenshot_noise), "image/png")

    def _handle_preview_token(self, key: str, session_id: str, body: bytes) -> _Response:
        try:
            options = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error(400, "invalid_request", "request body is not valid JSON")
        if not isinstance(options, dict):
            return _error(400, "invalid_request", "request body must be a JSON object")
        with self._lock:
            session = self._lookup(key, session_id)
            if session is None:
                return _not_found(session_id)
            now = self._now()
            if self._status(session, now) != "ready":
                return _not_open(session_id)
        token = secrets.token_urlsafe(24)
        return _json(
            200,
            {
                "url": f"wss://stream.chaser.sh/sessions/{session_id}/preview?token={token}",
                "expires_at": _rfc3339_ms(now + PREVIEW_TOKEN_LIFETIME),
                "input_enabled": True,
                "fps": 5,
            },
        )

    # -- session state, computed lazily from the clock --------------------------------------------

    @staticmethod
    def _newest_first(sessions: Iterable[_Session]) -> list[_Session]:
        return sorted(sessions, key=lambda s: (s.created_at, s.seq), reverse=True)

    @staticmethod
    def _ending(session: _Session, now: datetime) -> tuple[str, datetime, str] | None:
        """(status, ended_at, ended_reason) once the session has ended, else None."""
        if session.deleted_at is not None:
            return "closed", session.deleted_at, "client_delete"
        # A failing session errors when it would have turned ready, unless its TTL ran out first.
        if (
            session.fail_reason is not None
            and session.ready_point <= now
            and session.ready_point < session.expires_at
        ):
            return "error", session.ready_point, session.fail_reason
        if session.expires_at <= now:
            return "closed", session.expires_at, "ttl_expired"
        return None

    def _status(self, session: _Session, now: datetime) -> str:
        ending = self._ending(session, now)
        if ending is not None:
            return ending[0]
        return "ready" if session.ready_point <= now else "creating"

    def _render(self, session: _Session, now: datetime) -> dict[str, Any]:
        ending = self._ending(session, now)
        end = ending[1] if ending else now
        became_ready = session.fail_reason is None and session.ready_point <= min(end, session.expires_at)
        ready_at = session.ready_point if became_ready else None
        active = max(0.0, (end - session.ready_point).total_seconds()) if ready_at else 0.0
        return {
            "id": session.id,
            "object": "session",
            "status": self._status(session, now),
            "device": DEVICE,
            "cdp_url": session.cdp_url or f"wss://cdp.chaser.sh/sessions/{session.id}",
            "bytes_up": int(active * 900),
            "bytes_down": int(active * 1100),
            "proxy_ip": session.proxy_ip if ready_at else None,
            "proxy_region": "us-east" if ready_at else None,
            "created_at": _rfc3339(session.created_at),
            "ready_at": _rfc3339(ready_at) if ready_at else None,
            "expires_at": _rfc3339(session.expires_at),
            "ended_at": _rfc3339(ending[1]) if ending else None,
            "ended_reason": ending[2] if ending else None,
        }


def _not_found(session_id: str) -> _Response:
    return _error(404, "session_not_found", f"session {session_id[:80]} not found")


def _not_open(session_id: str) -> _Response:
    return _error(409, "session_not_open", f"session {session_id[:80]} is not open")


def _method_not_allowed(allow: str) -> _Response:
    return _error(405, "method_not_allowed", f"allowed: {allow}", {"Allow": allow})


def _encode_cursor(session: _Session) -> str:
    # Shaped like the real one (created_at|id, base64), plus the sequence number to break ties.
    raw = f"{session.created_at.isoformat()}|{session.seq}|{session.id}"
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        created, seq, _ = base64.b64decode(cursor, validate=True).decode().split("|")
        when = datetime.fromisoformat(created)
        return (when, int(seq)) if when.tzinfo is not None else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# -- as a process ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A loopback Chaser Sessions API for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-delay", type=float, default=0.2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--key", action="append", help="a valid API key (repeat for more workspaces)")
    parser.add_argument("--screenshot-size", default="412x915", help="WIDTHxHEIGHT")
    parser.add_argument("--screenshot-noise", action="store_true", help="random pixels: a large PNG")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of requests that get a fault (e.g. 0.1)"
    )
    parser.add_argument("--fault-seed", type=int, help="seed for the fault draws (a repeatable run)")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated kinds to share the rate among (default: all of {', '.join(FAULT_KINDS)})",
    )
    parser.add_argument("--slow-seconds", type=float, default=1.5, help="how long a 'slow' answer waits")
    args = parser.parse_args(argv)
    kinds = fault_kinds(args.slow_seconds)
    chosen = [name.strip() for name in args.fault_kinds.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in kinds]:
        parser.error(f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(kinds)}")
    width, _, height = args.screenshot_size.partition("x")

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake = FakeChaser(
        api_keys=args.key or [DEFAULT_KEY],
        ready_delay=args.ready_delay,
        latency=args.latency,
        screenshot_size=(int(width), int(height)),
        screenshot_noise=args.screenshot_noise,
        port=args.port,
        seed=args.fault_seed,
    )
    if args.fault_rate > 0:
        fake.inject_mix(args.fault_rate, {name: kinds[name] for name in chosen})
    with fake:
        print(fake.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
