"""A small anyio client for the Chrome DevTools Protocol over one websocket (or another transport).

One reader task owns the socket's receive side: responses are matched to their
request by ``id``, events are handed to subscribers by ``(method, sessionId)``.
The reader lives in a task group that the ``async with`` block owns
(``CDPConnection.connect`` or ``CDPConnection.over``): when the block ends, the
transport is closed (bounded, even under cancellation) and the reader with it.
Sessions are "flat" (``Target.attachToTarget`` with ``flatten: true``), so one
connection drives the browser and every page attached through it.

Two rules learnt the hard way (see the CDP reference notes):

* messages are unlimited in size (``max_size=None``): a full-DPR mobile screenshot
  is 1-2 MB of base64 and the library's 1 MiB default drops the connection;
* no ``Origin`` header is sent: Chromium refuses handshakes that carry one unless
  it was started with ``--remote-allow-origins``.

Handshake headers (the cloud's ``Authorization: Bearer`` key) are passed straight
to the websocket library and never appear in a log line or an exception message.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import anyio
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from .._net import is_loopback
from ._tasks import OwnedTasks, owned_tasks

log = logging.getLogger("chaser_mcp.browser.cdp")

DEFAULT_TIMEOUT = 30.0
# How long closing a transport may take (a websocket close handshake, a pipe client's detach),
# also when the block that owned the connection is being cancelled.
CLOSE_TIMEOUT = 5.0
# The websockets library logs every handshake header and the request line at DEBUG, which
# would put the cloud key (Authorization) and a local cdp_url's token in the log: its
# logger for our connections never goes below INFO.
_WIRE_LOG = logging.getLogger("chaser_mcp.browser.cdp.wire")
_WIRE_LOG.setLevel(logging.INFO)


class CDPException(Exception):
    """Base class for every error this module raises."""


class CDPError(CDPException):
    """The browser answered a command with a protocol error (``{"error": {code, message}}``)."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{message} (CDP error {code})")


class CDPConnectionClosed(CDPException):
    """The websocket is gone: every pending and later command fails with this."""


class CDPConnectFailed(CDPException):
    """The websocket could not be opened (refused, unreachable, handshake rejected, timed out)."""


class CDPTimeout(CDPException, TimeoutError):
    """A command got no answer in time (the connection itself may still be fine)."""


@dataclass(frozen=True)
class CDPEvent:
    """One protocol event; ``session_id`` is None for browser-level events."""

    method: str
    params: dict[str, Any]
    session_id: str | None


_CLOSED = object()  # queued into every subscription when the connection ends


@dataclass(eq=False)
class EventStream:
    """Events matching some methods on one session, queued from the moment of subscription.

    Subscribe *before* sending the command that causes the event, so it cannot slip
    by. Use as a (sync) context manager so the subscription is dropped afterwards;
    an unconsumed stream keeps queueing.
    """

    _connection: CDPConnection
    keys: frozenset[tuple[str, str | None]]
    _queue: collections.deque[CDPEvent | object] = field(default_factory=collections.deque)
    _arrived: anyio.Event | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection._unsubscribe(self)

    def _put(self, item: CDPEvent | object) -> None:
        self._queue.append(item)
        if self._arrived is not None:
            self._arrived.set()

    async def get(self, timeout: float | None = None) -> CDPEvent:
        """The next event; CDPConnectionClosed once the socket is gone, CDPTimeout after ``timeout``."""
        try:
            with anyio.fail_after(timeout):
                while not self._queue:
                    self._arrived = anyio.Event()
                    await self._arrived.wait()
        except TimeoutError:
            names = ", ".join(sorted(method for method, _ in self.keys))
            raise CDPTimeout(f"no {names} event within {timeout:g} s") from None
        item = self._queue[0] if self._queue[0] is _CLOSED else self._queue.popleft()
        if item is _CLOSED:  # stays queued: later calls fail the same way
            raise self._connection._closed_error()
        assert isinstance(item, CDPEvent)
        return item

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CDPEvent:
        return await self.get()


class TransportClosed(Exception):
    """A transport's peer is gone; ``reason`` says how (never a URL or a credential)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CDPTransport(Protocol):
    """Carries whole protocol messages (decoded JSON objects) both ways.

    The websocket transport below is one; the local backend's DevTools pipe offers an
    in-process one. ``send`` and ``receive`` raise TransportClosed once the peer is gone.
    """

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class WebSocketTransport:
    """CDP over one websocket: JSON text frames, one message per frame."""

    def __init__(self, ws: ClientConnection, label: str) -> None:
        self._ws = ws
        self._label = label

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise TransportClosed(_close_reason(exc)) from None

    async def receive(self) -> dict[str, Any]:
        while True:
            try:
                raw = await self._ws.recv()
            except ConnectionClosedOK:
                raise TransportClosed("the browser closed the connection") from None
            except ConnectionClosed as exc:
                raise TransportClosed(_close_reason(exc)) from None
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("CDP %s sent a frame that is not JSON; ignored", self._label)
                continue
            if isinstance(message, dict):
                return message

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


def _close_reason(exc: ConnectionClosed) -> str:
    code = f" (close code {exc.rcvd.code})" if exc.rcvd is not None else ""
    return f"the connection dropped{code}"


class _Reply:
    """The answer to one command, filled in by the reader."""

    __slots__ = ("arrived", "error", "method", "result")

    def __init__(self, method: str) -> None:
        self.method = method
        self.arrived = anyio.Event()
        self.result: dict[str, Any] = {}
        self.error: CDPException | None = None

    def settle(self, result: dict[str, Any] | None = None, error: CDPException | None = None) -> None:
        if not self.arrived.is_set():
            self.result, self.error = result or {}, error
            self.arrived.set()


class CDPConnection:
    """One CDP connection (usually to the browser-level endpoint), over any CDPTransport.

    Made by ``connect`` (a websocket) or ``over`` (any transport), both ``async with``
    blocks that own the reader task; there is no connection without an owner.
    """

    def __init__(self, transport: CDPTransport, *, label: str = "") -> None:
        self._transport = transport
        self._label = label
        self._ids = itertools.count(1)
        self._pending: dict[int, _Reply] = {}
        self._subscribers: dict[tuple[str, str | None], set[EventStream]] = {}
        self._close_reason: str | None = None
        self._readers: OwnedTasks | None = None
        self._reader_done = anyio.Event()

    # -- opening and closing ----------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def over(cls, transport: CDPTransport, *, label: str = "") -> AsyncIterator[CDPConnection]:
        """``async with CDPConnection.over(transport) as cdp:`` reads until the block ends, then closes."""
        connection = cls(transport, label=label)
        async with owned_tasks() as readers:
            connection._readers = readers
            readers.start_soon(connection._read_loop, name=f"cdp-reader {label}")
            try:
                yield connection
            finally:
                await connection.aclose()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        ws_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        open_timeout: float = 10.0,
    ) -> AsyncIterator[CDPConnection]:
        """``async with CDPConnection.connect(url) as cdp:`` opens, yields, and always closes."""
        label = _safe_url(ws_url)
        host = urlsplit(ws_url).hostname or ""
        try:
            ws = await ws_connect(
                ws_url,
                additional_headers=dict(headers) if headers else None,
                origin=None,
                max_size=None,
                open_timeout=open_timeout,
                # The browser's own endpoint speaks no permessage-deflate worth paying for on loopback.
                compression=None if is_loopback(host) else "deflate",
                # A proxy from the environment must never see a loopback browser.
                proxy=None if is_loopback(host) else True,
                # Long screenshots block the reader for a while; CDP has its own liveness (closed socket).
                ping_interval=None,
                close_timeout=2,
                logger=_WIRE_LOG,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise CDPConnectFailed(f"CDP endpoint {label} refused the websocket (HTTP {status})") from None
        except InvalidURI:
            raise CDPConnectFailed(f"{label} is not a websocket URL (ws:// or wss://)") from None
        except TimeoutError:
            raise CDPConnectFailed(f"CDP endpoint {label} did not answer within {open_timeout:g} s") from None
        except (OSError, InvalidHandshake) as exc:
            raise CDPConnectFailed(f"cannot connect to CDP endpoint {label}: {type(exc).__name__}") from None
        async with cls.over(WebSocketTransport(ws, label), label=label) as connection:
            yield connection

    async def aclose(self) -> None:
        """Close the transport, stop the reader and fail whatever is still pending. Safe to call twice.

        Bounded and shielded: a block being cancelled still says goodbye to the browser.
        """
        if self._close_reason is None:
            self._close_reason = "closed by this client"
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await self._transport.close()
        if self._readers is not None:
            self._readers.cancel()
        self._fail_everything()

    @property
    def closed(self) -> bool:
        return self._close_reason is not None

    async def wait_closed(self) -> None:
        """Return once the connection is gone (the browser closed it, or ``aclose`` ran)."""
        if self._close_reason is None:
            await self._reader_done.wait()

    # -- commands and events ----------------------------------------------------------------------

    async def send(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one command and return its ``result``; CDPError if the browser refused it."""
        if self._close_reason is not None:
            raise self._closed_error()
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": dict(params or {})}
        if session_id is not None:
            message["sessionId"] = session_id
        reply = self._pending[message_id] = _Reply(method)
        try:
            try:
                await self._transport.send(message)
            except TransportClosed as exc:
                self._close_reason = self._close_reason or exc.reason
                raise self._closed_error() from None
            try:
                with anyio.fail_after(timeout):
                    await reply.arrived.wait()
            except TimeoutError:
                raise CDPTimeout(f"{method} got no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(message_id, None)
        if reply.error is not None:
            raise reply.error
        return reply.result

    async def send_all(
        self,
        commands: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        session_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> list[dict[str, Any]]:
        """Write several commands back to back, then wait for every answer (their results, in order).

        The browser runs one session's commands in the order they arrive, but some wait for the
        page to run: a tab paused at start (``waitForDebuggerOnStart``) answers ``Page.enable``
        only once ``Runtime.runIfWaitingForDebugger`` has arrived. Sent one by one, such a
        sequence would wait forever; pipelined, it is set up before the page runs a line.
        """
        if self._close_reason is not None:
            raise self._closed_error()
        replies: list[tuple[int, _Reply]] = []
        try:
            for method, params in commands:
                message_id = next(self._ids)
                message: dict[str, Any] = {"id": message_id, "method": method, "params": dict(params)}
                if session_id is not None:
                    message["sessionId"] = session_id
                reply = self._pending[message_id] = _Reply(method)
                replies.append((message_id, reply))
                try:
                    await self._transport.send(message)
                except TransportClosed as exc:
                    self._close_reason = self._close_reason or exc.reason
                    raise self._closed_error() from None
            results: list[dict[str, Any]] = []
            for _, reply in replies:
                try:
                    with anyio.fail_after(timeout):
                        await reply.arrived.wait()
                except TimeoutError:
                    raise CDPTimeout(f"{reply.method} got no answer within {timeout:g} s") from None
                if reply.error is not None:
                    raise reply.error
                results.append(reply.result)
            return results
        finally:
            for message_id, _ in replies:
                self._pending.pop(message_id, None)

    def listen(self, *methods: str, session_id: str | None = None) -> EventStream:
        """Subscribe to ``methods`` on ``session_id`` (None: browser-level events)."""
        if not methods:
            raise ValueError("listen() needs at least one event name")
        stream = EventStream(self, frozenset((method, session_id) for method in methods))
        if self._close_reason is not None:
            stream._put(_CLOSED)
            return stream
        for key in stream.keys:
            self._subscribers.setdefault(key, set()).add(stream)
        return stream

    def _unsubscribe(self, stream: EventStream) -> None:
        for key in stream.keys:
            streams = self._subscribers.get(key)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self._subscribers[key]

    # -- the reader -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                self._dispatch(await self._transport.receive())
        except TransportClosed as exc:
            self._close_reason = self._close_reason or exc.reason
        except Exception as exc:  # a broken transport must still end every waiter, not the owner's block
            log.warning("CDP %s failed: %s", self._label, type(exc).__name__)
            self._close_reason = self._close_reason or f"the connection failed ({type(exc).__name__})"
        finally:
            self._fail_everything()
            self._reader_done.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if isinstance(message_id, int):
            reply = self._pending.get(message_id)
            if reply is None:
                return  # the caller timed out or was cancelled
            error = message.get("error")
            if isinstance(error, dict):
                code, text = int(error.get("code", 0)), str(error.get("message", "unknown error"))
                reply.settle(error=CDPError(code, text, reply.method))
            else:
                result = message.get("result")
                reply.settle(result if isinstance(result, dict) else {})
            return
        name = message.get("method")
        if not isinstance(name, str):
            return
        params = message.get("params")
        raw_session = message.get("sessionId")
        session_id = raw_session if isinstance(raw_session, str) else None
        event = CDPEvent(name, params if isinstance(params, dict) else {}, session_id)
        for stream in tuple(self._subscribers.get((name, session_id), ())):
            stream._put(event)

    def _closed_error(self) -> CDPConnectionClosed:
        return CDPConnectionClosed(f"CDP connection to {self._label} is closed: {self._close_reason}")

    def _fail_everything(self) -> None:
        if self._close_reason is None:
            self._close_reason = "the connection ended"
        for reply in self._pending.values():
            reply.settle(error=self._closed_error())
        self._pending.clear()
        streams: Iterable[EventStream] = {s for group in self._subscribers.values() for s in group}
        self._subscribers.clear()
        for stream in streams:
            stream._put(_CLOSED)


def _safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment: enough to say where, never a credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not host:
        return url.split("?", 1)[0][:120]
    return f"{parts.scheme}://{host}{port}{parts.path}"


__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "CDPConnectFailed",
    "CDPConnection",
    "CDPConnectionClosed",
    "CDPError",
    "CDPEvent",
    "CDPException",
    "CDPTimeout",
    "CDPTransport",
    "EventStream",
    "TransportClosed",
    "WebSocketTransport",
]
