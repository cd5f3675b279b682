"""The journal's one table, its versions, and how a row becomes a ``JournalEntry``.

``PRAGMA user_version`` holds the schema version. A server migrates an older file in place
(inside ``BEGIN IMMEDIATE``, so two starting at once migrate one after the other) and leaves
a newer one alone: ``NewerSchema`` tells the journal to fall back to memory instead.
"""

from __future__ import annotations

import sqlite3

from .ownership import JournalEntry
from .process import ProcessIdentity

__all__ = ["COLUMNS", "SCHEMA_V1", "SCHEMA_VERSION", "NewerSchema", "entry_of", "migrate"]

SCHEMA_VERSION = 2

COLUMNS = (
    "session_id, conversation_id, key_id, base_url, persist, closed, "
    "owner_host, owner_pid, owner_start, created_at, attempts, last_error, "
    "reaper_host, reaper_pid, reaper_start, claimed_at, ttl_seconds, pending_since"
)

SCHEMA_V1 = (
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


class NewerSchema(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"journal schema version {version} is newer than this server's {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to ``SCHEMA_VERSION``; raise ``NewerSchema`` rather than touch a newer one."""
    conn.execute("BEGIN IMMEDIATE")  # two processes starting at once migrate one after the other
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise NewerSchema(version)
        if version < 1:
            for statement in SCHEMA_V1:
                conn.execute(statement)
        if version < 2:
            for statement in _MIGRATE_TO_V2:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def entry_of(row: sqlite3.Row) -> JournalEntry:
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
