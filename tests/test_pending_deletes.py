"""Pending deletes: a session cleanup could not delete is retried until it is gone, closed or expired.

The worker runs in-process against the loopback fake API over real sockets, with a real
``ChaserClient`` (fast backoffs) and, where it matters, a real SQLite journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from chaser_mcp.api import ChaserClient
from chaser_mcp.conversations import Conversations
from chaser_mcp.store import SessionJournal
from chaser_mcp.store.deletes import PendingDeletes, delete_sessions
from tests.fake_chaser import DEFAULT_KEY, FakeChaser, Status
from tests.mcp_support import wait_until

pytestmark = pytest.mark.anyio

SESSION_PATH = r"/v1/sessions/[^/]+"
LATER = 3600.0  # an expiry far enough away that it never matters


def in_an_hour() -> float:
    return time.time() + LATER


@asynccontextmanager
async def running(pending: PendingDeletes) -> AsyncIterator[PendingDeletes]:
    """The worker running in a task group for the duration of the block."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(pending.run)
        yield pending
        tg.cancel_scope.cancel()


def fast_pending(
    *, store: SessionJournal | None = None, backoff_base: float = 0.02, backoff_max: float = 0.1
) -> PendingDeletes:
    """Backoffs of tens of milliseconds, so retries show within a test's patience."""
    return PendingDeletes(
        store=store, attempt_timeout=5.0, backoff_base=backoff_base, backoff_max=backoff_max
    )


def attempts(pending: PendingDeletes, session_id: str) -> int:
    item = pending.get(session_id)
    return item.attempts if item is not None else -1


async def test_a_pending_delete_is_retried_until_the_api_deletes_it(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    session_id = fake_chaser.seed_session()
    # Three rounds' worth of 500s (each round is four tries by the client), then the API recovers.
    fake_chaser.inject(Status(500), method="DELETE", times=12)

    async with running(fast_pending()) as pending:
        await pending.add(session_id, chaser_client, expires_at=in_an_hour(), reason="HTTP 500")
        await wait_until(lambda: session_id in fake_chaser.deleted_ids(), timeout=15, what="the delete")
        await wait_until(lambda: len(pending) == 0, what="the pending delete to settle")

    assert fake_chaser.count("DELETE") == 13
    assert fake_chaser.open_sessions() == []


async def test_a_pending_delete_ends_when_the_api_says_the_session_is_already_closed(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    session_id = fake_chaser.seed_session()
    await chaser_client.delete_session(session_id)  # closed behind its back: the worker gets a 409

    async with running(fast_pending()) as pending:
        await pending.add(session_id, chaser_client, expires_at=in_an_hour(), reason="HTTP 500")
        await wait_until(lambda: len(pending) == 0, what="the pending delete to settle")

    assert fake_chaser.count("DELETE") == 2


async def test_a_pending_delete_of_a_session_the_api_does_not_know_ends_on_404(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    async with running(fast_pending()) as pending:
        await pending.add("sess_unknown", chaser_client, expires_at=in_an_hour(), reason="HTTP 500")
        await wait_until(lambda: len(pending) == 0, what="the pending delete to settle")

    assert fake_chaser.count("DELETE") == 1


async def test_a_pending_delete_is_given_up_once_its_ttl_has_passed(
    fake_chaser: FakeChaser, chaser_client: ChaserClient, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(500), method="DELETE", times=None)

    async with running(fast_pending()) as pending:
        await pending.add(session_id, chaser_client, expires_at=time.time() + 1.0, reason="HTTP 500")
        await wait_until(lambda: len(pending) == 0, timeout=15, what="the TTL to end the retries")
        tried = fake_chaser.count("DELETE")
        await anyio.sleep(0.3)  # several backoff periods: nothing may be tried any more

    assert tried >= 4 and fake_chaser.count("DELETE") == tried
    assert f"gave up deleting {session_id}" in caplog.text and "TTL has passed" in caplog.text


async def test_an_unexpected_exception_from_one_delete_neither_stops_the_others_nor_the_worker(
    fake_chaser: FakeChaser, chaser_client: ChaserClient, caplog: pytest.LogCaptureFixture
) -> None:
    healthy, broken = fake_chaser.seed_session(), fake_chaser.seed_session()
    closed = ChaserClient(DEFAULT_KEY, base_url=fake_chaser.url)
    await closed.list_sessions()
    await closed.aclose()  # a closed client raises RuntimeError, not a ChaserError

    caplog.set_level(logging.ERROR, "chaser_mcp.store.deletes")
    async with running(fast_pending()) as pending:
        await pending.add(broken, closed, expires_at=in_an_hour(), reason="first try failed")
        await pending.add(healthy, chaser_client, expires_at=in_an_hour(), reason="first try failed")
        await wait_until(lambda: healthy in fake_chaser.deleted_ids(), what="the healthy delete")
        await wait_until(lambda: pending.ids() == [broken] and attempts(pending, broken) >= 3, what="retries")
        late = fake_chaser.seed_session()
        await pending.add(late, chaser_client, expires_at=in_an_hour(), reason="first try failed")
        await wait_until(lambda: late in fake_chaser.deleted_ids(), what="a later delete")

    [traced] = [r for r in caplog.records if r.exc_info and broken in r.getMessage()]  # once, not per try
    assert traced.exc_info is not None and traced.exc_info[0] is RuntimeError


async def test_the_journal_marks_a_pending_delete_and_closes_it_once_deleted(
    tmp_path: Path, fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(500), method="DELETE", times=8)
    with SessionJournal(tmp_path / "journal.sqlite3") as journal:
        await journal.record_created(
            session_id, conversation_id="c1", persist=False, key_id="0" * 16, base_url=fake_chaser.url
        )
        pending = fast_pending(store=journal, backoff_base=0.5, backoff_max=0.5)
        await pending.add(session_id, chaser_client, expires_at=in_an_hour(), reason="HTTP 500")
        [entry] = await journal.entries()
        assert entry.pending and not entry.closed and entry.last_error == "HTTP 500"

        async with running(pending):
            await wait_until(lambda: session_id in fake_chaser.deleted_ids(), timeout=15, what="the delete")
            await wait_until(lambda: len(pending) == 0, what="the pending delete to settle")

        [entry] = await journal.entries()
        assert entry.closed


async def test_a_last_drain_stops_the_worker_and_tries_what_is_left(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    session_id = fake_chaser.seed_session()
    pending = fast_pending(backoff_base=60, backoff_max=60)  # the worker alone would wait a minute
    fake_chaser.inject(Status(500), method="DELETE", times=4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pending.run)
        await pending.add(session_id, chaser_client, expires_at=in_an_hour(), reason="HTTP 500")
        await wait_until(lambda: fake_chaser.count("DELETE") == 4, what="the worker's first round")
        await wait_until(lambda: attempts(pending, session_id) == 1, what="the round to settle")

        left = await pending.drain(5.0)
        # drain() stopped the worker: the task group ends without being cancelled

    assert left == [] and fake_chaser.deleted_ids() == [session_id]


async def test_deleting_many_at_once_reports_each_outcome_without_raising(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    deleted, closed = fake_chaser.seed_session(), fake_chaser.seed_session()
    await chaser_client.delete_session(closed)
    failing = fake_chaser.seed_session()
    fake_chaser.inject(Status(500), method="DELETE", path=f"/v1/sessions/{failing}", times=None)

    outcome = await delete_sessions(
        [
            (deleted, chaser_client),
            (closed, chaser_client),
            (failing, chaser_client),
            ("not an id", chaser_client),
        ],
        timeout=10,
    )

    assert outcome.deleted == (deleted,) and outcome.already_closed == (closed,)
    assert [sid for sid, _ in outcome.failed] == [failing, "not an id"]
    assert "HTTP 500" in dict(outcome.failed)[failing]


async def test_a_conversation_whose_cleanup_fails_hands_its_session_to_the_pending_deletes(
    fake_chaser: FakeChaser, chaser_client: ChaserClient
) -> None:
    conversations = Conversations(cleanup_timeout=5.0, pending=fast_pending())
    conversation = conversations.open("c1", chaser_client)
    session = await chaser_client.create_session()
    await conversations.record_created(conversation, session.id, persist=False, ttl_seconds=600)
    fake_chaser.inject(Status(500), method="DELETE", times=4)  # exactly the cleanup's four tries

    report = await conversations.end("c1", "test")

    assert report is not None and [sid for sid, _ in report.failed] == [session.id]
    assert conversations.pending.ids() == [session.id]
    async with running(conversations.pending):
        await wait_until(lambda: session.id in fake_chaser.deleted_ids(), what="the retried delete")
