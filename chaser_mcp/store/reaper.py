"""Reaping: delete the sessions of owners that died, once, whichever server finds them first.

On start-up and every few minutes a server reaps: entries whose owning process is gone (killed,
OOM, power cut) and that are neither persisted nor closed are claimed atomically, deleted through
the API with the client held for their key fingerprint and base URL, and then forgotten. What
could not be deleted is released for the next reap; entries of keys this process does not hold are
left for one that does, unless ``open_key`` can open the key sealed with the entry (replicas that
share a secret, ``store/sealing.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

import anyio

from .deletes import DeleteOutcome, SessionDeleter, delete_sessions
from .ownership import JournalEntry, OwnershipStore, account_url

__all__ = ["KeyOpener", "ReapReport", "reap_orphans", "reap_periodically"]

# The client to delete an entry's session with, from the key sealed with it (None: none there).
KeyOpener = Callable[[JournalEntry], Awaitable[SessionDeleter | None]]

log = logging.getLogger("chaser_mcp.store.reaper")


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
    open_key: KeyOpener | None = None,
) -> ReapReport:
    """Delete the open, non-persisted sessions of dead owners, then forget their entries.

    Each entry is deleted with the client held for its key fingerprint and base URL; entries of
    other keys are left (and reported) for a process that holds one. Deletes run concurrently,
    at most ``concurrency`` at a time, all within ``timeout``; failures are released for a later
    reap. The journal writes at the end are shielded, so a cancelled reap still records them.
    """
    started = time.monotonic()
    accounts = {
        (key_id, account_url(client.base_url)): client for key_id, client in clients_by_key_id.items()
    }
    await journal.forget_owner_closed()
    orphans = await journal.orphans()
    if open_key is not None:
        for entry in orphans:
            if (entry.key_id, entry.base_url) not in accounts and (client := await open_key(entry)):
                accounts[(entry.key_id, entry.base_url)] = client
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
    open_key: KeyOpener | None = None,
) -> NoReturn:
    """Reap now, then every ``interval`` seconds, until cancelled.

    ``clients_by_key_id`` is read afresh each time, so a live mapping (keys callers bring over HTTP)
    lets later passes reap for keys that arrived after start-up.
    """
    while True:
        try:
            await reap_orphans(journal, clients_by_key_id, timeout=timeout, open_key=open_key)
        except Exception:  # one bad pass must not end the loop that protects against leaks
            log.exception("reaping orphaned sessions failed")
        await anyio.sleep(interval)
