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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

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
    _inbox: asyncio.Queue[dict[str, Any] | object] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE_LIMIT)
    )
    _closed_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def send(self, message: dict[str, Any]) -> None:
        if self._closed_reason is not None:
            raise TransportClosed(self._closed_reason)
        await self._pipe._send_for(self, message)

    async def receive(self) -> dict[str, Any]:
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # later calls fail the same way
            raise TransportClosed(self._closed_reason or "the connection ended")
        assert isinstance(item, dict)
        return item

    async def close(self) -> None:
        """Leave the browser: detach the browser session (and so everything under it)."""
        if self._closed_reason is None:
            self._end("closed by this client")
            await self._pipe._forget(self, detach=True)

    def _deliver(self, message: dict[str, Any]) -> None:
        if self._closed_reason is not None:
            return
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("CDP client %s stopped reading; disconnected it", self.name)
            self._end("the client fell too far behind the browser")
            self._pipe._forget_soon(self)

    def _end(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            # Never blocks: make room for the end marker if the inbox is full.
            if self._inbox.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._inbox.get_nowait()
            self._inbox.put_nowait(_CLOSED)


class DevToolsPipe:
    """The pipe to one Chromium: a reader task, a writer, and the routing between clients."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, label: str) -> None:
        self._reader = reader
        self._writer = writer
        self._label = label
        self._ids = itertools.count(1)
        # pipe id -> (client, its own id) for client commands, or a future for our own root calls
        self._pending: dict[int, tuple[PipeClient, Any, str] | tuple[None, asyncio.Future[Any], str]] = {}
        self._owners: dict[str, PipeClient] = {}  # session id -> client
        self._clients: set[PipeClient] = set()
        self._closed_reason: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_task = asyncio.create_task(self._read_loop(), name=f"devtools-pipe {label}")

    @classmethod
    async def open(cls, read_fd: int, write_fd: int, *, label: str) -> DevToolsPipe:
        """Wrap our ends of the two pipes (the fds are owned by the result from here on)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_MESSAGE_LIMIT)
        read_file = os.fdopen(read_fd, "rb", buffering=0)
        try:
            write_file = os.fdopen(write_fd, "wb", buffering=0)
        except BaseException:
            read_file.close()
            raise
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_file)
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, write_file)
        except BaseException:
            read_file.close()
            write_file.close()
            raise
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return cls(reader, writer, label=label)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def wait_closed(self) -> None:
        """Return once Chromium closed its end (it exited) or ``aclose`` ran."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._read_task)

    async def aclose(self) -> None:
        self._shut("the browser connection was closed")
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()

    # -- our own calls on the root session ---------------------------------------------------------

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """One command on the pipe's root session (the browser itself); only this module's owner uses it."""
        if self._closed_reason is not None:
            raise CDPConnectionClosed(f"DevTools pipe of {self._label} is closed: {self._closed_reason}")
        pipe_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[pipe_id] = (None, future, method)
        try:
            try:
                await self._write({"id": pipe_id, "method": method, "params": params or {}})
            except TransportClosed as exc:
                raise CDPConnectionClosed(f"DevTools pipe of {self._label} closed: {exc.reason}") from None
            try:
                reply = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise CDPTimeout(f"{method} got no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(pipe_id, None)
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

    async def connect(self, name: str = "in-process", *, timeout: float = 10.0) -> CDPConnection:
        """A CDPConnection in this process, as if connected to the browser's own endpoint."""
        return CDPConnection(await self.open_client(name, timeout=timeout), label=f"{self._label} {name}")

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
            self._writer.write(json.dumps(message).encode() + b"\0")
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._shut(f"the browser's pipe broke ({type(exc).__name__})")
            raise TransportClosed(self._closed_reason or "the browser connection ended") from None

    def _forget_soon(self, client: PipeClient) -> None:
        task = asyncio.create_task(self._forget(client, detach=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget(self, client: PipeClient, *, detach: bool) -> None:
        self._clients.discard(client)
        for session in (client.browser_session, *client.sessions):
            if self._owners.get(session) is client:
                del self._owners[session]
        for pipe_id, entry in list(self._pending.items()):
            if entry[0] is client:
                del self._pending[pipe_id]
        if detach and self._closed_reason is None:
            # Detaching the browser session ends the sessions attached through it and its auto-attach.
            with contextlib.suppress(CDPConnectionClosed, CDPError, CDPTimeout, TransportClosed):
                await self.call("Target.detachFromTarget", {"sessionId": client.browser_session}, timeout=5)

    # -- the reader --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the browser closed the connection"
        try:
            while True:
                try:
                    raw = await self._reader.readuntil(b"\0")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    reason = "the browser sent a message larger than 1 GiB"
                    break
                try:
                    message = json.loads(raw[:-1])
                except ValueError:
                    log.warning("DevTools pipe of %s carried a non-JSON message; ignored", self._label)
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except asyncio.CancelledError:
            reason = "the browser connection was closed"
            raise
        except Exception as exc:  # a broken read must still end every client cleanly
            reason = f"the browser connection failed ({type(exc).__name__})"
            log.warning("DevTools pipe of %s failed: %s", self._label, type(exc).__name__)
        finally:
            self._shut(reason)

    def _dispatch(self, message: dict[str, Any]) -> None:
        pipe_id = message.get("id")
        if isinstance(pipe_id, int):
            entry = self._pending.pop(pipe_id, None)
            if entry is None:
                return
            owner, token, method = entry
            if owner is None:
                assert isinstance(token, asyncio.Future)
                if not token.done():
                    token.set_result(message)
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
        if client is None:
            return
        params = message.get("params")
        event = message.get("method")
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
            if owner is None and isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(CDPConnectionClosed(f"DevTools pipe of {self._label} closed: {reason}"))
                token.exception()  # nobody may await it any more
        self._pending.clear()
        for client in list(self._clients):
            client._end(reason)
        self._clients.clear()
        self._owners.clear()


__all__ = ["CLIENT_QUEUE_LIMIT", "DevToolsPipe", "PipeClient"]
