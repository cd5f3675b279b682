"""Deleting sessions: one bounded, concurrent routine, and the worker that retries what it could not do.

A session that could not be deleted is still billed, so it is never dropped: it becomes a
*pending delete*, retried in this process with backoff until the API deletes it, says it is
already closed or gone (409, 404), or its TTL has passed (the API has closed it by itself).
With a journal each pending delete is also written there, so if this process exits first the
next server to start (its crash reaper) deletes it; without one the retries still run for as
long as this process lives.

Conversation cleanup, the pending-delete worker and the crash reaper all delete through
``delete_sessions``: whatever one delete raises is that item's failure, never the others'.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_never,
    wait_random_exponential,
)

from ..api import ChaserError, SessionNotFound

__all__ = ["DeleteOutcome", "PendingDeletes", "SessionDeleter", "delete_sessions"]

log = logging.getLogger("chaser_mcp.store.deletes")

DEFAULT_CONCURRENCY = 16  # well under the client's pool of 100 connections, which tool calls share


class SessionDeleter(Protocol):
    """What deleting needs of a client: ``ChaserClient`` is one."""

    @property
    def base_url(self) -> str: ...

    async def delete_session(self, session_id: str) -> bool: ...


class PendingStore(Protocol):
    """The part of the ownership journal that pending deletes write to."""

    async def record_pending(self, session_id: str, reason: str) -> None: ...

    async def record_closed(self, session_id: str) -> None: ...


@dataclass(frozen=True)
class DeleteOutcome:
    deleted: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()  # 409 session_not_open or 404 session_not_found
    failed: tuple[tuple[str, str], ...] = ()  # (session id, why), in the order given
    unexpected: tuple[tuple[str, Exception], ...] = ()  # failures that were not a ChaserError
    seconds: float = 0.0

    @property
    def done(self) -> tuple[str, ...]:
        """Every session that is no longer open."""
        return self.deleted + self.already_closed


async def delete_sessions(
    targets: Sequence[tuple[str, SessionDeleter]],
    *,
    timeout: float,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> DeleteOutcome:
    """Delete each (session id, client) concurrently, at most ``concurrency`` at a time, within ``timeout``.

    Never raises for one item: an API error, a malformed id or any other exception is that
    item's failure, and the rest go on. Callers shield it when it must outlive a cancellation.
    """
    started = time.monotonic()
    deleted: list[str] = []
    already_closed: list[str] = []
    failed = {session_id: f"not finished within {timeout:.3g} s" for session_id, _ in targets}
    unexpected: list[tuple[str, Exception]] = []
    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def delete(session_id: str, client: SessionDeleter) -> None:
        async with limiter:
            try:
                stopped = await client.delete_session(session_id)
            except SessionNotFound:
                stopped = False  # gone from the workspace: nothing left to stop
            except (ChaserError, ValueError) as exc:  # ValueError: not a session id at all
                failed[session_id] = str(exc)
                return
            except Exception as exc:  # one item must never break the others, or the loop that called
                failed[session_id] = f"{type(exc).__name__}: {exc}"
                unexpected.append((session_id, exc))
                return
        del failed[session_id]
        (deleted if stopped else already_closed).append(session_id)

    if targets:
        with anyio.move_on_after(max(0.0, timeout)):
            async with anyio.create_task_group() as tg:
                for session_id, client in targets:
                    tg.start_soon(delete, session_id, client)
    return DeleteOutcome(
        deleted=tuple(sorted(deleted)),
        already_closed=tuple(sorted(already_closed)),
        failed=tuple((sid, failed[sid]) for sid, _ in targets if sid in failed),
        unexpected=tuple(unexpected),
        seconds=time.monotonic() - started,
    )


@dataclass
class PendingDelete:
    session_id: str
    client: SessionDeleter
    expires_at: float  # Unix time after which the API has closed the session by itself
    attempts: int = 0
    last_error: str = ""
    traced: bool = False  # an unexpected exception's traceback was logged once already
    busy: bool = field(default=False, repr=False)


class PendingDeletes:
    """Sessions this process still owes a DELETE, and the one worker that retries them.

    ``add`` hands a session over (and journals it); ``run`` is the worker, started once per
    process in a task group; ``drain`` is the last bounded attempt before the process exits.
    """

    def __init__(
        self,
        *,
        store: PendingStore | None = None,
        attempt_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._store = store
        self._attempt_timeout = attempt_timeout
        self._backoff = wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        self._concurrency = concurrency
        self._items: dict[str, PendingDelete] = {}
        self._wake = anyio.Event()
        self._worker: anyio.CancelScope | None = None
        self._worker_stopped = anyio.Event()
        self._stopped = False
        self._round_traced = False  # a round's own failure is logged with its traceback once

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[str]:
        return sorted(self._items)

    def get(self, session_id: str) -> PendingDelete | None:
        return self._items.get(session_id)

    async def add(self, session_id: str, client: SessionDeleter, *, expires_at: float, reason: str) -> None:
        """Owe ``session_id`` a DELETE until it is gone or ``expires_at`` (Unix time) has passed."""
        item = self._items.get(session_id)
        if item is None:
            self._items[session_id] = item = PendingDelete(session_id, client, expires_at)
        item.last_error = reason
        self._wake.set()
        if self._store is not None:
            with anyio.CancelScope(shield=True):  # it must be on disk before this process can exit
                await self._store.record_pending(session_id, reason)

    async def attempt(self, timeout: float) -> int:
        """Try every pending delete not already being tried, once, within ``timeout``; how many remain."""
        await self._expire()
        targets = [item for item in self._items.values() if not item.busy]
        for item in targets:
            item.busy = True
        try:
            outcome = await delete_sessions(
                [(item.session_id, item.client) for item in targets],
                timeout=timeout,
                concurrency=self._concurrency,
            )
        finally:
            for item in targets:
                item.busy = False
        with anyio.CancelScope(shield=True):
            await self._settle(outcome)
        return len(self._items)

    async def drain(self, timeout: float) -> list[str]:
        """The last attempt before exit: stop the worker, try what is left within ``timeout``.

        Returns the ids still undeleted; with a journal they stay in it for the next start.
        """
        await self.stop()
        if self._items and timeout > 0:
            with anyio.CancelScope(shield=True):
                await self.attempt(timeout)
        return self.ids()

    async def stop(self) -> None:
        """Stop the worker, if it runs, and wait until its round has given its items back.

        Shutdown calls this first: from then on it deletes by itself, within its own bound.
        """
        self._stopped = True
        if self._worker is not None:
            self._worker.cancel()
            with anyio.CancelScope(shield=True):
                await self._worker_stopped.wait()

    async def run(self) -> None:
        """The worker: whenever something is pending, retry it with backoff until nothing is.

        Backoff grows while deletes keep failing and starts over once everything is deleted; a
        new pending delete wakes the worker at once. Any exception from one round is logged and
        retried like a failed delete, so nothing ends this loop but cancellation (or ``drain``,
        which stops it and returns).
        """
        if self._stopped:  # shutdown began before this task did
            return
        self._worker_stopped = anyio.Event()
        try:
            with anyio.CancelScope() as self._worker:
                await self._work()
        finally:
            self._worker = None
            self._worker_stopped.set()

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            retrying = AsyncRetrying(
                retry=retry_if_result(bool) | retry_if_exception_type(Exception),
                wait=self._backoff,
                stop=stop_never,
                sleep=self._nap,
                before_sleep=self._log_round,
            )
            async for round_ in retrying:
                with round_:
                    remaining = await self.attempt(self._attempt_timeout)
                outcome = round_.retry_state.outcome
                if outcome is not None and not outcome.failed:
                    round_.retry_state.set_result(remaining)

    async def _nap(self, seconds: float) -> None:
        """The backoff between rounds, cut short when a new pending delete arrives."""
        with anyio.move_on_after(seconds):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    async def _expire(self) -> None:
        now = time.time()
        expired = [item for item in self._items.values() if item.expires_at <= now and not item.busy]
        for item in expired:
            del self._items[item.session_id]
            log.warning(
                "gave up deleting %s after %d attempt(s): its TTL has passed, so the API has closed it "
                "(last error: %s)",
                item.session_id,
                item.attempts,
                item.last_error,
            )
        await self._record_closed(item.session_id for item in expired)

    async def _settle(self, outcome: DeleteOutcome) -> None:
        for session_id in outcome.done:
            item = self._items.pop(session_id, None)
            if item is not None:
                log.info(
                    "pending delete of %s done (%s) after %d retry round(s)",
                    session_id,
                    "deleted" if session_id in outcome.deleted else "already closed",
                    item.attempts,
                )
        await self._record_closed(outcome.done)
        errors = dict(outcome.unexpected)
        for session_id, why in outcome.failed:
            item = self._items.get(session_id)
            if item is None:
                continue
            item.attempts += 1
            item.last_error = why
            if session_id in errors and not item.traced:
                item.traced = True
                log.error(
                    "deleting %s failed unexpectedly; retrying", session_id, exc_info=errors[session_id]
                )
            if self._store is not None:
                await self._store.record_pending(session_id, why)

    async def _record_closed(self, session_ids: Iterable[str]) -> None:
        if self._store is not None:
            for session_id in session_ids:
                await self._store.record_closed(session_id)

    def _log_round(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        exc = state.outcome.exception() if state.outcome and state.outcome.failed else None
        if exc is not None:
            trace = None if self._round_traced else exc
            self._round_traced = True
            log.error("a round of pending deletes failed (%r); retrying in %.1f s", exc, wait, exc_info=trace)
            return
        failing = ", ".join(f"{item.session_id} ({item.last_error})" for item in self._items.values())
        log.warning(
            "%d pending delete(s) still failing, retrying in %.1f s: %s", len(self._items), wait, failing
        )
