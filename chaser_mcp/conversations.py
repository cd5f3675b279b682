"""Who owns which session, and the cleanup that runs when a conversation ends.

A *conversation* is whatever the transport calls one client connection (the stdio
process, an SSE stream, an ``Mcp-Session-Id``, a stateless caller's lease). This
module does not care which: transports open and end conversations by id, tools ask
it who owns what. Every session a conversation creates is recorded the moment the
API returns its id, before anything else can fail, and stays recorded after it is
deleted, so a second delete never needs ``force`` and a failed delete is retried at
cleanup. Ending a conversation deletes its open, non-persisted sessions
concurrently, within a bounded time, and logs the outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from .api import ChaserClient, ChaserError
from .journal import OwnershipStore, key_fingerprint

log = logging.getLogger("chaser_mcp.conversations")


class ConversationEnded(Exception):
    """A tool call arrived for a conversation that is being cleaned up."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id} has ended")


@dataclass
class OwnedSession:
    session_id: str
    persist: bool
    closed: bool = False


@dataclass
class Conversation:
    """One client connection's view: the API key it acts with and the sessions it made."""

    id: str
    api: ChaserClient
    principal: str = "local"
    idle_timeout: float | None = None  # None: ends only by an explicit signal (stdin EOF, stream close)
    last_seen: float = field(default_factory=time.monotonic)
    sessions: dict[str, OwnedSession] = field(default_factory=dict)
    ended: bool = False
    creates_in_flight: int = 0
    _drained: anyio.Event | None = None

    def owns(self, session_id: str) -> bool:
        return session_id in self.sessions

    def is_persisted(self, session_id: str) -> bool:
        owned = self.sessions.get(session_id)
        return owned is not None and owned.persist

    def owned_ids(self) -> list[str]:
        return list(self.sessions)

    def pending_cleanup(self) -> list[str]:
        """Sessions that ending this conversation would delete."""
        return [s.session_id for s in self.sessions.values() if not s.persist and not s.closed]


@dataclass(frozen=True)
class CleanupReport:
    conversation_id: str
    reason: str
    deleted: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    kept: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [
            f"conversation {self.conversation_id} ended ({self.reason}) in {self.seconds:.2f} s:",
            f"{len(self.deleted)} deleted, {len(self.already_closed)} already closed,",
            f"{len(self.kept)} kept (persist), {len(self.failed)} failed",
        ]
        if self.failed:
            parts.append("- failed: " + ", ".join(f"{sid} ({why})" for sid, why in self.failed))
        return " ".join(parts)


class Conversations:
    """The registry of live conversations. One per server process."""

    def __init__(
        self,
        *,
        cleanup_timeout: float = 10.0,
        sweep_interval: float = 30.0,
        store: OwnershipStore | None = None,
    ) -> None:
        """``store`` journals ownership so another process can clean up if this one dies hard."""
        self._cleanup_timeout = cleanup_timeout
        self._sweep_interval = sweep_interval
        self._store = store
        self._live: dict[str, Conversation] = {}

    def open(
        self,
        conversation_id: str,
        api: ChaserClient,
        *,
        principal: str = "local",
        idle_timeout: float | None = None,
    ) -> Conversation:
        """The conversation with this id, created on first use; every use renews its lease."""
        conversation = self._live.get(conversation_id)
        if conversation is None:
            conversation = Conversation(conversation_id, api, principal=principal, idle_timeout=idle_timeout)
            self._live[conversation_id] = conversation
            log.debug("conversation %s opened", conversation_id)
        conversation.last_seen = time.monotonic()
        return conversation

    def touch(self, conversation_id: str) -> None:
        """Renew a conversation's lease (any request from its client counts)."""
        conversation = self._live.get(conversation_id)
        if conversation is not None:
            conversation.last_seen = time.monotonic()

    async def end_idle(self) -> list[CleanupReport]:
        """End every conversation whose client has been silent past its idle timeout."""
        now = time.monotonic()
        idle = [
            c.id
            for c in self._live.values()
            if c.idle_timeout is not None and now - c.last_seen > c.idle_timeout
        ]
        return await self._end_many(idle, "idle timeout")

    async def sweep_idle_forever(self) -> None:
        """The idle sweeper: the only end signal a stateless (2026-07-28) caller leaves."""
        while True:
            await anyio.sleep(self._sweep_interval)
            await self.end_idle()

    def __len__(self) -> int:
        return len(self._live)

    async def record_created(self, conversation: Conversation, session_id: str, *, persist: bool) -> None:
        conversation.sessions[session_id] = OwnedSession(session_id, persist)
        if self._store is not None and conversation.api.api_key:
            await self._store.record_created(
                session_id,
                # Hashed: an Mcp-Session-Id is a capability and has no business on disk.
                conversation_id=key_fingerprint(conversation.id),
                persist=persist,
                key_id=key_fingerprint(conversation.api.api_key),
                base_url=conversation.api.base_url,
            )

    async def record_closed(self, conversation: Conversation, session_id: str) -> None:
        owned = conversation.sessions.get(session_id)
        if owned is not None and not owned.closed:
            owned.closed = True
            if self._store is not None:
                await self._store.record_closed(session_id)

    @asynccontextmanager
    async def creating(self, conversation: Conversation) -> AsyncIterator[None]:
        """Bracket a create: the request and recording its id are shielded from cancellation,
        and ending the conversation waits for them, so a session created while the
        conversation ends is still found and deleted."""
        if conversation.ended:
            raise ConversationEnded(conversation.id)
        conversation.creates_in_flight += 1
        try:
            with anyio.CancelScope(shield=True):
                yield
        finally:
            conversation.creates_in_flight -= 1
            if conversation.creates_in_flight == 0 and conversation._drained is not None:
                conversation._drained.set()

    async def end(self, conversation_id: str, reason: str) -> CleanupReport | None:
        """End a conversation: delete its open, non-persisted sessions. Safe to call twice."""
        conversation = self._live.pop(conversation_id, None)
        if conversation is None:
            return None
        conversation.ended = True
        started = time.monotonic()
        if conversation.creates_in_flight:
            # At most half the bound for creates still in flight, so the deletes keep the rest
            # and the whole cleanup stays within cleanup_timeout.
            conversation._drained = anyio.Event()
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_timeout / 2):
                await conversation._drained.wait()
        report = await self._clean(conversation, reason, self._cleanup_timeout - (time.monotonic() - started))
        log_fn = log.info if report.ok else log.error
        log_fn("%s", report.summary())
        return report

    async def end_all(self, reason: str) -> list[CleanupReport]:
        """End every live conversation at once (server shutdown), within one overall bound."""
        return await self._end_many(list(self._live), reason)

    async def _end_many(self, conversation_ids: list[str], reason: str) -> list[CleanupReport]:
        reports: list[CleanupReport] = []

        async def end_one(conversation_id: str) -> None:
            report = await self.end(conversation_id, reason)
            if report is not None:
                reports.append(report)

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for conversation_id in conversation_ids:
                    tg.start_soon(end_one, conversation_id)
        return reports

    async def _clean(self, conversation: Conversation, reason: str, budget: float) -> CleanupReport:
        started = time.monotonic()
        targets = conversation.pending_cleanup()
        kept = tuple(s.session_id for s in conversation.sessions.values() if s.persist and not s.closed)
        deleted: list[str] = []
        already_closed: list[str] = []
        failed: dict[str, str] = {sid: f"not finished within {budget:.3g} s" for sid in targets}

        async def delete(session_id: str) -> None:
            try:
                stopped = await conversation.api.delete_session(session_id)
            except ChaserError as exc:
                failed[session_id] = str(exc)
                return
            failed.pop(session_id, None)
            await self.record_closed(conversation, session_id)
            (deleted if stopped else already_closed).append(session_id)

        # Shielded: cleanup runs while the server is being cancelled (signal, stream closed),
        # and a half-finished cleanup is exactly how a paid session leaks.
        with anyio.CancelScope(shield=True), anyio.move_on_after(budget):
            async with anyio.create_task_group() as tg:
                for session_id in targets:
                    tg.start_soon(delete, session_id)
        return CleanupReport(
            conversation_id=conversation.id,
            reason=reason,
            deleted=tuple(sorted(deleted)),
            already_closed=tuple(sorted(already_closed)),
            failed=tuple(sorted(failed.items())),
            kept=kept,
            seconds=time.monotonic() - started,
        )
