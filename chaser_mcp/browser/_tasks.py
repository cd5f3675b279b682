"""Task groups for the tasks an ``async with`` block owns (readers, watchers, drains)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.abc

log = logging.getLogger("chaser_mcp.browser")


@contextlib.asynccontextmanager
async def owned_tasks() -> AsyncIterator[anyio.abc.TaskGroup]:
    """An anyio task group whose block's own error propagates as itself.

    anyio wraps an error raised in a task group's block in an ExceptionGroup, even when no
    child failed. The children started here never raise (they record what went wrong and
    end), so a lone error is the block's own: a ``CDPTimeout`` stays a ``CDPTimeout`` for
    the caller instead of becoming an ExceptionGroup it would have to unpack.
    """
    try:
        async with anyio.create_task_group() as tasks:
            yield tasks
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        raise error from error.__cause__


async def first_to_finish(
    *parts: Callable[[], Awaitable[object]], quiet: tuple[type[BaseException], ...], what: str
) -> None:
    """Run ``parts`` side by side until the first one ends (returns or fails), then stop the rest.

    The errors in ``quiet`` (a peer going away) end the whole quietly; anything else propagates.
    """
    async with owned_tasks() as tasks:

        async def part(run: Callable[[], Awaitable[object]]) -> None:
            try:
                await run()
            except quiet as exc:
                log.debug("%s ended: %s", what, type(exc).__name__)
            finally:
                tasks.cancel_scope.cancel()

        for run in parts:
            tasks.start_soon(part, run)


__all__ = ["first_to_finish", "owned_tasks"]
