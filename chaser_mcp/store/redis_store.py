"""The ownership store on Redis, shared by several replicas of the server (``CHASER_STORE``).

The SQLite journal knows its owners as processes on one machine; replicas behind a load balancer
run on several, so here an owner is a *replica*: an id chosen at start, kept alive by a heartbeat
key that expires unless renewed. A replica whose heartbeat is gone (kill -9, OOM, a lost host) is
dead, and any survivor may claim its open, non-persisted entries and delete their sessions.

Keys, all under ``prefix`` so several deployments can share one Redis:

- ``<prefix>session:<id>``: a hash per entry (the fields of ``JournalEntry`` plus the claim);
- ``<prefix>sessions``: a sorted set of entry ids by creation time (the index a reap walks);
- ``<prefix>replica:<replica id>``: the heartbeat, a key with an expiry.

Claims run as one Lua script, which Redis executes atomically: the checks (still open, owner
dead, no live claim) and the update happen with nothing in between, so two replicas reaping at
once never claim the same entry. The script builds key names from the prefix, so the store needs
a single Redis (or a primary with replicas), not Redis Cluster.

No API key is stored in plain text: entries carry the key's fingerprint, and where a caller's key
is given (multi-tenant: a survivor must delete with it) only its AES-GCM sealed form
(``sealing.StateCipher``).

Failures: Redis unreachable makes ``record_created`` raise ``StoreUnavailable`` (a session must
not exist without its owner recorded, so the caller refuses to go on); the other writes are the
safety net of a cleanup already under way, so they log a warning and return, as the journal does.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import anyio
from redis import asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from ..api import redact_url
from .journal import DEFAULT_LEASE, DEFAULT_MAX_AGE, TTL_MARGIN
from .ownership import JournalEntry, account_url
from .process import ProcessIdentity
from .sealing import SealError, StateCipher

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_PREFIX", "REAP_INTERVAL", "RedisStore", "StoreUnavailable"]

log = logging.getLogger("chaser_mcp.store.redis")

T = TypeVar("T")

DEFAULT_PREFIX = "chaser-mcp:"
DEFAULT_HEARTBEAT = 10.0  # seconds between beats; a replica is dead after three missed ones
_MISSED_BEATS = 3
REAP_INTERVAL = 25.0  # on Redis: dead after 30 s, reaped within 25 more (the 60 s bound, with margin)
_KEY_ID_CHARS = frozenset("0123456789abcdef")

# KEYS: entry hashes. ARGV: prefix, claimer, now, lease, limit. Returns the ids claimed.
_CLAIM = """
local prefix, me = ARGV[1], ARGV[2]
local now, lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local claimed = {}
for _, key in ipairs(KEYS) do
  if limit > 0 and #claimed >= limit then break end
  local f = redis.call('HMGET', key, 'session_id', 'closed', 'persist', 'replica', 'claimer', 'claimed_at')
  if f[1] and f[2] == '0' and f[3] == '0' and f[4] ~= me
     and redis.call('EXISTS', prefix .. 'replica:' .. f[4]) == 0 then
    local free = (not f[5]) or f[5] == '' or tonumber(f[6]) <= now - lease
                 or (f[5] ~= me and redis.call('EXISTS', prefix .. 'replica:' .. f[5]) == 0)
    if free then
      redis.call('HSET', key, 'claimer', me, 'claimed_at', ARGV[3])
      claimed[#claimed + 1] = f[1]
    end
  end
end
return claimed
"""

# KEYS[1]: an entry hash. ARGV: field, value pairs. Sets them only on an entry that exists.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1]: an entry hash. ARGV: now, reason, release (1: also drop the claim).
_FAILED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'claimer', '', 'claimed_at', '0')
else
  redis.call('HSETNX', KEYS[1], 'pending_since', ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[2])
return 1
"""


class StoreUnavailable(RuntimeError):
    """The shared store cannot be reached; the message says which and what to do."""


class RedisStore:
    """The ``OwnershipStore`` on Redis: entries of every replica, each replica with a heartbeat.

    ``replica_id``: this replica's name in the store (default: random, new at every start, so a
    restarted replica never mistakes the entries of its previous life for live ones); ``heartbeat``:
    seconds between beats (``keep_alive`` beats; the heartbeat key lives three of them); ``lease``:
    seconds after which a claim by a replica that never finished may be taken over; ``max_age``:
    entries older than this belong to sessions the API has closed by itself; ``cipher``: seals
    the API keys given to ``record_created`` (None: keys are not kept at all).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        replica_id: str | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT,
        lease: float = DEFAULT_LEASE,
        max_age: float = DEFAULT_MAX_AGE,
        cipher: StateCipher | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.url = redact_url(url)
        self.prefix = prefix
        self.replica_id = replica_id or secrets.token_hex(8)
        self.owner = ProcessIdentity(os.getpid(), None, self.replica_id)
        self.durable = True  # as durable as the Redis behind it is configured to be
        self._heartbeat = heartbeat
        self._lease = lease
        self._max_age = max_age
        self._cipher = cipher
        # Bounded timeouts and no retries inside the client: a Redis that is down answers fast, and
        # the caller (or the next reap) decides what to do about it.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
        )
        self._claim = self._redis.register_script(_CLAIM)
        self._update = self._redis.register_script(_UPDATE)
        self._failed = self._redis.register_script(_FAILED)

    # -- key names --------------------------------------------------------------------------------

    def _entry_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}sessions"

    def _replica_key(self, replica_id: str) -> str:
        return f"{self.prefix}replica:{replica_id}"

    # -- plumbing ---------------------------------------------------------------------------------

    def _unavailable(self, what: str, exc: RedisError) -> StoreUnavailable:
        return StoreUnavailable(
            f"the state store {self.url} did not answer ({type(exc).__name__}) while recording {what}; "
            "check that Redis is running and reachable, then try again"
        )

    async def _quietly(self, what: str, action: Callable[[], Awaitable[T]], fallback: T) -> T:
        """Run ``action``; a store failure is logged, never raised (cleanup must go on without it)."""
        try:
            return await action()
        except RedisError as exc:
            log.warning("state store %s: %s failed: %s", self.url, what, type(exc).__name__)
            return fallback

    def _is_expired(self, created_at: float, ttl_seconds: int | None, now: float) -> bool:
        if ttl_seconds is not None and created_at + ttl_seconds + TTL_MARGIN < now:
            return True
        return created_at < now - self._max_age

    # -- the heartbeat ----------------------------------------------------------------------------

    async def beat(self) -> None:
        """Say this replica is alive for three more heartbeats. Raises ``StoreUnavailable``."""
        try:
            await self._redis.set(
                self._replica_key(self.replica_id),
                str(time.time()),
                px=int(self._heartbeat * _MISSED_BEATS * 1000),
            )
        except RedisError as exc:
            raise self._unavailable("the heartbeat", exc) from exc

    async def keep_alive(self) -> NoReturn:
        """Beat every ``heartbeat`` seconds until cancelled; a missed beat is logged, not fatal."""
        while True:
            try:
                await self.beat()
            except StoreUnavailable as exc:
                log.warning("%s", exc)
            await anyio.sleep(self._heartbeat)

    async def alive_replicas(self, replica_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(replica_ids))
        if not ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for replica_id in ids:
                pipe.exists(self._replica_key(replica_id))
            found = await pipe.execute()
        return {replica_id for replica_id, there in zip(ids, found, strict=True) if there}

    # -- recording --------------------------------------------------------------------------------

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
    ) -> None:
        """Record a session this replica just created. Raises ``StoreUnavailable`` when Redis is down.

        ``key_id`` is a fingerprint, never a key; ``api_key`` is kept only sealed, and only with a cipher.
        """
        if not (8 <= len(key_id) <= 64 and set(key_id) <= _KEY_ID_CHARS):
            raise ValueError("key_id must be a hex fingerprint such as key_fingerprint(key), never a key")
        created_at = time.time()
        fields: dict[FieldT, EncodableT] = {
            "session_id": session_id,
            "conversation_id": conversation_id,
            "key_id": key_id,
            "base_url": account_url(base_url),
            "persist": int(persist),
            "closed": 0,
            "replica": self.replica_id,
            "pid": self.owner.pid,
            "created_at": created_at,
            "ttl_seconds": "" if ttl_seconds is None else ttl_seconds,
            "attempts": 0,
            "claimer": "",
            "claimed_at": 0,
        }
        if api_key is not None and self._cipher is not None:
            fields["sealed_key"] = self._cipher.seal(api_key, bound_to=session_id)
        key = self._entry_key(session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)  # a replace, like the journal's INSERT OR REPLACE
                pipe.hset(key, mapping=fields)
                pipe.zadd(self._index, {session_id: created_at})
                await pipe.execute()
        except RedisError as exc:
            raise self._unavailable(f"the owner of {session_id}", exc) from exc

    async def record_closed(self, session_id: str) -> None:
        await self._quietly(
            "record_closed", lambda: self._update(keys=[self._entry_key(session_id)], args=["closed", 1]), 0
        )

    async def record_pending(self, session_id: str, reason: str) -> None:
        args: list[EncodableT] = [time.time(), reason[:300], 0]
        await self._quietly(
            "record_pending", lambda: self._failed(keys=[self._entry_key(session_id)], args=args), 0
        )

    async def record_persist(self, session_id: str, persist: bool) -> None:
        args: list[EncodableT] = ["persist", int(persist)]
        await self._quietly(
            "record_persist", lambda: self._update(keys=[self._entry_key(session_id)], args=args), 0
        )

    # -- reading and claiming ---------------------------------------------------------------------

    async def _read_all(self) -> list[dict[str, str]]:
        ids = [str(i) for i in await self._redis.zrange(self._index, 0, -1)]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self._entry_key(session_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [row for row in rows if row]

    async def entries(self) -> list[JournalEntry]:
        """Every entry, oldest first (for diagnostics and tests)."""
        return await self._quietly("entries", self._entries, [])

    async def _entries(self) -> list[JournalEntry]:
        return [_entry_of(row) for row in await self._read_all()]

    async def _open_orphans(self) -> list[JournalEntry]:
        now = time.time()
        rows = [r for r in await self._read_all() if r.get("closed") == "0" and r.get("persist") == "0"]
        entries = [_entry_of(r) for r in rows]
        entries = [e for e in entries if not self._is_expired(e.created_at, e.ttl_seconds, now)]
        alive = await self.alive_replicas(e.owner.host for e in entries)
        alive.add(self.replica_id)  # never reap oneself, even after missed beats
        return [e for e in entries if e.owner.host not in alive]

    async def orphans(self) -> list[JournalEntry]:
        """Open, non-persisted, unexpired entries whose replica's heartbeat is gone."""
        return await self._quietly("orphans", self._open_orphans, [])

    async def claim_orphans(
        self, *, accounts: Collection[tuple[str, str]] | None = None, limit: int | None = None
    ) -> list[JournalEntry]:
        """Atomically take orphans for this replica to delete, and return them.

        Only orphans of ``accounts`` ((key_id, base_url) pairs; None: any) that no live replica
        holds a claim on, or whose claim's lease ran out. The Lua script re-checks each candidate
        and claims it in one step, so two replicas never get the same entry.
        """
        wanted = {(key_id, account_url(url)) for key_id, url in accounts} if accounts is not None else None

        async def claim() -> list[JournalEntry]:
            candidates = [
                e for e in await self._open_orphans() if wanted is None or (e.key_id, e.base_url) in wanted
            ]
            if not candidates:
                return []
            args: list[EncodableT] = [self.prefix, self.replica_id, time.time(), self._lease, limit or 0]
            keys = [self._entry_key(e.session_id) for e in candidates]
            won = set(await self._claim(keys=keys, args=args))
            return [e for e in candidates if e.session_id in won]

        return await self._quietly("claim_orphans", claim, [])

    async def release(self, failures: Mapping[str, str]) -> None:
        """Give claimed entries back after a failed delete, noting why, for a later reap to retry."""

        async def write() -> None:
            for session_id, reason in failures.items():
                args: list[EncodableT] = [time.time(), reason[:300], 1]
                await self._failed(keys=[self._entry_key(session_id)], args=args)

        if failures:
            await self._quietly("release", write, None)

    async def sealed_key(self, session_id: str) -> str | None:
        """The API key recorded (sealed) with an entry, opened with the shared secret; None if none."""
        if self._cipher is None:
            return None
        sealed = await self._quietly(
            "sealed_key", lambda: self._redis.hget(self._entry_key(session_id), "sealed_key"), None
        )
        if not sealed:
            return None
        try:
            return self._cipher.open(str(sealed), bound_to=session_id)
        except SealError:
            log.warning("state store %s: the key of %s does not open with this secret", self.url, session_id)
            return None

    # -- forgetting -------------------------------------------------------------------------------

    async def forget(self, session_ids: Iterable[str]) -> None:
        """Remove entries: their sessions were deleted, or the API says they are gone."""
        ids = list(session_ids)

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(self._entry_key(s) for s in ids))
                pipe.zrem(self._index, *ids)
                await pipe.execute()

        if ids:
            await self._quietly("forget", write, None)

    async def forget_owner_closed(self) -> int:
        """Housekeeping: drop closed entries, expired ones, and persisted ones of dead replicas."""

        async def sweep() -> int:
            now = time.time()
            entries = await self._entries()
            alive = await self.alive_replicas(e.owner.host for e in entries if e.persist)
            alive.add(self.replica_id)
            doomed = [
                e.session_id
                for e in entries
                if e.closed
                or self._is_expired(e.created_at, e.ttl_seconds, now)
                or (e.persist and e.owner.host not in alive)
            ]
            await self.forget(doomed)
            return len(doomed)

        return await self._quietly("forget_owner_closed", sweep, 0)

    # -- closing ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop being alive: what this replica leaves behind is at once reapable by the others."""
        await self._quietly("aclose", lambda: self._redis.delete(self._replica_key(self.replica_id)), 0)
        await self._redis.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _entry_of(row: Mapping[str, Any]) -> JournalEntry:
    ttl = row.get("ttl_seconds") or ""
    pending = row.get("pending_since") or ""
    return JournalEntry(
        session_id=row["session_id"],
        conversation_id=row["conversation_id"],
        key_id=row["key_id"],
        base_url=row["base_url"],
        persist=row["persist"] == "1",
        closed=row["closed"] == "1",
        # On Redis an owner is a replica: its id stands where a process's host scope does.
        owner=ProcessIdentity(int(row.get("pid") or 0), None, row["replica"]),
        created_at=float(row["created_at"]),
        attempts=int(row.get("attempts") or 0),
        last_error=row.get("last_error") or None,
        ttl_seconds=int(ttl) if ttl else None,
        pending_since=float(pending) if pending else None,
    )
