"""Who owns which session, and the cleanup that runs when a conversation ends.

A *conversation* is whatever the transport calls one client connection (the stdio
process, an SSE stream, an ``Mcp-Session-Id``, a stateless caller's lease). This
module does not care which: transports open and end conversations by id, tools ask
it who owns what. Every session a conversation creates is recorded the moment the
API returns its id, before anything else can fail, and stays recorded after it is
deleted, so a second delete never needs ``force`` and a failed delete is retried at
cleanup. Ending a conversation deletes its open, non-persisted sessions
concurrently, within a bounded time, and logs the outcome; whatever it could not
delete becomes a pending delete (``store/deletes.py``), retried until it is gone.

A create still in flight when its conversation ends is waited for briefly; an id
that arrives later than that, however late, is deleted at once through the
pending deletes: nobody can learn it any more, so not even ``persist`` keeps it.

The reconnect grace: some clients open a new MCP session (or SSE stream) for every
exchange of one chat. When such a *graceful* conversation (handshake-era HTTP, SSE)
ends, its open, non-persisted sessions are not deleted at once: they wait
``reconnect_grace`` seconds, still owned by the caller (principal) and still
journaled as this process's, so a kill -9 meanwhile reaps them. A later conversation
of the same caller that names one in a tool call, or lists its owned sessions,
adopts it (``adopt``, ``adopt_all``); whatever is not adopted is deleted by the idle
sweep once its grace is over, through the same bounded delete and pending deletes.
Server shutdown deletes them at once.

Several replicas on a shared store (``SharedOwnership``, Redis): a stateless caller's lease is
*shared*: every replica that serves one of its requests renews it in the store and reads back what
it owns, and no replica deletes its sessions when it stops seeing the caller or shuts down; the
lease's key expires in the store when no replica renewed it, and the reaper (any replica, exactly
once) deletes them. Sessions waiting out the reconnect grace wait in the store too, so a caller
that reconnects through another replica adopts them there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from ._ids import key_fingerprint
from .api import ChaserClient
from .store import (
    MAX_SESSION_SECONDS,
    DeleteOutcome,
    OwnershipStore,
    PendingDeletes,
    SharedOwnership,
    StoreUnavailable,
    delete_sessions,
)

log = logging.getLogger("chaser_mcp.conversations")


TTL_MARGIN = 60.0  # a pending delete is retried this long past the session's TTL, for safety
RENEW_EVERY = 1.0  # a replica renews a shared lease for requests that need no answer at most this often


class ConversationEnded(Exception):
    """A tool call arrived for a conversation that is being cleaned up.

    ``handed_off`` is the id of a session whose create answered after the end: it is being deleted.
    """

    def __init__(self, conversation_id: str, handed_off: str | None = None) -> None:
        super().__init__(f"conversation {conversation_id} has ended")
        self.handed_off = handed_off


@dataclass
class OwnedSession:
    session_id: str
    persist: bool
    closed: bool = False
    expires_at: float = field(default_factory=lambda: time.time() + MAX_SESSION_SECONDS + TTL_MARGIN)


@dataclass
class Conversation:
    """One client connection's view: the API key it acts with and the sessions it made."""

    id: str
    api: ChaserClient
    principal: str = "local"
    idle_timeout: float | None = None  # None: ends only by an explicit signal (stdin EOF, stream close)
    last_seen: float = field(default_factory=time.monotonic)
    sessions: dict[str, OwnedSession] = field(default_factory=dict)
    graceful: bool = False  # its end lets its sessions wait out the reconnect grace (HTTP, SSE)
    shared: bool = False  # a lease kept in the shared store: this replica never deletes its sessions
    renewed_at: float | None = None  # when this replica last renewed it in the shared store (its clock)
    paused_until: float | None = None  # a person has a session of it (hand_off): no idle end before this
    ended: bool = False
    cleaned: bool = False  # its cleanup has taken the list of sessions to delete
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


@dataclass
class HeldSession:
    """A session of an ended conversation, waiting for a conversation of the same caller to adopt it."""

    owned: OwnedSession
    principal: str
    api: ChaserClient
    until: float  # on the registry's clock: when the grace is over and it is deleted
    conversation_id: str  # the conversation it came from, for the logs


@dataclass(frozen=True)
class CleanupReport:
    conversation_id: str
    reason: str
    deleted: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    kept: tuple[str, ...] = ()
    held: tuple[str, ...] = ()  # waiting out the reconnect grace
    shared: tuple[str, ...] = ()  # left to the caller's shared lease, which any replica renews
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
        if self.held:
            parts.append(f"- {len(self.held)} waiting for their caller to reconnect")
        if self.shared:
            parts.append(f"- {len(self.shared)} left to the caller's lease in the shared store")
        if self.failed:
            parts.append(
                "- failed (pending deletes, retried until gone): "
                + ", ".join(f"{sid} ({why})" for sid, why in self.failed)
            )
        return " ".join(parts)


class Conversations:
    """The registry of live conversations. One per server process."""

    def __init__(
        self,
        *,
        cleanup_timeout: float = 10.0,
        sweep_interval: float = 30.0,
        store: OwnershipStore | None = None,
        pending: PendingDeletes | None = None,
        clock: Callable[[], float] = time.monotonic,
        reconnect_grace: float = 0.0,
    ) -> None:
        """``store`` journals ownership so another process can clean up if this one dies hard;
        ``pending`` holds what cleanup could not delete (its worker must run for retries).
        ``clock`` is what idle and lease rules measure silence with (tests move it by hand and
        call ``end_idle`` for a sweep now, instead of sleeping). ``reconnect_grace`` is how long
        a graceful conversation's sessions wait for their caller after it ends (0: not at all)."""
        self.clock = clock
        self.reconnect_grace = reconnect_grace
        self._held: dict[str, HeldSession] = {}
        self._closing = False  # shutting down: no grace any more
        self._cleanup_timeout = cleanup_timeout
        self._sweep_interval = sweep_interval
        self._store = store
        self._shared = store if isinstance(store, SharedOwnership) else None
        self.pending = pending or PendingDeletes(store=store, attempt_timeout=cleanup_timeout)
        self._live: dict[str, Conversation] = {}
        self._creates_in_flight = 0  # across every conversation, ended ones included
        self._creates_idle: anyio.Event | None = None
        self._late_creates = 0

    def open(
        self,
        conversation_id: str,
        api: ChaserClient,
        *,
        principal: str = "local",
        idle_timeout: float | None = None,
        graceful: bool = False,
        lease: bool = False,
    ) -> Conversation:
        """The conversation with this id, created on first use; every use renews its lease.

        ``graceful``: when it ends, its sessions wait out the reconnect grace (see the module doc);
        ``lease``: a stateless caller's lease, shared by every replica when the store is shared."""
        conversation = self._live.get(conversation_id)
        if conversation is None:
            conversation = Conversation(
                conversation_id,
                api,
                principal=principal,
                idle_timeout=idle_timeout,
                last_seen=self.clock(),
                graceful=graceful,
                shared=lease and self._shared is not None,
            )
            self._live[conversation_id] = conversation
            log.debug("conversation %s opened", conversation_id)
        conversation.last_seen = self.clock()
        return conversation

    @property
    def shares_leases(self) -> bool:
        """Whether leases live in a store every replica shares (they must be renewed there)."""
        return self._shared is not None

    async def keep_lease(
        self, conversation_id: str, api: ChaserClient, *, principal: str, lease_seconds: float
    ) -> None:
        """Any request of a stateless caller: renew its lease (on a shared store, for every replica,
        at most every ``RENEW_EVERY`` seconds per replica: the lease is written that much longer, so
        it never ends sooner than ``lease_seconds`` after the caller's last request)."""
        conversation = self.open(
            conversation_id, api, principal=principal, idle_timeout=lease_seconds, lease=True
        )
        renewed = conversation.renewed_at
        if self._shared is not None and (renewed is None or self.clock() - renewed >= RENEW_EVERY):
            await self.renew_lease(conversation_id, api, principal=principal, lease_seconds=lease_seconds)

    async def renew_lease(
        self, conversation_id: str, api: ChaserClient, *, principal: str, lease_seconds: float
    ) -> Conversation:
        """A stateless caller's tool call: renew its lease for every replica and take in what it owns
        now, whichever replica created or deleted it (one round trip to a shared store). With the
        store down, the call goes on with what this replica knows (a lease renewal missed is not a
        session lost: the next request renews it)."""
        conversation = self.open(
            conversation_id, api, principal=principal, idle_timeout=lease_seconds, lease=True
        )
        if self._shared is None:
            return conversation
        lease = self._shared.lease_owner(key_fingerprint(conversation_id))
        if conversation.paused_until is not None:  # a hand-off under way keeps it at least that long
            lease_seconds = max(lease_seconds, conversation.paused_until - self.clock())
        try:
            owned = await self._shared.renew_lease(lease, lease_seconds + RENEW_EVERY)
        except StoreUnavailable as exc:
            log.warning("%s", exc)
            return conversation
        conversation.renewed_at = self.clock()
        sessions = conversation.sessions
        for session_id in [sid for sid, s in sessions.items() if sid not in owned and not s.closed]:
            # Deleted (or reaped) through another replica; creates record here first, so none is lost.
            if conversation.creates_in_flight == 0:
                del sessions[session_id]
        for session_id, persist in owned.items():
            if session_id in sessions:
                sessions[session_id].persist = persist
            else:
                sessions[session_id] = OwnedSession(session_id, persist)
        return conversation

    async def pause(self, conversation: Conversation, seconds: float) -> None:
        """A person is working in one of this conversation's sessions (``hand_off``): its idle or lease
        end waits up to ``seconds`` (the hand-off link's life, itself within the session's TTL). On a
        shared store the lease is written that long, so no replica's reaper takes it meanwhile."""
        conversation.paused_until = self.clock() + seconds
        if conversation.shared and conversation.idle_timeout is not None:
            # renew_lease writes the lease at least as long as the pause.
            await self.renew_lease(
                conversation.id,
                conversation.api,
                principal=conversation.principal,
                lease_seconds=conversation.idle_timeout,
            )

    def resume(self, conversation: Conversation) -> None:
        """The person is done: idle and lease rules apply again, counted from now."""
        conversation.paused_until = None
        conversation.last_seen = self.clock()

    def touch(self, conversation_id: str) -> None:
        """Renew a conversation's lease (any request from its client counts)."""
        conversation = self._live.get(conversation_id)
        if conversation is not None:
            conversation.last_seen = self.clock()

    async def end_idle(self) -> list[CleanupReport]:
        """End every conversation whose client has been silent past its idle timeout, and delete
        the held sessions whose reconnect grace is over (a sweep, now)."""
        now = self.clock()
        idle = [
            c.id
            for c in self._live.values()
            if c.idle_timeout is not None
            and now - c.last_seen > c.idle_timeout
            and (c.paused_until is None or c.paused_until <= now)
        ]
        reports = await self._end_many(idle, "idle timeout")
        await self._delete_held([sid for sid, held in self._held.items() if held.until <= now], "grace over")
        return reports

    # -- the reconnect grace ----------------------------------------------------------------------

    def held_ids(self, principal: str | None = None) -> list[str]:
        """Sessions waiting out the reconnect grace in this process (of one caller, if given)."""
        return [sid for sid, h in self._held.items() if principal is None or h.principal == principal]

    async def may_have_held(self, principal: str) -> bool:
        """Whether this caller may have sessions waiting for it (here, or in the shared store)."""
        if self._shared is not None and self.reconnect_grace > 0:
            return await self._shared.has_held(key_fingerprint(principal))
        return bool(self.held_ids(principal))

    async def adopt(self, conversation: Conversation, session_id: str) -> bool:
        """Make a held session this conversation's, if the caller is the one that made it."""
        return session_id in await self._adopt(conversation, [session_id])

    async def adopt_all(self, conversation: Conversation) -> list[str]:
        """Adopt every session this conversation's caller has waiting (it listed its owned sessions)."""
        return await self._adopt(conversation, None)

    async def _adopt(self, conversation: Conversation, session_ids: list[str] | None) -> list[str]:
        if conversation.cleaned:
            return []
        if self._shared is not None and self.reconnect_grace > 0:
            # Atomic in the store against the reaper: adopted or reaped, never both.
            owner = (
                self._shared.lease_owner(key_fingerprint(conversation.id))
                if conversation.shared
                else self._shared.replica_id
            )
            taken = await self._shared.adopt(key_fingerprint(conversation.principal), owner, session_ids)
            for session_id, persist in taken.items():
                conversation.sessions[session_id] = OwnedSession(session_id, persist)
            adopted = list(taken)
        else:
            # No await from the check to the move: an expiry sweep deleted it already or never will.
            wanted = self.held_ids(conversation.principal) if session_ids is None else session_ids
            adopted = []
            for session_id in wanted:
                held = self._held.get(session_id)
                if held is None or held.principal != conversation.principal:
                    continue
                del self._held[session_id]
                conversation.sessions[session_id] = held.owned
                adopted.append(session_id)
        for session_id in adopted:
            log.info("conversation %s adopted %s", conversation.id, session_id)
        return adopted

    def _hold(self, conversation: Conversation, session_ids: list[str]) -> None:
        until = self.clock() + self.reconnect_grace
        for session_id in session_ids:
            self._held[session_id] = HeldSession(
                conversation.sessions[session_id],
                conversation.principal,
                conversation.api,
                until,
                conversation.id,
            )

    async def _hold_shared(self, conversation: Conversation, session_ids: list[str]) -> list[str] | None:
        """Hold in the shared store, where any replica can adopt them. None: hold them here instead
        (no shared store, or it is down: they stay this replica's, in memory and in the store)."""
        if self._shared is None:
            return None
        try:
            return await self._shared.hold(
                session_ids, key_fingerprint(conversation.principal), self.reconnect_grace
            )
        except StoreUnavailable as exc:
            log.warning("%s; they wait on this replica instead", exc)
            return None

    async def _delete_held(self, session_ids: list[str], reason: str) -> None:
        """Delete held sessions now (their grace is over, or the server stops), within one bound."""
        taken = [self._held.pop(sid) for sid in session_ids if sid in self._held]
        if not taken:
            return
        with anyio.CancelScope(shield=True):
            outcome = await self._delete([(h.owned, h.api) for h in taken], self._cleanup_timeout)
        log_fn = log.info if not outcome.failed else log.error
        log_fn(
            "%d held session(s) deleted (%s): %d deleted, %d already closed, %d failed (retried until gone)",
            len(taken),
            reason,
            len(outcome.deleted),
            len(outcome.already_closed),
            len(outcome.failed),
        )

    async def sweep_idle_forever(self) -> None:
        """The idle sweeper: the only end signal a stateless (2026-07-28) caller leaves.

        Nothing one pass raises may end it: every other conversation's end depends on it.
        """
        while True:
            await anyio.sleep(self._sweep_interval)
            try:
                await self.end_idle()
            except Exception:
                log.exception("the idle sweep failed; trying again in %g s", self._sweep_interval)

    def __len__(self) -> int:
        return len(self._live)

    async def record_created(
        self, conversation: Conversation, session_id: str, *, persist: bool, ttl_seconds: int | None = None
    ) -> None:
        """Record a new session; if its conversation's cleanup already ran, delete it at once.

        Raises ``ConversationEnded`` (with ``handed_off``) in that case, so the tool reports it.
        """
        expires_at = time.time() + (ttl_seconds or MAX_SESSION_SECONDS) + TTL_MARGIN
        conversation.sessions[session_id] = OwnedSession(session_id, persist, expires_at=expires_at)
        # Decided now, with the id in place: a cleanup that starts later than this line finds it.
        late = conversation.cleaned
        if self._store is not None and conversation.api.api_key:
            try:
                await self._record(conversation, session_id, persist=persist, ttl_seconds=ttl_seconds)
            except StoreUnavailable:
                # No session may exist without its owner recorded where every replica can see it.
                await self.discard(conversation, session_id)
                del conversation.sessions[session_id]  # never anyone's: deleted, or a pending delete
                raise
        if late:
            self._late_creates += 1
            log.warning(
                "conversation %s had ended when the API answered with %s: deleting it",
                conversation.id,
                session_id,
            )
            await self.pending.add(
                session_id,
                conversation.api,
                expires_at=expires_at,
                reason="created after its conversation ended",
            )
            raise ConversationEnded(conversation.id, handed_off=session_id)

    async def _record(
        self, conversation: Conversation, session_id: str, *, persist: bool, ttl_seconds: int | None
    ) -> None:
        api_key = conversation.api.api_key
        assert self._store is not None and api_key is not None
        # Hashed: an Mcp-Session-Id is a capability and has no business on disk.
        conversation_key = key_fingerprint(conversation.id)
        key_id = key_fingerprint(api_key)
        if self._shared is None:
            await self._store.record_created(
                session_id,
                conversation_id=conversation_key,
                persist=persist,
                key_id=key_id,
                base_url=conversation.api.base_url,
                ttl_seconds=ttl_seconds,
            )
            return
        await self._shared.record_created(
            session_id,
            conversation_id=conversation_key,
            persist=persist,
            key_id=key_id,
            base_url=conversation.api.base_url,
            ttl_seconds=ttl_seconds,
            # Sealed by the store with the replicas' shared secret (and not kept at all without it).
            api_key=api_key,
            lease=self._shared.lease_owner(conversation_key) if conversation.shared else None,
        )

    async def record_closed(self, conversation: Conversation, session_id: str) -> None:
        owned = conversation.sessions.get(session_id)
        if owned is not None:
            await self._mark_closed(owned)

    async def _mark_closed(self, owned: OwnedSession) -> None:
        if not owned.closed:
            owned.closed = True
            if self._store is not None:
                await self._store.record_closed(owned.session_id)

    @asynccontextmanager
    async def creating(self, conversation: Conversation) -> AsyncIterator[None]:
        """Bracket a create: the request and recording its id are shielded from cancellation,
        and ending the conversation waits for them (briefly), so a session created while the
        conversation ends is still found and deleted."""
        if conversation.ended:
            raise ConversationEnded(conversation.id)
        conversation.creates_in_flight += 1
        self._creates_in_flight += 1
        try:
            with anyio.CancelScope(shield=True):
                yield
        finally:
            conversation.creates_in_flight -= 1
            self._creates_in_flight -= 1
            if conversation.creates_in_flight == 0 and conversation._drained is not None:
                conversation._drained.set()
            if self._creates_in_flight == 0 and self._creates_idle is not None:
                self._creates_idle.set()

    async def end(self, conversation_id: str, reason: str) -> CleanupReport | None:
        """End a conversation: delete its open, non-persisted sessions. Safe to call twice."""
        conversation = self._live.pop(conversation_id, None)
        if conversation is None:
            return None
        conversation.ended = True
        started = time.monotonic()
        if conversation.creates_in_flight:
            # At most half the bound for creates still in flight, so the deletes keep the rest
            # and the whole cleanup stays within cleanup_timeout. A later answer is handed to
            # the pending deletes by record_created.
            conversation._drained = anyio.Event()
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_timeout / 2):
                await conversation._drained.wait()
        report = await self._clean(conversation, reason, self._cleanup_timeout - (time.monotonic() - started))
        log_fn = log.info if report.ok else log.error
        log_fn("%s", report.summary())
        return report

    async def end_all(self, reason: str) -> list[CleanupReport]:
        """End every live conversation at once, within one overall bound."""
        return await self._end_many(list(self._live), reason)

    async def shutdown(self, reason: str, *, create_grace: float = 0.0) -> list[CleanupReport]:
        """The process is about to exit: end every conversation, then make a last attempt at the
        pending deletes; whatever is still undeleted stays in the journal for the next start.

        Creates still in flight are waited for up to ``create_grace`` seconds (the API request
        timeout covers every create that can still answer); what they return is deleted too.
        The conversations' cleanup and the last attempt share one ``cleanup_timeout``, which
        starts again for the last attempt only when late creates have added to it.
        """
        started = time.monotonic()
        late_before = self._late_creates
        self._closing = True  # no reconnect can come any more: nothing waits out a grace
        await self.pending.stop()  # from here on, every delete happens within this call's bounds
        reports: list[CleanupReport] = []

        async def end_conversations() -> None:
            reports.extend(await self.end_all(reason))

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(end_conversations)
                tg.start_soon(self._delete_held, list(self._held), reason)
        if self._creates_in_flight and create_grace > 0:
            log.info(
                "waiting up to %g s for %d session create(s) still in flight",
                create_grace,
                self._creates_in_flight,
            )
            self._creates_idle = anyio.Event()
            with anyio.CancelScope(shield=True), anyio.move_on_after(create_grace):
                await self._creates_idle.wait()
        budget = self._cleanup_timeout - (time.monotonic() - started)
        if self._late_creates > late_before:
            budget = max(budget, self._cleanup_timeout)
        left = await self.pending.drain(budget)
        if self._creates_in_flight:
            log.error(
                "%d session create(s) had not answered at exit; a session they made closes at its TTL",
                self._creates_in_flight,
            )
        if left:
            where = (
                "they stay in the session journal and the next server to start deletes them"
                if self._store is not None
                else "with CHASER_JOURNAL=off nothing keeps them: they close at their TTL"
            )
            log.error(
                "%d session(s) could not be deleted before exit (%s); %s", len(left), ", ".join(left), where
            )
        return reports

    async def _end_many(self, conversation_ids: list[str], reason: str) -> list[CleanupReport]:
        reports: list[CleanupReport] = []

        async def end_one(conversation_id: str) -> None:
            try:
                report = await self.end(conversation_id, reason)
            except Exception:  # one conversation's failure must not cut the others' cleanup short
                log.exception("ending conversation %s failed", conversation_id)
                return
            if report is not None:
                reports.append(report)

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for conversation_id in conversation_ids:
                    tg.start_soon(end_one, conversation_id)
        return reports

    async def discard(self, conversation: Conversation, session_id: str) -> bool:
        """Delete one owned session that nobody will use again, now: shielded from cancellation and
        bounded by ``cleanup_timeout``; if that fails it becomes a pending delete, retried until it
        is gone. Returns whether it is gone already. For tools that create a session for one call."""
        with anyio.CancelScope(shield=True):
            outcome = await self._delete_owned(conversation, [session_id], self._cleanup_timeout)
        if outcome.failed:
            log.warning("could not delete %s now, retrying it: %s", session_id, outcome.failed[0][1])
        return session_id in outcome.done

    async def _delete_owned(
        self, conversation: Conversation, session_ids: list[str], budget: float
    ) -> DeleteOutcome:
        """Delete these owned sessions within ``budget``; what fails becomes a pending delete."""
        return await self._delete(
            [(conversation.sessions[sid], conversation.api) for sid in session_ids], budget
        )

    async def _delete(self, targets: list[tuple[OwnedSession, ChaserClient]], budget: float) -> DeleteOutcome:
        """Delete these sessions, each with its caller's key, within ``budget``; what fails becomes a
        pending delete."""
        by_id = {owned.session_id: (owned, api) for owned, api in targets}
        outcome = await delete_sessions([(sid, api) for sid, (_, api) in by_id.items()], timeout=budget)
        for session_id in outcome.done:
            await self._mark_closed(by_id[session_id][0])
        for session_id, exc in outcome.unexpected:
            log.error("deleting %s failed unexpectedly; retrying it", session_id, exc_info=exc)
        for session_id, why in outcome.failed:
            owned, api = by_id[session_id]
            await self.pending.add(session_id, api, expires_at=owned.expires_at, reason=why)
        return outcome

    async def _clean(self, conversation: Conversation, reason: str, budget: float) -> CleanupReport:
        # Shielded: cleanup runs while the server is being cancelled (signal, stream closed),
        # and a half-finished cleanup is exactly how a paid session leaks.
        with anyio.CancelScope(shield=True):
            conversation.cleaned = True
            targets = conversation.pending_cleanup()
            kept = tuple(s.session_id for s in conversation.sessions.values() if s.persist and not s.closed)
            if conversation.shared:
                # The lease lives on in the store; its expiry there is what deletes them.
                return CleanupReport(conversation.id, reason, kept=kept, shared=tuple(targets))
            if conversation.graceful and self.reconnect_grace > 0 and not self._closing:
                shared = await self._hold_shared(conversation, targets) or []
                # Not deleted yet: the rest stay journaled as this process's and wait for the caller here.
                self._hold(conversation, [sid for sid in targets if sid not in shared])
                return CleanupReport(conversation.id, reason, kept=kept, held=tuple(targets))
            outcome = await self._delete_owned(conversation, targets, budget)
        return CleanupReport(
            conversation_id=conversation.id,
            reason=reason,
            deleted=outcome.deleted,
            already_closed=outcome.already_closed,
            failed=tuple(sorted(outcome.failed)),
            kept=kept,
            seconds=outcome.seconds,
        )
