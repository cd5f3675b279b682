"""A crash journal of owned sessions, so no paid session outlives a server killed with -9.

Cleanup at the end of a conversation (``conversations.py``) only runs while the server
process does. So every owned session is also written here the moment it is created, and
marked when it closes; a reaper (``reaper.py``) deletes the entries of owners that are
gone (``process.py`` tells who is).

One small SQLite file is shared by every server process of the user (Claude Desktop and
an IDE each run their own stdio server): WAL mode so readers never block, a busy timeout
and short ``BEGIN IMMEDIATE`` transactions so writers queue instead of failing, and an
atomic *claim* so two processes reaping at once never delete the same session twice.

No API key is ever stored: entries carry ``key_id``, a fingerprint (``key_fingerprint``),
and a reaper deletes an entry only with a client it holds for that fingerprint and base URL.

The public methods are ``async``: each runs one short SQLite call in a worker thread
(``anyio.to_thread``), because a commit waits for an fsync (``synchronous=FULL``: the
entry must survive the power cut it exists for) and may wait on another process's lock.
The ``OwnershipStore`` protocol they implement is async for the same reason.

The journal is a safety net, never a reason for a tool call to fail: a journal that
cannot be written logs a warning and the call goes on; a corrupted file is set aside
and a fresh one started; a journal that cannot be opened at all is replaced by an
in-memory one (``durable`` is then False).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import anyio
import platformdirs
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from .ownership import MAX_SESSION_SECONDS, JournalEntry, account_url
from .process import Judge, Liveness, ProcessIdentity
from .schema import COLUMNS, NewerSchema, entry_of, migrate

__all__ = ["SessionJournal", "default_journal_path"]

log = logging.getLogger("chaser_mcp.store.journal")

T = TypeVar("T")

DEFAULT_MAX_AGE = MAX_SESSION_SECONDS + 600.0  # plus a margin for clock drift
TTL_MARGIN = 60.0  # an entry is expired this long after created_at + ttl_seconds
DEFAULT_LEASE = 120.0
DEFAULT_BUSY_TIMEOUT = 5.0
_KEY_ID = re.compile(r"[0-9a-f]{8,64}")
# SQLITE_PERM, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB: the file is at fault
_SQLITE_DAMAGE_CODES = frozenset({3, 8, 11, 14, 26})
_MAX_PARAMS = 500  # below SQLite's oldest bound-parameter limit (999)


def default_journal_path() -> Path:
    """``sessions.sqlite3`` in the user's state directory (``~/.local/state/chaser-mcp`` on Linux)."""
    return platformdirs.user_state_path("chaser-mcp", appauthor=False) / "sessions.sqlite3"


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), _MAX_PARAMS):
        yield items[start : start + _MAX_PARAMS]


class SessionJournal:
    """The crash journal: one SQLite file shared by every server process of the user.

    Opening it is synchronous and quick (the constructor runs at start-up); every other public
    method is async and runs its SQLite call in a worker thread, serialized by a lock.

    ``owner`` is the process recorded as the owner of new entries (default: this one);
    ``lease``: seconds after which a claim by a reaper that is still alive but never finished
    may be taken over; ``max_age``: entries older than this cannot belong to an open session
    (the API caps a session at an hour), so they are never reaped, only forgotten.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        owner: ProcessIdentity | None = None,
        lease: float = DEFAULT_LEASE,
        max_age: float = DEFAULT_MAX_AGE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.path = Path(path) if path is not None else default_journal_path()
        self.owner = owner or ProcessIdentity.current()
        self._me = ProcessIdentity.current()  # the reaper, whoever owner is
        self._lease = lease
        self._max_age = max_age
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self.durable = True
        self._conn = self._open()

    # -- opening ----------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect_when_free(self.path)
        except NewerSchema as exc:
            # Another (newer) server uses this file: leave it alone rather than destroy its entries.
            return self._in_memory(f"{exc}; leaving {self.path} untouched")
        except (sqlite3.Error, OSError) as exc:
            if not _is_damage(exc) or not self.path.exists():
                # Busy, disk full, an I/O error: the file may be fine and in use by others; keep it.
                return self._in_memory(f"{self.path} cannot be used now ({exc})")
            failure = exc
        try:
            aside = self._set_aside()
        except OSError as exc:
            return self._in_memory(f"{self.path} is unusable ({failure}) and cannot be moved aside ({exc})")
        log.warning("session journal %s was unusable (%s); moved it to %s", self.path, failure, aside)
        try:
            return self._connect(self.path)
        except (sqlite3.Error, OSError, NewerSchema) as exc:
            return self._in_memory(f"a fresh journal at {self.path} failed too ({exc})")

    def _connect_when_free(self, path: Path) -> sqlite3.Connection:
        """``_connect``, tried again while another process holds the lock it needs.

        Two servers starting together (Claude Desktop and an IDE) race to switch the file to WAL
        and create the schema; SQLite answers the loser's mode switch with SQLITE_BUSY at once
        instead of waiting (deadlock avoidance), so the busy timeout alone does not cover it.
        """
        retrying = Retrying(
            retry=retry_if_exception(_is_busy),
            stop=stop_after_delay(self._busy_timeout),
            wait=wait_random_exponential(multiplier=0.01, max=0.25),
            reraise=True,
        )
        return retrying(self._connect, path)

    def _connect(self, path: Path) -> sqlite3.Connection:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file private before SQLite sees it; its -wal and -shm files copy this mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        conn = sqlite3.connect(
            path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network file system: still correct, just slower
                log.warning("session journal %s: WAL mode refused, using %s", path, mode)
            conn.execute("PRAGMA synchronous = FULL")
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {str(verdict)[:200]}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> Path:
        """Rename the unusable file (and its WAL, which belongs to it) out of the way."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        os.replace(self.path, aside)
        wal = self.path.with_name(self.path.name + "-wal")
        with contextlib.suppress(FileNotFoundError):
            os.replace(wal, aside.with_name(aside.name + "-wal"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path.with_name(self.path.name + "-shm"))
        return aside

    def _in_memory(self, why: str) -> sqlite3.Connection:
        log.warning("session journal unavailable, sessions are not protected against a crash: %s", why)
        self.durable = False
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        migrate(conn)
        return conn

    # -- plumbing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock up front so a read-then-update
        (a claim) is atomic across processes."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    async def _run(self, what: str, fn: Callable[[], T], fallback: T) -> T:
        """Run ``fn`` in a worker thread; a journal failure is logged, never raised to the tool."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except sqlite3.Error as exc:
            log.warning("session journal %s: %s failed: %s", self.path, what, exc)
            return fallback

    def _is_expired(self, created_at: float, ttl_seconds: int | None, now: float) -> bool:
        """Whether the API has closed the session by itself: its TTL (or the longest one) has passed."""
        if ttl_seconds is not None and created_at + ttl_seconds + TTL_MARGIN < now:
            return True
        return created_at < now - self._max_age

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
    ) -> None:
        """Record a session this process just created. ``key_id`` is a fingerprint, never a key."""
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("key_id must be a hex fingerprint such as key_fingerprint(key), never a key")
        owner = self.owner
        row: tuple[object, ...] = (session_id, conversation_id, key_id, account_url(base_url))
        row += (int(persist), owner.host, owner.pid, owner.start, time.time(), ttl_seconds)

        def write() -> None:
            with self._write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO sessions (session_id, conversation_id, key_id, base_url, persist,"
                    " owner_host, owner_pid, owner_start, created_at, ttl_seconds)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self._run("record_created", write, None)

    async def record_closed(self, session_id: str) -> None:
        """The session is closed (deleted, or found already closed): nothing is left to reap."""

        def write() -> None:
            with self._write() as db:
                db.execute("UPDATE sessions SET closed = 1 WHERE session_id = ?", (session_id,))

        await self._run("record_closed", write, None)

    async def record_pending(self, session_id: str, reason: str) -> None:
        """A delete of this session failed: it stays owed (and reapable once this process exits)."""
        item = (time.time(), reason[:300], session_id)

        def write() -> None:
            with self._write() as db:
                db.execute(
                    "UPDATE sessions SET pending_since = COALESCE(pending_since, ?), attempts = attempts + 1,"
                    " last_error = ? WHERE session_id = ?",
                    item,
                )

        await self._run("record_pending", write, None)

    async def record_persist(self, session_id: str, persist: bool) -> None:
        def write() -> None:
            with self._write() as db:
                db.execute("UPDATE sessions SET persist = ? WHERE session_id = ?", (int(persist), session_id))

        await self._run("record_persist", write, None)

    # -- reading and claiming ---------------------------------------------------------------------

    async def entries(self) -> list[JournalEntry]:
        """Every entry, oldest first (for diagnostics and tests)."""

        def read() -> list[JournalEntry]:
            with self._lock:
                rows = self._conn.execute(f"SELECT {COLUMNS} FROM sessions ORDER BY created_at").fetchall()
            return [entry_of(row) for row in rows]

        return await self._run("entries", read, [])

    async def orphans(self) -> list[JournalEntry]:
        """Open, non-persisted entries whose owner process is gone (claimed by a reaper or not).

        Entries of another host are never orphans here; entries older than ``max_age`` are not
        either: their sessions have expired by themselves.
        """

        def read() -> list[JournalEntry]:
            now = time.time()
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM sessions WHERE closed = 0 AND persist = 0 ORDER BY created_at"
                ).fetchall()
            judge = Judge()
            entries = (entry_of(row) for row in rows)
            return [
                e
                for e in entries
                if not self._is_expired(e.created_at, e.ttl_seconds, now) and judge(e.owner) is Liveness.DEAD
            ]

        return await self._run("orphans", read, [])

    async def claim_orphans(
        self, *, accounts: Collection[tuple[str, str]] | None = None, limit: int | None = None
    ) -> list[JournalEntry]:
        """Atomically take orphans for this process to delete, and return them.

        Only orphans of ``accounts`` ((key_id, base_url) pairs this process can delete with; None:
        any) that no live reaper holds, or whose reaper's lease ran out. Check and update happen in
        one ``BEGIN IMMEDIATE`` transaction, so concurrent claimers never get the same entry.
        """
        wanted = {(key_id, account_url(url)) for key_id, url in accounts} if accounts is not None else None
        me = self._me

        def claim() -> list[JournalEntry]:
            now = time.time()
            judge = Judge()
            chosen: list[JournalEntry] = []
            with self._write() as db:
                rows = db.execute(
                    f"SELECT {COLUMNS} FROM sessions WHERE closed = 0 AND persist = 0 ORDER BY created_at"
                ).fetchall()
                for row in rows:
                    entry = entry_of(row)
                    if wanted is not None and (entry.key_id, entry.base_url) not in wanted:
                        continue
                    if (
                        self._is_expired(entry.created_at, entry.ttl_seconds, now)
                        or judge(entry.owner) is not Liveness.DEAD
                    ):
                        continue
                    if row["reaper_pid"] is not None and row["claimed_at"] > now - self._lease:
                        reaper = ProcessIdentity(row["reaper_pid"], row["reaper_start"], row["reaper_host"])
                        if judge(reaper) is not Liveness.DEAD:
                            continue
                    chosen.append(entry)
                    if limit is not None and len(chosen) >= limit:
                        break
                db.executemany(
                    "UPDATE sessions SET reaper_host = ?, reaper_pid = ?, reaper_start = ?, claimed_at = ?"
                    " WHERE session_id = ?",
                    [(me.host, me.pid, me.start, now, e.session_id) for e in chosen],
                )
            return chosen

        return await self._run("claim_orphans", claim, [])

    async def release(self, failures: Mapping[str, str]) -> None:
        """Give claimed entries back after a failed delete, noting why, for a later reap to retry."""
        items = [(reason[:300], session_id) for session_id, reason in failures.items()]

        def write() -> None:
            with self._write() as db:
                db.executemany(
                    "UPDATE sessions SET reaper_host = NULL, reaper_pid = NULL, reaper_start = NULL,"
                    " claimed_at = NULL, attempts = attempts + 1, last_error = ? WHERE session_id = ?",
                    items,
                )

        if items:
            await self._run("release", write, None)

    # -- forgetting -------------------------------------------------------------------------------

    async def forget(self, session_ids: Iterable[str]) -> None:
        """Remove entries: their sessions were deleted, or the API says they are gone (409, 404)."""
        ids = list(session_ids)

        def write() -> None:
            with self._write() as db:
                for chunk in _chunks(ids):
                    marks = ", ".join("?" * len(chunk))
                    db.execute(f"DELETE FROM sessions WHERE session_id IN ({marks})", chunk)

        if ids:
            await self._run("forget", write, None)

    async def forget_owner_closed(self) -> int:
        """Housekeeping: drop entries nobody will ever reap. Returns how many went.

        Those are closed entries (whoever owns them), persisted entries whose owner is gone
        (nobody will delete them), and entries whose TTL has passed (expired by the API).
        """

        def write() -> int:
            now = time.time()
            judge = Judge()
            with self._write() as db:
                rows = db.execute(
                    "SELECT session_id, closed, persist, created_at, ttl_seconds, owner_pid, owner_start,"
                    " owner_host FROM sessions"
                ).fetchall()
                doomed = [
                    row["session_id"]
                    for row in rows
                    if row["closed"]
                    or self._is_expired(row["created_at"], row["ttl_seconds"], now)
                    or (
                        row["persist"]
                        and judge(ProcessIdentity(row["owner_pid"], row["owner_start"], row["owner_host"]))
                        is Liveness.DEAD
                    )
                ]
                for chunk in _chunks(doomed):
                    marks = ", ".join("?" * len(chunk))
                    db.execute(f"DELETE FROM sessions WHERE session_id IN ({marks})", chunk)
            return len(doomed)

        return await self._run("forget_owner_closed", write, 0)

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> SessionJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock; the file itself is fine."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (5, 6)


def _is_damage(exc: sqlite3.Error | OSError) -> bool:
    """Whether the file itself is at fault (not a database, corrupt, unreadable by us), so that setting
    it aside helps, rather than a passing condition (locked, disk full) that a rename would not fix."""
    if isinstance(exc, OSError):
        return isinstance(exc, PermissionError | IsADirectoryError)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in _SQLITE_DAMAGE_CODES
