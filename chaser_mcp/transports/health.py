"""``/healthz``'s view of the serving machinery: which parts that every request needs are running."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

__all__ = ["ServingHealth"]

log = logging.getLogger("chaser_mcp.transports.health")


class ServingHealth:
    """Whether the parts every request needs are running, for ``/healthz``.

    A part is healthy while its ``running`` block is open; ``watch`` runs a background task
    that must never end, and records (and logs once) the exception that ended it instead of
    letting it tear down the task group that serves every other conversation.
    """

    def __init__(self, *parts: str) -> None:
        self._parts = parts
        self._running: set[str] = set()
        self._failures: dict[str, str] = {}

    @contextmanager
    def running(self, part: str) -> Iterator[None]:
        self._running.add(part)
        try:
            yield
        finally:
            self._running.discard(part)

    async def watch(self, part: str, work: Callable[[], Awaitable[None]]) -> None:
        with self.running(part):
            try:
                await work()
            except Exception as exc:
                self._failures[part] = f"{part} stopped ({type(exc).__name__})"
                log.exception("%s stopped; /healthz reports unhealthy until the server is restarted", part)
                return
        self._failures.setdefault(part, f"{part} returned")

    def problems(self) -> list[str]:
        down = [part for part in self._parts if part not in self._running]
        return [self._failures.get(part, f"{part} is not running") for part in down]
