"""Serve one conversation over stdio, and clean it up however the process is told to stop.

The stdio process is the conversation. It ends on stdin EOF (the client exited or
was killed) or on SIGTERM, SIGINT or SIGHUP. The SDK alone skips all cleanup on
SIGTERM and hangs on SIGINT (its stdin reader thread cannot be cancelled), so the
signals are handled here: cancel in-flight calls, delete the conversation's
sessions within the cleanup bound, then leave with ``os._exit(0)``.

A create whose request is still in flight at the end is waited for up to
``CHASER_TIMEOUT`` more (no request can answer later than that), and the session
it returns is deleted within another cleanup bound. Deletes that still fail are
left in the session journal, and the next server to start deletes them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import anyio
from mcp.server.mcpserver import MCPServer

from ..server import ServerState

__all__ = ["serve_stdio"]

log = logging.getLogger("chaser_mcp.transports.stdio")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def _shutdown(state: ServerState, reason: str) -> None:
    reports = await state.conversations.shutdown(reason, create_grace=state.settings.timeout)
    if not reports:
        log.info("stopped (%s): no conversation had sessions to clean up", reason)
    with anyio.CancelScope(shield=True):
        for close in state.closers:
            await close()
        await state.client.aclose()


async def serve_stdio(state: ServerState, server: MCPServer) -> None:
    """Run until stdin closes or a stop signal arrives; returns only on stdin EOF."""
    serve_scope = anyio.CancelScope()
    stopping: list[str] = []  # why the cleanup began, once one end has begun it

    async def exit_on_signal() -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if stopping:
                    # stdin closed first and its cleanup is running: a client that closed stdin sends
                    # SIGTERM when the server outlives its grace period (the SDK's is 2 s), which a slow
                    # API can make it do. The cleanup is bounded; let it finish.
                    log.info("%s received while cleaning up (%s): finishing first", name, stopping[0])
                    continue
                stopping.append(name)
                log.info("%s received: cleaning up", name)
                serve_scope.cancel()  # in-flight tools unwind (a pending create deletes its session)
                await _shutdown(state, name)
                logging.shutdown()
                sys.stderr.flush()
                os._exit(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(exit_on_signal)
        tg.start_soon(state.conversations.pending.run)  # retries deletes that failed, while we run
        tg.start_soon(state.links.run)  # the CDP links page tools keep open across calls
        tg.start_soon(state.viewers.run)  # the live viewer's loopback port, opened on first use
        with serve_scope:
            await server.run_stdio_async()
        if stopping:  # a signal's cleanup is running and ends the process
            await anyio.sleep_forever()
        stopping.append("stdin closed")
        # Still inside the task group, so the signal handler stays installed until the cleanup is done.
        await _shutdown(state, "stdin closed")
        tg.cancel_scope.cancel()
