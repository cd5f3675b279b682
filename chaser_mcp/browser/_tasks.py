"""Task groups for the tasks an ``async with`` block owns (readers, watchers, drains, runners)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.abc

A = TypeVar("A")
B = TypeVar("B")

log = logging.getLogger("chaser_mcp.browser")


class OwnedTasks:
    """Tasks that serve one ``async with`` block and end with it, not before.

    Each runs in a shielded scope: a cancellation from outside the block (a DELETE
    cancelling a session's life, a cancelled tool call) reaches the block's own code but
    not these tasks, so the block's teardown still has its pipe reader, exit watch and
    stderr drain. ``cancel`` (called when the block ends) stops them all.
    """

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        self._scopes: set[anyio.CancelScope] = set()
        self._cancelled = False

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: object, name: str | None = None) -> None:
        scope = anyio.CancelScope(shield=True)
        if self._cancelled:
            scope.cancel()
        self._scopes.add(scope)

        async def run() -> None:
            try:
                with scope:
                    await func(*args)
            finally:
                self._scopes.discard(scope)

        self._group.start_soon(run, name=name)

    def cancel(self) -> None:
        """End every task (the block is ending)."""
        self._cancelled = True
        for scope in self._scopes:
            scope.cancel()


@contextlib.asynccontextmanager
async def _lone_error_unwrapped() -> AsyncIterator[None]:
    """Let a task group's lone error propagate as itself.

    anyio wraps an error raised in a task group's block in an ExceptionGroup, even when no
    child failed. The children here never raise (they record what went wrong and end), so
    a lone error is the block's own: a ``CDPTimeout`` stays a ``CDPTimeout`` for the caller.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        raise error from error.__cause__


@contextlib.asynccontextmanager
async def owned_tasks() -> AsyncIterator[OwnedTasks]:
    """``async with owned_tasks() as tasks:`` tasks that live exactly as long as the block."""
    async with _lone_error_unwrapped(), anyio.create_task_group() as group:
        tasks = OwnedTasks(group)
        try:
            yield tasks
        finally:
            tasks.cancel()


async def first_to_finish(
    *parts: Callable[[], Awaitable[object]], quiet: tuple[type[BaseException], ...], what: str
) -> None:
    """Run ``parts`` side by side until the first one ends (returns or fails), then stop the rest.

    The errors in ``quiet`` (a peer going away) end the whole quietly; anything else propagates.
    A cancellation from outside stops every part.
    """
    async with _lone_error_unwrapped(), anyio.create_task_group() as tasks:

        async def part(run: Callable[[], Awaitable[object]]) -> None:
            try:
                await run()
            except quiet as exc:
                log.debug("%s ended: %s", what, type(exc).__name__)
            finally:
                tasks.cancel_scope.cancel()

        for run in parts:
            tasks.start_soon(part, run)


async def side_by_side(first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]) -> tuple[A, B]:
    """Both results, asked at once: two CDP questions cost one round trip instead of two.

    A failure cancels the other and propagates as itself; when both fail (a closed connection
    fails every pending command), the first one's error is raised.
    """
    answers: dict[int, Any] = {}

    async def ask(slot: int, call: Callable[[], Awaitable[Any]]) -> None:
        answers[slot] = await call()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ask, 0, first)
            tasks.start_soon(ask, 1, second)
    except BaseExceptionGroup as group:
        error = group.exceptions[0]
        raise error from error.__cause__
    return answers[0], answers[1]


__all__ = ["OwnedTasks", "first_to_finish", "owned_tasks", "side_by_side"]
