"""A crash journal of owned sessions, so no paid session outlives a server killed with -9.

Cleanup at the end of a conversation (``conversations.py``) only runs while the server
process does. So every owned session is also written here the moment it is created, and
marked when it closes. On start-up and every few minutes a server *reaps*: entries whose
owning process is gone (killed, OOM, power cut) and that are neither persisted nor closed
are deleted through the API and then forgotten.

One small SQLite file is shared by every server process of the user (Claude Desktop and
an IDE each run their own stdio server): WAL mode so readers never block, a busy timeout
and short ``BEGIN IMMEDIATE`` transactions so writers queue instead of failing, and an
atomic *claim* so two processes reaping at once never delete the same session twice.

An owner is a pid *and* that process's start time (Linux: field 22 of ``/proc/<pid>/stat``
plus the boot id), so a recycled pid is not mistaken for the owner and a reboot makes
every older owner dead. Elsewhere liveness falls back to the pid alone. Owners are also
scoped to a machine and pid namespace: an entry written on another host or container (a
journal on a shared home directory) is never judged, since its pid means nothing here.

No API key is ever stored: entries carry ``key_id``, a fingerprint (``key_fingerprint``),
and a reaper deletes an entry only with a client it holds for that fingerprint and base URL.

The public methods are ``async``: each runs one short SQLite call in a worker thread
(``anyio.to_thread``), because a commit waits for an fsync (``synchronous=FULL``: the
entry must survive the power cut it exists for) and may wait on another process's lock.
The ``OwnershipStore`` protocol they implement is async for the same reason, so a shared
store for several replicas (a network database) can replace this one later.

The journal is a safety net, never a reason for a tool call to fail: a journal that
cannot be written logs a warning and the call goes on; a corrupted file is set aside
and a fresh one started; a journal that cannot be opened at all is replaced by an
in-memory one (``durable`` is then False).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import anyio
import platformdirs
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from .deletes import DeleteOutcome, SessionDeleter, delete_sessions

log = logging.getLogger("chaser_mcp.store.journal")

T = TypeVar("T")

SCHEMA_VERSION = 2
MAX_SESSION_SECONDS = 3600  # the API's ttl ceiling: no session lives longer than this
DEFAULT_MAX_AGE = MAX_SESSION_SECONDS + 600.0  # plus a margin for clock drift
TTL_MARGIN = 60.0  # an entry is expired this long after created_at + ttl_seconds
DEFAULT_LEASE = 120.0
DEFAULT_BUSY_TIMEOUT = 5.0
_LINUX = sys.platform.startswith("linux")
_KEY_ID = re.compile(r"[0-9a-f]{8,64}")
# SQLITE_PERM, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB: the file is at fault
_SQLITE_DAMAGE_CODES = frozenset({3, 8, 11, 14, 26})
_MAX_PARAMS = 500  # below SQLite's oldest bound-parameter limit (999)

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_AGE",
    "JournalEntry",
    "Liveness",
    "OwnershipStore",
    "ProcessIdentity",
    "ReapReport",
    "SessionDeleter",
    "SessionJournal",
    "default_journal_path",
    "liveness",
    "reap_orphans",
    "reap_periodically",
]


def default_journal_path() -> Path:
    """``sessions.sqlite3`` in the user's state directory (``~/.local/state/chaser-mcp`` on Linux)."""
    return platformdirs.user_state_path("chaser-mcp", appauthor=False) / "sessions.sqlite3"


def _normalize_url(base_url: str) -> str:
    return base_url.rstrip("/")


# -- process identity -----------------------------------------------------------------------------


@functools.cache
def _boot_id() -> str:
    """This boot of the machine ('' where unknown): start times are only comparable within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@functools.cache
def _host_scope() -> str:
    """Where a pid means something: this machine and (Linux) this pid namespace, hashed.

    The machine id is hashed rather than stored, as machine-id(5) asks of anything that keeps it.
    """
    parts = ["chaser-mcp journal"]
    machine = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            machine = Path(candidate).read_text().strip()
        if machine:
            break
    parts.append(machine or socket.gethostname())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process; None if there is none.

    Raises OSError when /proc cannot tell (not mounted, hidden), so callers fall back to the pid.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        rest = raw[raw.rindex(b")") + 2 :].split()
        return rest[0].decode(), rest[19].decode()  # fields 3 (state) and 22 (starttime)
    except (ValueError, IndexError) as exc:
        raise OSError(f"unreadable /proc/{pid}/stat") from exc


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists; when unsure, True (never reap a possibly live owner)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists, it is not ours
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    else:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # PermissionError: it exists under another user
            return True
        return True


def _start_of(pid: int) -> str | None:
    """``"<boot id>:<start ticks>"`` of a running Linux process, None where unknown."""
    if not _LINUX:
        return None
    try:
        stat = _proc_stat(pid)
    except OSError:
        return None
    return f"{_boot_id()}:{stat[1]}" if stat is not None else None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process, told apart from any later one that reuses its pid.

    ``start`` is None where start times are unknown (then only the pid is checked); ``host`` is
    the hashed machine and pid-namespace scope the pid belongs to.
    """

    pid: int
    start: str | None
    host: str

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(pid, _start_of(pid), _host_scope())


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    FOREIGN = "foreign"  # another host or pid namespace: cannot be judged from here


def liveness(process: ProcessIdentity) -> Liveness:
    """Whether ``process`` still runs: its pid exists *and* (where known) started when it did."""
    if process.host != _host_scope():
        return Liveness.FOREIGN
    if process.pid <= 0:
        return Liveness.DEAD
    if _LINUX and process.start is not None:
        boot, _, ticks = process.start.rpartition(":")
        if boot != _boot_id():
            return Liveness.DEAD  # the machine rebooted since
        try:
            stat = _proc_stat(process.pid)
        except OSError:
            return Liveness.ALIVE if _pid_alive(process.pid) else Liveness.DEAD
        if stat is None:
            return Liveness.DEAD
        state, started = stat
        if state in ("Z", "X", "x") or started != ticks:  # a zombie, or a recycled pid
            return Liveness.DEAD
        return Liveness.ALIVE
    return Liveness.ALIVE if _pid_alive(process.pid) else Liveness.DEAD


class _Judge:
    """Liveness with a cache, for one pass over many entries of few owners."""

    def __init__(self) -> None:
        self._seen: dict[ProcessIdentity, Liveness] = {}

    def __call__(self, process: ProcessIdentity) -> Liveness:
        found = self._seen.get(process)
        if found is None:
            found = self._seen[process] = liveness(process)
        return found


# -- entries and the store protocol ---------------------------------------------------------------


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


# -- the SQLite journal ---------------------------------------------------------------------------

_COLUMNS = (
    "session_id, conversation_id, key_id, base_url, persist, closed, "
    "owner_host, owner_pid, owner_start, created_at, attempts, last_error, "
    "reaper_host, reaper_pid, reaper_start, claimed_at, ttl_seconds, pending_since"
)

_SCHEMA_V1 = (
    """
    CREATE TABLE IF NOT EXISTS sessions (
        session_id      TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        key_id          TEXT NOT NULL,
        base_url        TEXT NOT NULL,
        persist         INTEGER NOT NULL DEFAULT 0,
        closed          INTEGER NOT NULL DEFAULT 0,
        owner_host      TEXT NOT NULL,
        owner_pid       INTEGER NOT NULL,
        owner_start     TEXT,
        created_at      REAL NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        reaper_host     TEXT,
        reaper_pid      INTEGER,
        reaper_start    TEXT,
        claimed_at      REAL
    )
    """,
)


_MIGRATE_TO_V2 = (
    "ALTER TABLE sessions ADD COLUMN ttl_seconds INTEGER",
    "ALTER TABLE sessions ADD COLUMN pending_since REAL",
)


class _NewerSchema(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"journal schema version {version} is newer than this server's {SCHEMA_VERSION}")


def _entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        session_id=row["session_id"],
        conversation_id=row["conversation_id"],
        key_id=row["key_id"],
        base_url=row["base_url"],
        persist=bool(row["persist"]),
        closed=bool(row["closed"]),
        owner=ProcessIdentity(row["owner_pid"], row["owner_start"], row["owner_host"]),
        created_at=row["created_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        ttl_seconds=row["ttl_seconds"],
        pending_since=row["pending_since"],
    )


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
        except _NewerSchema as exc:
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
        except (sqlite3.Error, OSError, _NewerSchema) as exc:
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
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # two processes starting at once migrate one after the other
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _NewerSchema(version)
            if version < 1:
                for statement in _SCHEMA_V1:
                    conn.execute(statement)
            if version < 2:
                for statement in _MIGRATE_TO_V2:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
        self._migrate(conn)
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
        row: tuple[object, ...] = (session_id, conversation_id, key_id, _normalize_url(base_url))
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
                rows = self._conn.execute(f"SELECT {_COLUMNS} FROM sessions ORDER BY created_at").fetchall()
            return [_entry(row) for row in rows]

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
                    f"SELECT {_COLUMNS} FROM sessions WHERE closed = 0 AND persist = 0 ORDER BY created_at"
                ).fetchall()
            judge = _Judge()
            entries = (_entry(row) for row in rows)
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
        wanted = {(key_id, _normalize_url(url)) for key_id, url in accounts} if accounts is not None else None
        me = self._me

        def claim() -> list[JournalEntry]:
            now = time.time()
            judge = _Judge()
            chosen: list[JournalEntry] = []
            with self._write() as db:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM sessions WHERE closed = 0 AND persist = 0 ORDER BY created_at"
                ).fetchall()
                for row in rows:
                    entry = _entry(row)
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
            judge = _Judge()
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


# -- reaping --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReapReport:
    deleted: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()  # 409 session_not_open or 404 session_not_found
    failed: tuple[tuple[str, str], ...] = ()  # kept for the next reap
    unheld: tuple[str, ...] = ()  # orphans of keys this process does not hold, left for one that does
    pending: int = 0  # of those claimed, how many an exited server had failed to delete at cleanup
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def empty(self) -> bool:
        return not (self.deleted or self.already_closed or self.failed or self.unheld)

    def summary(self) -> str:
        text = (
            f"orphaned sessions reaped in {self.seconds:.2f} s: {len(self.deleted)} deleted, "
            f"{len(self.already_closed)} already closed, {len(self.failed)} failed (kept for retry), "
            f"{len(self.unheld)} left for another API key"
        )
        if self.pending:
            text += f" ({self.pending} were pending deletes of a server that has exited)"
        if self.failed:
            text += " - failed: " + ", ".join(f"{sid} ({why})" for sid, why in self.failed)
        return text


async def reap_orphans(
    journal: OwnershipStore,
    clients_by_key_id: Mapping[str, SessionDeleter],
    *,
    timeout: float = 10.0,
    concurrency: int = 8,
) -> ReapReport:
    """Delete the open, non-persisted sessions of dead owners, then forget their entries.

    Each entry is deleted with the client held for its key fingerprint and base URL; entries of
    other keys are left (and reported) for a process that holds one. Deletes run concurrently,
    at most ``concurrency`` at a time, all within ``timeout``; failures are released for a later
    reap. The journal writes at the end are shielded, so a cancelled reap still records them.
    """
    started = time.monotonic()
    accounts = {
        (key_id, _normalize_url(client.base_url)): client for key_id, client in clients_by_key_id.items()
    }
    await journal.forget_owner_closed()
    orphans = await journal.orphans()
    unheld = tuple(sorted(e.session_id for e in orphans if (e.key_id, e.base_url) not in accounts))
    claimed = await journal.claim_orphans(accounts=list(accounts)) if accounts else []
    pending = sum(1 for e in claimed if e.pending)
    # Released unless the deletes below finish: a cancelled reap leaves every claim for the next one.
    failed = {e.session_id: f"not finished within {timeout:g} s" for e in claimed}
    outcome = DeleteOutcome()
    try:
        outcome = await delete_sessions(
            [(e.session_id, accounts[(e.key_id, e.base_url)]) for e in claimed],
            timeout=timeout,
            concurrency=concurrency,
        )
        failed = dict(outcome.failed)
    finally:
        with anyio.CancelScope(shield=True):
            await journal.forget(outcome.done)
            await journal.release(failed)
    for session_id, exc in outcome.unexpected:
        log.error("reaping %s failed unexpectedly; it stays journaled", session_id, exc_info=exc)
    deleted, already_closed = outcome.deleted, outcome.already_closed

    report = ReapReport(
        deleted=deleted,
        already_closed=already_closed,
        failed=tuple(sorted(failed.items())),
        unheld=unheld,
        pending=pending,
        seconds=time.monotonic() - started,
    )
    if report.failed:
        log.warning("%s", report.summary())
    elif not report.empty:
        log.info("%s", report.summary())
    else:
        log.debug("%s", report.summary())
    return report


async def reap_periodically(
    journal: OwnershipStore,
    clients_by_key_id: Mapping[str, SessionDeleter],
    *,
    interval: float = 300.0,
    timeout: float = 10.0,
) -> NoReturn:
    """Reap now, then every ``interval`` seconds, until cancelled.

    ``clients_by_key_id`` is read afresh each time, so a live mapping (keys callers bring over HTTP)
    lets later passes reap for keys that arrived after start-up.
    """
    while True:
        try:
            await reap_orphans(journal, clients_by_key_id, timeout=timeout)
        except Exception:  # one bad pass must not end the loop that protects against leaks
            log.exception("reaping orphaned sessions failed")
        await anyio.sleep(interval)
