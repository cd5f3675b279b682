"""One browser's DevTools over ``--remote-debugging-pipe``, shared by many CDP clients.

Chromium started with ``--remote-debugging-pipe`` listens on no port: it reads protocol
messages from fd 3 and writes to fd 4, each a JSON object ended by a NUL byte. Only the
process holding the other ends (this one) can drive the browser, so no other local user
can reach it, whatever the loopback firewall says.

Several clients share that one pipe: the backend's own connection (phone emulation on
every tab), the live view, the MCP server's page tools and an external Playwright, each
over the local API's token-checked websocket. Each client gets a browser-target session
of its own (``Target.attachToBrowserTarget``), so Target-domain state such as
``setAutoAttach`` or ``setDiscoverTargets`` is per client, exactly as with separate
websocket connections to Chromium's own endpoint. Routing then needs no guessing:

* a client's message without ``sessionId`` goes to its browser session; one naming a
  session the client does not own is refused the way Chromium refuses unknown sessions;
* message ids are rewritten per client and answers routed back by id;
* every message Chromium sends on a session goes to the client that owns the session;
  sessions created through a client's session (``attachToTarget`` answers,
  ``attachedToTarget`` events) become that client's; the browser session's own id is
  stripped again, so a client sees what a direct connection would show.

When a client leaves, its browser session is detached, which ends every session it
attached and its auto-attach: nothing it set up keeps pausing new tabs.

The pipe's reader (and the detach of a client cut off for falling behind) run in the
task group of the browser that owns the pipe (see ``chromium.launch_browser``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from chaser_mcp.browser._tasks import OwnedTasks
from chaser_mcp.browser.cdp import CDPConnection, CDPConnectionClosed, CDPError, CDPTimeout, TransportClosed

log = logging.getLogger("chaser_mcp.local.devtools")

# Chromium's own answer to a message for a session this connection does not have.
_UNKNOWN_SESSION = {"code": -32001, "message": "Session with given id not found."}
# A full-page screenshot of a long page can be tens of MB of base64; the limit only bounds
# how far the reader scans for the NUL before giving up on a broken browser.
_MESSAGE_LIMIT = 1 << 30
# Messages queued for a client that does not read; beyond this it is cut off rather than
# letting one stalled viewer hold the whole browser's traffic in memory.
CLIENT_QUEUE_LIMIT = 20_000
_ATTACH_METHODS = frozenset({"Target.attachToTarget", "Target.attachToBrowserTarget"})

_CLOSED = object()


@dataclass(eq=False)
class PipeClient:
    """One CDP client of the pipe: it owns a browser session and what was attached through it.

    Implements ``CDPTransport``, so ``CDPConnection(client)`` drives the browser in process;
    the local API's websocket proxy reads and writes the same messages for remote clients.
    """

    _pipe: DevToolsPipe
    browser_session: str
    name: str
    sessions: set[str] = field(default_factory=set)
    _inbox: collections.deque[dict[str, Any] | object] = field(default_factory=collections.deque)
    _arrived: anyio.Event | None = None
    _closed_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def send(self, message: dict[str, Any]) -> None:
        if self._closed_reason is not None:
            raise TransportClosed(self._closed_reason)
        await self._pipe._send_for(self, message)

    async def receive(self) -> dict[str, Any]:
        while not self._inbox:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        if self._inbox[0] is _CLOSED:  # stays queued: later calls fail the same way
            raise TransportClosed(self._closed_reason or "the connection ended")
        item = self._inbox.popleft()
        assert isinstance(item, dict)
        return item

    async def close(self) -> None:
        """Leave the browser: detach the browser session (and so everything under it)."""
        if self._closed_reason is None:
            self._end("closed by this client")
            await self._pipe._forget(self)

    def _deliver(self, message: dict[str, Any]) -> None:
        if self._closed_reason is not None:
            return
        if len(self._inbox) >= CLIENT_QUEUE_LIMIT:
            log.warning("CDP client %s stopped reading; disconnected it", self.name)
            self._end("the client fell too far behind the browser")
            self._pipe._forget_soon(self)
            return
        self._put(message)

    def _put(self, item: dict[str, Any] | object) -> None:
        self._inbox.append(item)
        if self._arrived is not None:
            self._arrived.set()

    def _end(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            self._put(_CLOSED)


class _RootReply:
    """The answer to one of our own root-session calls, filled in by the reader."""

    __slots__ = ("arrived", "message")

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.message: dict[str, Any] | None = None


class DevToolsPipe:
    """The pipe to one Chromium: a reader, a writer, and the routing between clients.

    ``receive``/``send`` are the browser's fd 4 and fd 3 (as byte streams); ``tasks`` is
    the task group that owns the reader, started with ``start``.
    """

    def __init__(
        self,
        receive: anyio.abc.ByteReceiveStream,
        send: anyio.abc.ByteSendStream,
        tasks: OwnedTasks,
        *,
        label: str,
    ) -> None:
        self._reader = BufferedByteReceiveStream(receive)
        self._writer = send
        self._tasks = tasks
        self._label = label
        self._ids = itertools.count(1)
        # pipe id -> (client, its own id) for client commands, or a reply slot for our own root calls
        self._pending: dict[int, tuple[PipeClient, Any, str] | tuple[None, _RootReply, str]] = {}
        self._owners: dict[str, PipeClient] = {}  # session id -> client
        self._clients: set[PipeClient] = set()
        self._closed_reason: str | None = None
        self._read_done = anyio.Event()
        # Run after each client has left (its sessions detached): see ``LocalBrowser.restore_phone``.
        self.on_client_left: Callable[[], Awaitable[None]] | None = None

    def start(self) -> None:
        """Start reading (in the owner's task group)."""
        self._tasks.start_soon(self._read_loop, name=f"devtools-pipe {self._label}")

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def wait_closed(self) -> None:
        """Return once Chromium closed its end (it exited) or ``aclose`` ran."""
        if self._closed_reason is None:
            await self._read_done.wait()

    async def aclose(self) -> None:
        """End every client and close our end of the pipe; the reader then sees the end."""
        self._shut("the browser connection was closed")
        with anyio.CancelScope(shield=True):
            await self._writer.aclose()
            await self._reader.aclose()

    # -- our own calls on the root session ---------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """One command on the pipe's root session (the browser itself), or on ``session_id``; only this
        module's owner uses it."""
        if self._closed_reason is not None:
            raise CDPConnectionClosed(f"DevTools pipe of {self._label} is closed: {self._closed_reason}")
        pipe_id = next(self._ids)
        slot = _RootReply()
        self._pending[pipe_id] = (None, slot, method)
        try:
            try:
                command: dict[str, Any] = {"id": pipe_id, "method": method, "params": params or {}}
                if session_id is not None:
                    command["sessionId"] = session_id
                await self._write(command)
            except TransportClosed as exc:
                raise CDPConnectionClosed(f"DevTools pipe of {self._label} closed: {exc.reason}") from None
            try:
                with anyio.fail_after(timeout):
                    await slot.arrived.wait()
            except TimeoutError:
                raise CDPTimeout(f"{method} got no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(pipe_id, None)
        reply = slot.message
        if reply is None:
            raise CDPConnectionClosed(f"DevTools pipe of {self._label} closed: {self._closed_reason}")
        error = reply.get("error")
        if isinstance(error, dict):
            raise CDPError(int(error.get("code", 0)), str(error.get("message", "unknown error")), method)
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    # -- clients -----------------------------------------------------------------------------------

    async def open_client(self, name: str, *, timeout: float = 10.0) -> PipeClient:
        """A new client with a browser session of its own."""
        attached = await self.call("Target.attachToBrowserTarget", timeout=timeout)
        client = PipeClient(self, str(attached["sessionId"]), name)
        if self._closed_reason is not None:
            client._end(self._closed_reason)
            return client
        self._clients.add(client)
        self._owners[client.browser_session] = client
        return client

    @contextlib.asynccontextmanager
    async def connect(
        self, name: str = "in-process", *, timeout: float = 10.0
    ) -> AsyncIterator[CDPConnection]:
        """A CDPConnection in this process for the block, as if connected to the browser's own endpoint."""
        client = await self.open_client(name, timeout=timeout)
        async with CDPConnection.over(client, label=f"{self._label} {name}") as connection:
            yield connection

    async def _send_for(self, client: PipeClient, message: dict[str, Any]) -> None:
        client_id = message.get("id")
        method = message.get("method")
        session = message.get("sessionId", client.browser_session)
        if session != client.browser_session and self._owners.get(session) is not client:
            client._deliver({"id": client_id, "error": dict(_UNKNOWN_SESSION)})
            return
        if self._closed_reason is not None:
            raise TransportClosed(self._closed_reason)
        pipe_id = next(self._ids)
        self._pending[pipe_id] = (client, client_id, str(method))
        await self._write({**message, "id": pipe_id, "sessionId": session})

    async def _write(self, message: dict[str, Any]) -> None:
        try:
            await self._writer.send(json.dumps(message).encode() + b"\0")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, RuntimeError) as exc:
            self._shut(f"the browser's pipe broke ({type(exc).__name__})")
            raise TransportClosed(self._closed_reason or "the browser connection ended") from None

    def _forget_soon(self, client: PipeClient) -> None:
        self._tasks.start_soon(self._forget, client, name=f"devtools-forget {client.name}")

    def _release_soon(self, attached: dict[str, Any]) -> None:
        child = attached.get("sessionId")
        if isinstance(child, str) and attached.get("waitingForDebugger"):
            self._tasks.start_soon(self._release, child, name="devtools-release")

    async def _release(self, child: str) -> None:
        """Run a target paused for a client that is gone, then let go of it."""
        with (
            anyio.CancelScope(shield=True),
            contextlib.suppress(CDPConnectionClosed, CDPError, CDPTimeout, TransportClosed),
        ):
            await self.call("Runtime.runIfWaitingForDebugger", session_id=child, timeout=5)
            await self.call("Target.detachFromTarget", {"sessionId": child}, timeout=5)

    async def _forget(self, client: PipeClient) -> None:
        self._clients.discard(client)
        for session in (client.browser_session, *client.sessions):
            if self._owners.get(session) is client:
                del self._owners[session]
        for pipe_id, entry in list(self._pending.items()):
            if entry[0] is client:
                del self._pending[pipe_id]
        if self._closed_reason is None:
            # Detaching the browser session ends the sessions attached through it and its auto-attach.
            with (
                anyio.CancelScope(shield=True),
                contextlib.suppress(CDPConnectionClosed, CDPError, CDPTimeout, TransportClosed),
            ):
                await self.call("Target.detachFromTarget", {"sessionId": client.browser_session}, timeout=5)
                if self.on_client_left is not None:
                    await self.on_client_left()

    # -- the reader --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the browser closed the connection"
        try:
            while True:
                try:
                    raw = await self._reader.receive_until(b"\0", _MESSAGE_LIMIT)
                except (anyio.IncompleteRead, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                except anyio.DelimiterNotFound:
                    reason = "the browser sent a message larger than 1 GiB"
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("DevTools pipe of %s carried a non-JSON message; ignored", self._label)
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except anyio.get_cancelled_exc_class():
            reason = "the browser connection was closed"
            raise
        except Exception as exc:  # a broken read must still end every client cleanly
            reason = f"the browser connection failed ({type(exc).__name__})"
            log.warning("DevTools pipe of %s failed: %s", self._label, type(exc).__name__)
        finally:
            self._shut(reason)
            self._read_done.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        pipe_id = message.get("id")
        if isinstance(pipe_id, int):
            entry = self._pending.pop(pipe_id, None)
            if entry is None:
                return
            owner, token, method = entry
            if owner is None:
                assert isinstance(token, _RootReply)
                token.message = message
                token.arrived.set()
                return
            message["id"] = token
            result = message.get("result")
            if method in _ATTACH_METHODS and isinstance(result, dict):
                self._adopt(owner, result.get("sessionId"))
            self._route(owner, message)
            return
        session = message.get("sessionId")
        if not isinstance(session, str):
            return  # root-session events: nobody but us listens there, and we enabled nothing
        client = self._owners.get(session)
        params = message.get("params")
        event = message.get("method")
        if client is None:
            if event == "Target.attachedToTarget" and isinstance(params, dict):
                # Auto-attached through a client that has just left: nobody will ever resume it.
                self._release_soon(params)
            return
        if isinstance(params, dict):
            child = params.get("sessionId")
            if event == "Target.attachedToTarget":
                self._adopt(client, child)
            elif event == "Target.detachedFromTarget" and isinstance(child, str):
                client.sessions.discard(child)
                if self._owners.get(child) is client:
                    del self._owners[child]
        self._route(client, message)

    def _adopt(self, client: PipeClient, session: object) -> None:
        if isinstance(session, str) and not client.closed:
            client.sessions.add(session)
            self._owners[session] = client

    @staticmethod
    def _route(client: PipeClient, message: dict[str, Any]) -> None:
        if message.get("sessionId") == client.browser_session:
            del message["sessionId"]
        client._deliver(message)

    def _shut(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for owner, token, _method in self._pending.values():
            if owner is None and isinstance(token, _RootReply):
                token.arrived.set()  # no message: the caller raises CDPConnectionClosed
        self._pending.clear()
        for client in list(self._clients):
            client._end(reason)
        self._clients.clear()
        self._owners.clear()


__all__ = ["CLIENT_QUEUE_LIMIT", "DevToolsPipe", "PipeClient"]
