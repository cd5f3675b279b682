"""Keeping track of owned sessions across failures, and deleting them.

``deletes`` is the one bounded, concurrent delete routine and the worker that retries what it
could not do; ``journal`` is the crash journal (a SQLite file, schema in ``schema``) behind the
``OwnershipStore`` protocol (``ownership``); ``process`` tells whether an entry's owner still
runs; ``reaper`` deletes what dead owners left behind.
"""

from .deletes import DeleteOutcome, PendingDeletes, delete_sessions
from .journal import SessionJournal, default_journal_path
from .ownership import MAX_SESSION_SECONDS, OwnershipStore, SharedOwnership, StoreUnavailable
from .reaper import reap_orphans, reap_periodically

__all__ = [
    "MAX_SESSION_SECONDS",
    "DeleteOutcome",
    "OwnershipStore",
    "PendingDeletes",
    "SessionJournal",
    "SharedOwnership",
    "StoreUnavailable",
    "default_journal_path",
    "delete_sessions",
    "reap_orphans",
    "reap_periodically",
]
