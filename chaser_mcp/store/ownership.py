"""What an ownership store records, and the protocol every store (and the reaper) works through.

``SessionJournal`` is the embedded store: a SQLite file per user, for one process at a time.
``RedisStore`` is shared by several replicas and also speaks ``SharedOwnership``: the leases of
stateless callers and the sessions waiting for a caller's reconnect, which on one process live in
memory (``conversations.py``) and across replicas must live in the store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .process import ProcessIdentity

__all__ = [
    "MAX_SESSION_SECONDS",
    "JournalEntry",
    "OwnershipStore",
    "SharedOwnership",
    "StoreUnavailable",
    "account_url",
]

MAX_SESSION_SECONDS = 3600  # the API's ttl ceiling: no session lives longer than this


def account_url(base_url: str) -> str:
    """The API root as entries and reapers name it: (key id, this) is the account a delete needs."""
    return base_url.rstrip("/")


class StoreUnavailable(RuntimeError):
    """The shared store cannot be reached; the message says which and what to do."""


@dataclass(frozen=True)
class JournalEntry:
    session_id: str
    conversation_id: str
    key_id: str
    base_url: str
    persist: bool
    closed: bool
    owner: ProcessIdentity
    created_at: float  # Unix time
    attempts: int  # deletes that were tried and failed (cleanup, pending retries, reaps)
    last_error: str | None
    ttl_seconds: int | None = None  # None: recorded by a server that did not know it
    pending_since: float | None = None  # Unix time cleanup first failed to delete it

    @property
    def pending(self) -> bool:
        """Its conversation ended and the delete it is owed has not succeeded yet."""
        return self.pending_since is not None


class OwnershipStore(Protocol):
    """Where owned sessions are recorded so that another process can clean up after a dead owner."""

    async def record_created(
        self,
        session_id: str,
        *,
        conversation_id: str,
        persist: bool,
        key_id: str,
        base_url: str,
        ttl_seconds: int | None = None,
    ) -> None: ...

    async def record_closed(self, session_id: str) -> None: ...

    async def record_pending(self, session_id: str, reason: str) -> None: ...

    async def record_persist(self, session_id: str, persist: bool) -> None: ...

    async def orphans(self) -> list[JournalEntry]: ...

    async def claim_orphans(
        self, *, accounts: Collection[tuple[str, str]] | None = None, limit: int | None = None
    ) -> list[JournalEntry]: ...

    async def release(self, failures: Mapping[str, str]) -> None: ...

    async def forget(self, session_ids: Iterable[str]) -> None: ...

    async def forget_owner_closed(self) -> int: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SharedOwnership(Protocol):
    """What replicas share beyond the journal (``RedisStore``): callers' leases and held sessions.

    Owners are ids whose life is a key with an expiry: a replica (its heartbeat), a lease, a
    grace. Sessions of an owner whose key expired are reaped, exactly once, by any replica."""

    replica_id: str
    url: str  # where the store is, credentials redacted

    async def record_created(
        self,
        session_id: str,
        *,
        conversation_id: str,
        persist: bool,
        key_id: str,
        base_url: str,
        ttl_seconds: int | None = None,
        api_key: str | None = None,
        lease: str | None = None,
    ) -> None: ...

    def lease_owner(self, conversation_key: str) -> str: ...

    async def renew_lease(self, lease: str, seconds: float) -> dict[str, bool]: ...

    async def hold(self, session_ids: Collection[str], caller: str, seconds: float) -> list[str]: ...

    async def adopt(
        self, caller: str, owner: str, session_ids: Collection[str] | None = None
    ) -> dict[str, bool]: ...

    async def has_held(self, caller: str) -> bool: ...

    async def key_verdict(self, digest: str) -> bool | None: ...

    async def remember_key(self, digest: str, valid: bool, seconds: float) -> None: ...

    async def ping(self) -> bool: ...
