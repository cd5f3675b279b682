"""The ownership store on Redis, shared by several replicas of the server (``CHASER_STORE``).

The SQLite journal knows its owners as processes on one machine; replicas behind a load balancer
run on several, so here an owner is a *replica*: an id chosen at start, kept alive by a heartbeat
key that expires unless renewed. A replica whose heartbeat is gone (kill -9, OOM, a lost host) is
dead, and any survivor may claim its open, non-persisted entries and delete their sessions.

Keys, all under ``prefix`` so several deployments can share one Redis:

- ``<prefix>session:<id>``: a hash per entry (the fields of ``JournalEntry`` plus the claim);
- ``<prefix>sessions``: a sorted set of entry ids by creation time (the index a reap walks);
- ``<prefix>replica:<owner id>``: an owner's life, a key with an expiry: a replica's heartbeat, a
  stateless caller's lease (``lease-<conversation>``, renewed by every request on any replica), or
  the reconnect grace of an ended conversation's sessions (``held-<caller>-<random>``);
- ``<prefix>owned:<owner id>``: a hash, session id -> persist flag, of what a lease owns (read back
  by every replica that serves the caller);
- ``<prefix>held:<caller>``: a hash, session id -> owner id, of what a caller left waiting for a
  reconnect;
- ``<prefix>keycheck:<sha256 of a key>``: whether the API accepted that key, for a minute (refused:
  ten seconds), so a multi-tenant caller's key is checked once for every replica.

An owner's key expiring is all it takes for its open, non-persisted entries to become orphans: a
dead replica's heartbeat, a lease nobody renewed, a grace nobody adopted within. The reaper then
claims and deletes them exactly once, the same way for all three.

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
from .ownership import JournalEntry, StoreUnavailable, account_url
from .process import ProcessIdentity
from .sealing import SealError, StateCipher

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_PREFIX", "REAP_BEATS", "RedisStore", "StoreUnavailable"]

log = logging.getLogger("chaser_mcp.store.redis")

T = TypeVar("T")

DEFAULT_PREFIX = "chaser-mcp:"
DEFAULT_HEARTBEAT = 10.0  # seconds between beats; a replica is dead after three missed ones
_MISSED_BEATS = 3
REAP_BEATS = 2.5  # reaps every 2.5 heartbeats: dead after 3 (30 s), reaped within 25 s more: the 60 s bound
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

# KEYS[1]: an entry hash. ARGV: prefix, field, value pairs. Sets them only on an entry that exists,
# and mirrors closed/persist into its owner's index of owned sessions.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local prefix = ARGV[1]
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
local f = redis.call('HMGET', KEYS[1], 'session_id', 'replica', 'closed', 'persist')
local owned = prefix .. 'owned:' .. f[2]
if f[3] == '1' then
  redis.call('HDEL', owned, f[1])
elseif redis.call('HEXISTS', owned, f[1]) == 1 then
  redis.call('HSET', owned, f[1], f[4])
end
return 1
"""

# KEYS: a lease's key, its index of owned sessions. ARGV: now, milliseconds. Renews the lease and
# returns what it owns (id, persist pairs, flattened): one command, the cheapest call redis-py makes.
_RENEW = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('HGETALL', KEYS[2])
"""

# KEYS: entry hashes. ARGV: prefix, new owner, held index ('' for none). Moves open entries to the
# new owner (out of the old owner's index of owned sessions). Returns the ids moved.
_REOWN = """
local prefix, owner, held = ARGV[1], ARGV[2], ARGV[3]
local moved = {}
for _, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'session_id', 'closed', 'replica')
  if f[1] and f[2] == '0' then
    redis.call('HDEL', prefix .. 'owned:' .. f[3], f[1])
    redis.call('HSET', key, 'replica', owner)
    if held ~= '' then redis.call('HSET', held, f[1], owner) end
    moved[#moved + 1] = f[1]
  end
end
return moved
"""

# KEYS[1]: a caller's held index. ARGV: prefix, new owner, session ids (none: every one held).
# Adopts the held sessions whose grace is still running; drops the index's stale ones. Returns
# id, persist pairs, flattened.
_ADOPT = """
local prefix, owner = ARGV[1], ARGV[2]
local ids = {}
if #ARGV > 2 then ids = {unpack(ARGV, 3)} else ids = redis.call('HKEYS', KEYS[1]) end
local adopted = {}
for _, sid in ipairs(ids) do
  local holder = redis.call('HGET', KEYS[1], sid)
  if holder then
    local key = prefix .. 'session:' .. sid
    local f = redis.call('HMGET', key, 'replica', 'closed', 'persist', 'claimer')
    if f[1] == holder and f[2] == '0' and (not f[4] or f[4] == '')
       and redis.call('EXISTS', prefix .. 'replica:' .. holder) == 1 then
      redis.call('HSET', key, 'replica', owner)
      if string.sub(owner, 1, 6) == 'lease-' then
        redis.call('HSET', prefix .. 'owned:' .. owner, sid, f[3])
      end
      adopted[#adopted + 1] = sid
      adopted[#adopted + 1] = f[3]
    end
    redis.call('HDEL', KEYS[1], sid)
  end
end
return adopted
"""

# KEYS: entry hashes. ARGV: prefix. Removes entries and their owners' index lines.
_FORGET = """
local prefix = ARGV[1]
for _, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'session_id', 'replica')
  if f[1] then
    redis.call('HDEL', prefix .. 'owned:' .. f[2], f[1])
    redis.call('ZREM', prefix .. 'sessions', f[1])
    redis.call('DEL', key)
  end
end
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
        self._reown = self._redis.register_script(_REOWN)
        self._renew = self._redis.register_script(_RENEW)
        self._adopt = self._redis.register_script(_ADOPT)
        self._forget = self._redis.register_script(_FORGET)

    # -- key names --------------------------------------------------------------------------------

    def _entry_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}sessions"

    def _replica_key(self, replica_id: str) -> str:
        return f"{self.prefix}replica:{replica_id}"

    def _owned_key(self, owner: str) -> str:
        return f"{self.prefix}owned:{owner}"

    def _held_key(self, caller: str) -> str:
        return f"{self.prefix}held:{caller}"

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
        lease: str | None = None,
    ) -> None:
        """Record a session this replica just created. Raises ``StoreUnavailable`` when Redis is down.

        ``key_id`` is a fingerprint, never a key; ``api_key`` is kept only sealed, and only with a cipher.
        ``lease``: the session belongs to this stateless caller's lease (``lease_owner``), which every
        replica renews, rather than to this replica.
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
            "replica": lease or self.replica_id,
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
                if lease is not None:
                    pipe.hset(self._owned_key(lease), session_id, int(persist))
                await pipe.execute()
        except RedisError as exc:
            raise self._unavailable(f"the owner of {session_id}", exc) from exc

    async def record_closed(self, session_id: str) -> None:
        args: list[EncodableT] = [self.prefix, "closed", 1]
        await self._quietly(
            "record_closed", lambda: self._update(keys=[self._entry_key(session_id)], args=args), 0
        )

    async def record_pending(self, session_id: str, reason: str) -> None:
        args: list[EncodableT] = [time.time(), reason[:300], 0]
        await self._quietly(
            "record_pending", lambda: self._failed(keys=[self._entry_key(session_id)], args=args), 0
        )

    async def record_persist(self, session_id: str, persist: bool) -> None:
        args: list[EncodableT] = [self.prefix, "persist", int(persist)]
        await self._quietly(
            "record_persist", lambda: self._update(keys=[self._entry_key(session_id)], args=args), 0
        )

    # -- leases and the reconnect grace, shared by every replica -----------------------------------

    @staticmethod
    def lease_owner(conversation_key: str) -> str:
        """The owner id of a stateless caller's lease (``conversation_key``: a fingerprint of it)."""
        return f"lease-{conversation_key}"

    async def renew_lease(self, lease: str, seconds: float) -> dict[str, bool]:
        """Keep a lease alive ``seconds`` more, and read what it owns (id -> persist), in one round trip.

        Raises ``StoreUnavailable``: the caller decides whether to go on with what it knows."""
        keys = [self._replica_key(lease), self._owned_key(lease)]
        args: list[EncodableT] = [time.time(), max(1, int(seconds * 1000))]
        try:
            flat = [str(v) for v in await self._renew(keys=keys, args=args)]
        except RedisError as exc:
            raise self._unavailable("a caller's lease", exc) from exc
        return {flat[i]: flat[i + 1] == "1" for i in range(0, len(flat), 2)}

    async def hold(self, session_ids: Collection[str], caller: str, seconds: float) -> list[str]:
        """Move these sessions to a reconnect grace of ``seconds`` for ``caller`` (a fingerprint):
        any replica may adopt them for that caller meanwhile; after it, they are orphans and reaped.
        Returns the ids now held; raises ``StoreUnavailable`` (the caller deletes them instead)."""
        if not session_ids:
            return []
        owner = f"held-{caller}-{secrets.token_hex(4)}"
        held = self._held_key(caller)
        try:
            await self._redis.set(self._replica_key(owner), str(time.time()), px=max(1, int(seconds * 1000)))
            args: list[EncodableT] = [self.prefix, owner, held]
            moved = await self._reown(keys=[self._entry_key(s) for s in session_ids], args=args)
            # The index outlives every grace it lists, never by much.
            await self._redis.pexpire(held, int((seconds + 60) * 1000))
        except RedisError as exc:
            raise self._unavailable("sessions held for a reconnect", exc) from exc
        return [str(sid) for sid in moved]

    async def adopt(
        self, caller: str, owner: str, session_ids: Collection[str] | None = None
    ) -> dict[str, bool]:
        """Give ``owner`` (this replica, or a lease) the sessions ``caller`` left waiting whose grace
        still runs: the ones named, or all (None). Atomic against the reaper: a session is adopted or
        reaped, never both. Returns id -> persist of those adopted; a store failure adopts nothing."""

        async def take() -> dict[str, bool]:
            args: list[EncodableT] = [self.prefix, owner, *(session_ids or ())]
            if session_ids is not None and not session_ids:
                return {}
            flat = [str(v) for v in await self._adopt(keys=[self._held_key(caller)], args=args)]
            return {flat[i]: flat[i + 1] == "1" for i in range(0, len(flat), 2)}

        return await self._quietly("adopt", take, {})

    async def has_held(self, caller: str) -> bool:
        """Whether ``caller`` has sessions waiting for a reconnect (a cheap check before ``adopt``)."""
        return bool(await self._quietly("has_held", lambda: self._redis.exists(self._held_key(caller)), 0))

    # -- the key-check cache, shared: a caller's key is checked once for every replica --------------

    def _key_check_key(self, digest: str) -> str:
        return f"{self.prefix}keycheck:{digest}"

    async def key_verdict(self, digest: str) -> bool | None:
        """What a replica learned of the key with this SHA-256 (hex), while fresh; None: unknown."""
        found = await self._quietly("key_verdict", lambda: self._redis.get(self._key_check_key(digest)), None)
        return None if found is None else found == "1"

    async def remember_key(self, digest: str, valid: bool, seconds: float) -> None:
        key = self._key_check_key(digest)
        ms = max(1, int(seconds * 1000))
        await self._quietly("remember_key", lambda: self._redis.set(key, int(valid), px=ms), None)

    async def ping(self) -> bool:
        """Whether Redis answers now (``/healthz``)."""
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

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
            await self._forget(keys=[self._entry_key(s) for s in ids], args=[self.prefix])
            await self._redis.zrem(self._index, *ids)

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
