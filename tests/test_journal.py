"""The crash journal on real SQLite files, with real processes as live and dead owners.

Owners write their entries from inside their own process (``CHILD`` below imports the module), so
the pid and start-time checks run against real /proc entries; reaping runs over real sockets
against the loopback fake API, and what it deleted is counted there.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from chaser_mcp._ids import key_fingerprint
from chaser_mcp.api import ChaserClient
from chaser_mcp.store import SessionJournal, reap_orphans, reap_periodically
from chaser_mcp.store.ownership import JournalEntry
from chaser_mcp.store.process import ProcessIdentity
from chaser_mcp.store.schema import SCHEMA_V1, SCHEMA_VERSION
from tests.fake_chaser import DEFAULT_KEY, FakeChaser, Hang, Status

pytestmark = pytest.mark.anyio

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="start times come from /proc")

KEY_ID = key_fingerprint(DEFAULT_KEY)
BASE = "http://127.0.0.1:9"  # journal-only tests never talk to it
UNKNOWN_ID = "sess_00000000-0000-7000-8000-000000000000"

# Runs as its own process: "record" writes entries as their owner, then exits or stays alive until
# stdin closes; "claim" waits for a line on stdin, claims orphans in small batches until none are
# left, prints what it got and stays alive (a live reaper) until stdin closes.
CHILD = r"""
import json, sys
import anyio
from chaser_mcp.store import SessionJournal

async def record(path, key_id, base_url, ids):
    journal = SessionJournal(path)
    for session_id in ids:
        await journal.record_created(
            session_id, conversation_id="stdio", persist=False, key_id=key_id, base_url=base_url
        )
    await journal.aclose()

async def claim(path, limit):
    journal = SessionJournal(path)
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while batch := await journal.claim_orphans(limit=limit):
        claimed += [entry.session_id for entry in batch]
    await journal.aclose()
    print(json.dumps(claimed), flush=True)

command, path, *rest = sys.argv[1:]
if command == "record":
    stay, key_id, base_url, *ids = rest
    anyio.run(record, path, key_id, base_url, ids)
    print("recorded", flush=True)
    if stay == "stay":
        sys.stdin.read()
else:
    anyio.run(claim, path, int(rest[0]))
    sys.stdin.read()
"""


class Child:
    """A child process running ``CHILD``, with its stdout lines read by a thread (bounded waits)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float = 30.0) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"child {self.proc.pid} printed nothing within {timeout:g} s")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Close stdin (the child exits by itself), kill it if it does not, and reap it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def record_in_dead_process(path: Path, ids: list[str], *, key_id: str = KEY_ID, base_url: str = BASE) -> None:
    """Record ``ids`` from a process that then exits (and is reaped): a dead owner."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "record", str(path), "exit", key_id, base_url, *ids],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "recorded", proc.stderr


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sessions.sqlite3"


@pytest.fixture
def journal(path: Path) -> Iterator[SessionJournal]:
    with SessionJournal(path) as journal:
        yield journal


@pytest.fixture
def live_owner(path: Path) -> Iterator[Child]:
    """A running process that recorded ``sess_live`` and stays alive for the whole test."""
    child = Child("record", str(path), "stay", KEY_ID, BASE, "sess_live")
    try:
        assert child.readline() == "recorded"
        yield child
    finally:
        child.stop()


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def ids_of(entries: list[JournalEntry]) -> list[str]:
    return sorted(entry.session_id for entry in entries)


async def record_as(journal_path: Path, owner: ProcessIdentity, session_id: str) -> None:
    with SessionJournal(journal_path, owner=owner) as writer:
        await writer.record_created(
            session_id, conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE
        )


# -- who is an orphan -----------------------------------------------------------------------------


async def test_entries_of_a_process_that_has_exited_are_orphans(path: Path, journal: SessionJournal) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_a", "sess_b"])

    assert ids_of(await journal.orphans()) == ["sess_a", "sess_b"]


async def test_entries_of_a_running_process_are_not_orphans(
    journal: SessionJournal, live_owner: Child
) -> None:
    [entry] = await journal.entries()

    assert entry.session_id == "sess_live" and entry.owner.pid == live_owner.pid
    assert await journal.orphans() == []


async def test_entries_of_this_process_are_not_orphans(journal: SessionJournal) -> None:
    await journal.record_created(
        "sess_mine", conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE
    )

    assert await journal.orphans() == []


@linux_only
async def test_a_running_pid_with_another_start_time_is_a_dead_owner(
    path: Path, journal: SessionJournal
) -> None:
    me = ProcessIdentity.current()
    assert me.start is not None
    boot, _, ticks = me.start.rpartition(":")
    recycled = replace(me, start=f"{boot}:{int(ticks) + 1}")  # our pid, but not our process

    await record_as(path, recycled, "sess_recycled")

    assert ids_of(await journal.orphans()) == ["sess_recycled"]


@linux_only
async def test_an_owner_from_a_previous_boot_is_dead_even_if_its_pid_and_ticks_match(
    path: Path, journal: SessionJournal
) -> None:
    me = ProcessIdentity.current()
    assert me.start is not None
    _, _, ticks = me.start.rpartition(":")

    await record_as(path, replace(me, start=f"an-earlier-boot:{ticks}"), "sess_before_reboot")

    assert ids_of(await journal.orphans()) == ["sess_before_reboot"]


@linux_only
async def test_an_owner_is_recorded_by_the_kernels_start_ticks_as_every_earlier_version_wrote_them(
    journal: SessionJournal, live_owner: Child
) -> None:
    # Servers of different versions share one journal: the start time must stay field 22 of
    # /proc/<pid>/stat (ticks since boot, never moved by a clock change), not wall-clock seconds.
    raw = await anyio.Path(f"/proc/{live_owner.pid}/stat").read_bytes()
    ticks = raw[raw.rindex(b")") + 2 :].split()[19].decode()
    boot = (await anyio.Path("/proc/sys/kernel/random/boot_id").read_text()).strip()

    [entry] = await journal.entries()

    assert entry.owner.start == f"{boot}:{ticks}"


async def test_without_a_start_time_liveness_falls_back_to_the_pid(
    path: Path, journal: SessionJournal
) -> None:
    here = ProcessIdentity.current().host
    await record_as(path, ProcessIdentity(os.getpid(), None, here), "sess_pid_alive")
    await record_as(path, ProcessIdentity(dead_pid(), None, here), "sess_pid_gone")

    assert ids_of(await journal.orphans()) == ["sess_pid_gone"]


async def test_entries_written_on_another_host_are_never_orphans(path: Path, journal: SessionJournal) -> None:
    await record_as(path, ProcessIdentity(dead_pid(), None, "another-host"), "sess_elsewhere")

    assert await journal.orphans() == []


async def test_persisted_entries_of_a_dead_owner_are_not_orphans(path: Path, journal: SessionJournal) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_keep", "sess_drop"])

    await journal.record_persist("sess_keep", True)

    assert ids_of(await journal.orphans()) == ["sess_drop"]


async def test_closed_entries_of_a_dead_owner_are_not_orphans(path: Path, journal: SessionJournal) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_closed", "sess_open"])

    await journal.record_closed("sess_closed")

    assert ids_of(await journal.orphans()) == ["sess_open"]


async def test_entries_older_than_the_longest_session_are_not_orphans(path: Path) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_ancient"])

    with SessionJournal(path, max_age=0.0) as journal:
        assert await journal.orphans() == []


# -- claiming -------------------------------------------------------------------------------------


async def test_concurrent_claimers_in_separate_processes_never_claim_the_same_entry(path: Path) -> None:
    all_ids = [f"sess_{n:03d}" for n in range(150)]
    await anyio.to_thread.run_sync(record_in_dead_process, path, all_ids)
    claimers = [Child("claim", str(path), "3") for _ in range(3)]
    try:
        for claimer in claimers:
            assert claimer.readline() == "ready"
        for claimer in claimers:
            claimer.send("go\n")
        claims = [json.loads(claimer.readline()) for claimer in claimers]
    finally:
        for claimer in claimers:
            claimer.stop()

    every_claim = [session_id for claim in claims for session_id in claim]
    assert len(every_claim) == len(set(every_claim)), "an entry was claimed twice"
    assert sorted(every_claim) == all_ids


async def test_an_entry_claimed_by_a_live_reaper_is_not_claimed_again(path: Path) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_a"])

    with SessionJournal(path) as first, SessionJournal(path) as second:
        assert ids_of(await first.claim_orphans()) == ["sess_a"]
        assert await second.claim_orphans() == []


async def test_a_claim_whose_lease_ran_out_can_be_taken_over(path: Path) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_a"])

    with SessionJournal(path) as first, SessionJournal(path, lease=0.0) as second:
        assert ids_of(await first.claim_orphans()) == ["sess_a"]
        assert ids_of(await second.claim_orphans()) == ["sess_a"]


async def test_entries_claimed_by_a_reaper_that_died_can_be_claimed(
    path: Path, journal: SessionJournal
) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_a", "sess_b"])
    reaper = Child("claim", str(path), "10")
    try:
        assert reaper.readline() == "ready"
        reaper.send("go\n")
        assert sorted(json.loads(reaper.readline())) == ["sess_a", "sess_b"]
        assert await journal.claim_orphans() == []  # held by a live reaper
    finally:
        reaper.stop()

    assert ids_of(await journal.claim_orphans()) == ["sess_a", "sess_b"]


async def test_claims_are_limited_to_the_accounts_asked_for(path: Path, journal: SessionJournal) -> None:
    other = key_fingerprint("ck_test_someone_else")
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_mine"])
    await anyio.to_thread.run_sync(lambda: record_in_dead_process(path, ["sess_theirs"], key_id=other))

    claimed = await journal.claim_orphans(accounts=[(KEY_ID, BASE + "/")])

    assert ids_of(claimed) == ["sess_mine"]


# -- housekeeping ---------------------------------------------------------------------------------


async def test_forget_owner_closed_drops_closed_entries_and_persisted_ones_of_dead_owners(
    path: Path, journal: SessionJournal, live_owner: Child
) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_closed", "sess_kept", "sess_orphan"])
    await journal.record_closed("sess_closed")
    await journal.record_persist("sess_kept", True)
    await journal.record_persist("sess_live", True)  # a live owner may still change its mind

    assert await journal.forget_owner_closed() == 2
    assert ids_of(await journal.entries()) == ["sess_live", "sess_orphan"]


async def test_forget_owner_closed_drops_entries_older_than_the_longest_session(path: Path) -> None:
    await anyio.to_thread.run_sync(record_in_dead_process, path, ["sess_ancient"])

    with SessionJournal(path, max_age=0.0) as journal:
        assert await journal.forget_owner_closed() == 1
        assert await journal.entries() == []


# -- the file -------------------------------------------------------------------------------------


async def test_the_journal_directory_and_files_are_private(path: Path, journal: SessionJournal) -> None:
    await journal.record_created("sess_a", conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE)

    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name


def test_an_existing_journal_with_loose_permissions_is_made_private(path: Path) -> None:
    path.parent.mkdir(parents=True)
    SessionJournal(path).close()
    path.chmod(0o644)

    SessionJournal(path).close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_corrupted_journal_is_set_aside_and_a_fresh_one_works(path: Path) -> None:
    path.parent.mkdir(parents=True)
    garbage = b"this is not an SQLite database\n" * 200
    await anyio.Path(path).write_bytes(garbage)

    with SessionJournal(path) as journal:
        await journal.record_created(
            "sess_a", conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE
        )
        assert journal.durable
        assert ids_of(await journal.entries()) == ["sess_a"]

    [aside] = path.parent.glob(path.name + ".corrupt-*")
    assert await anyio.Path(aside).read_bytes() == garbage


async def test_a_journal_locked_past_the_busy_timeout_is_kept_and_an_in_memory_one_is_used(
    path: Path,
) -> None:
    SessionJournal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process mid-write, for longer than we wait
        with SessionJournal(path, busy_timeout=0.1) as journal:
            assert not journal.durable
    finally:
        holder.close()

    assert list(path.parent.glob(path.name + ".corrupt-*")) == []
    with SessionJournal(path) as journal:
        assert journal.durable


async def test_a_journal_from_a_newer_version_is_left_untouched_and_an_in_memory_one_is_used(
    path: Path,
) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()

    with SessionJournal(path) as journal:
        await journal.record_created(
            "sess_a", conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE
        )
        assert not journal.durable
        assert ids_of(await journal.entries()) == ["sess_a"]

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    db.close()


async def test_a_new_journal_records_its_schema_version_and_uses_wal(
    path: Path, journal: SessionJournal
) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_record_created_refuses_an_api_key_as_key_id(journal: SessionJournal) -> None:
    with pytest.raises(ValueError, match="fingerprint") as caught:
        await journal.record_created(
            "sess_a", conversation_id="c1", persist=False, key_id=DEFAULT_KEY, base_url=BASE
        )

    assert DEFAULT_KEY not in str(caught.value)
    assert await journal.entries() == []


# -- reaping against the loopback API -------------------------------------------------------------


@pytest.fixture
async def api(fake_chaser: FakeChaser) -> AsyncIterator[ChaserClient]:
    """A fast client whose DELETEs are retried once, so a persistent 503 fails quickly."""
    async with ChaserClient(
        DEFAULT_KEY, base_url=fake_chaser.url, timeout=2.0, max_retries=1, backoff_base=0.01, backoff_max=0.02
    ) as client:
        yield client


async def orphan_sessions(api: ChaserClient, path: Path, fake: FakeChaser, count: int) -> list[str]:
    """Create ``count`` sessions at the API and journal them from a process that then dies."""
    ids = [(await api.create_session()).id for _ in range(count)]
    await anyio.to_thread.run_sync(lambda: record_in_dead_process(path, ids, base_url=fake.url))
    return sorted(ids)


async def test_reap_deletes_exactly_the_open_sessions_of_dead_owners(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    orphans = await orphan_sessions(api, path, fake_chaser, 3)
    [persisted] = await orphan_sessions(api, path, fake_chaser, 1)
    await journal.record_persist(persisted, True)
    alive = (await api.create_session()).id
    owner = Child("record", str(path), "stay", KEY_ID, fake_chaser.url, alive)
    untracked = (await api.create_session()).id
    try:
        assert owner.readline() == "recorded"
        fake_chaser.reset_requests()

        report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)
    finally:
        owner.stop()

    assert fake_chaser.count("DELETE") == 3
    assert sorted(fake_chaser.deleted_ids()) == orphans
    assert report.deleted == tuple(orphans) and report.ok
    assert sorted(s["id"] for s in fake_chaser.open_sessions()) == sorted([persisted, alive, untracked])
    assert ids_of(await journal.entries()) == [alive]  # housekeeping dropped the dead owner's persisted one


async def test_reap_forgets_an_orphan_the_api_says_is_already_closed(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    [session_id] = await orphan_sessions(api, path, fake_chaser, 1)
    await api.delete_session(session_id)  # closed behind the journal's back: the reap gets a 409
    fake_chaser.reset_requests()

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert fake_chaser.count("DELETE") == 1
    assert report.already_closed == (session_id,) and report.ok
    assert await journal.entries() == []


async def test_reap_forgets_an_orphan_the_api_does_not_know(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    await anyio.to_thread.run_sync(
        lambda: record_in_dead_process(path, [UNKNOWN_ID], base_url=fake_chaser.url)
    )

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert report.already_closed == (UNKNOWN_ID,) and report.ok
    assert await journal.entries() == []


async def test_reap_keeps_failed_deletes_and_the_next_reap_finishes_them(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    [session_id] = await orphan_sessions(api, path, fake_chaser, 1)
    fake_chaser.inject(Status(503), method="DELETE", times=2)  # the first try and its one retry

    first = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert [sid for sid, _ in first.failed] == [session_id] and "503" in first.failed[0][1]
    [kept] = await journal.orphans()
    assert kept.attempts == 1 and kept.last_error is not None and "503" in kept.last_error

    second = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert second.deleted == (session_id,)
    assert fake_chaser.deleted_ids() == [session_id]
    assert await journal.entries() == []


async def test_reap_gives_back_what_it_could_not_finish_within_its_timeout(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    [session_id] = await orphan_sessions(api, path, fake_chaser, 1)
    fake_chaser.inject(Hang(), method="DELETE", times=None)

    with anyio.fail_after(10):
        report = await reap_orphans(journal, {KEY_ID: api}, timeout=0.3)

    assert report.failed == ((session_id, "not finished within 0.3 s"),)
    assert ids_of(await journal.claim_orphans()) == [session_id]  # released, not held


async def test_reap_leaves_orphans_of_keys_it_does_not_hold(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    other = key_fingerprint("ck_test_someone_else")
    await anyio.to_thread.run_sync(
        lambda: record_in_dead_process(path, [UNKNOWN_ID], key_id=other, base_url=fake_chaser.url)
    )

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert fake_chaser.count("DELETE") == 0
    assert report.unheld == (UNKNOWN_ID,)
    assert ids_of(await journal.orphans()) == [UNKNOWN_ID]


async def test_reap_leaves_orphans_made_against_another_api_url(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    await anyio.to_thread.run_sync(
        lambda: record_in_dead_process(path, [UNKNOWN_ID], base_url="https://api.chaser.example")
    )

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert fake_chaser.count("DELETE") == 0
    assert report.unheld == (UNKNOWN_ID,)


class Signalling:
    """A client that announces each delete it made, so a test waits on an event, not a clock."""

    def __init__(self, api: ChaserClient) -> None:
        self.api = api
        self.deleted = anyio.Event()

    @property
    def base_url(self) -> str:
        return self.api.base_url

    async def delete_session(self, session_id: str) -> bool:
        stopped = await self.api.delete_session(session_id)
        self.deleted.set()
        return stopped


async def test_periodic_reaping_picks_up_orphans_that_appear_later(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    client = Signalling(api)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: reap_periodically(journal, {KEY_ID: client}, interval=0.05, timeout=5))
            await anyio.sleep(0.1)  # let the first pass find nothing
            [session_id] = await orphan_sessions(api, path, fake_chaser, 1)
            await client.deleted.wait()
            tg.cancel_scope.cancel()

    assert fake_chaser.deleted_ids() == [session_id]


async def test_the_api_key_never_reaches_the_journal_file(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    await orphan_sessions(api, path, fake_chaser, 2)
    fake_chaser.inject(
        Status(503, {"error": {"code": "unavailable", "message": f"bad key {DEFAULT_KEY}"}}),
        method="DELETE",
        times=None,
    )
    await reap_orphans(journal, {KEY_ID: api}, timeout=10)  # stores the failure messages

    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert KEY_ID.encode() in stored  # the bytes read are the journal's
    assert DEFAULT_KEY.encode() not in stored


def test_servers_starting_at_once_all_get_a_durable_journal(tmp_path: Path) -> None:
    """Two servers starting together race to create the file and switch it to WAL; the loser must
    wait its turn, not fall back to an in-memory journal that protects nothing."""
    path = tmp_path / "fresh.sqlite3"
    script = (
        "import sys, time\n"
        "from chaser_mcp.store import SessionJournal\n"
        "while time.time() < float(sys.argv[2]): pass\n"  # line up the starts
        "print(SessionJournal(sys.argv[1]).durable)\n"
    )
    start_at = str(time.time() + 1.5)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), start_at], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    answers = [process.communicate(timeout=60)[0].strip() for process in processes]
    assert answers == ["True"] * 8


# -- schema 2: TTLs and pending deletes -------------------------------------------------------------

V1_ROW = (
    "INSERT INTO sessions (session_id, conversation_id, key_id, base_url, persist, owner_host, owner_pid,"
    " created_at) VALUES ('sess_old', 'c1', ?, ?, 0, 'elsewhere', 1, ?)"
)


async def test_a_version_1_journal_is_migrated_in_place_and_keeps_its_entries(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        for statement in SCHEMA_V1:
            db.execute(statement)
        db.execute(V1_ROW, (KEY_ID, BASE, time.time()))
        db.execute("PRAGMA user_version = 1")
    db.close()

    with SessionJournal(path) as journal:
        [entry] = await journal.entries()
        assert journal.durable
        assert (entry.session_id, entry.ttl_seconds, entry.pending) == ("sess_old", None, False)

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()


async def test_a_failed_delete_marks_the_entry_pending_and_counts_the_attempt(
    journal: SessionJournal,
) -> None:
    await journal.record_created(
        "sess_a", conversation_id="c1", persist=False, key_id=KEY_ID, base_url=BASE, ttl_seconds=600
    )

    await journal.record_pending("sess_a", "DELETE /v1/sessions/sess_a -> HTTP 500")
    await journal.record_pending("sess_a", "DELETE /v1/sessions/sess_a -> HTTP 502")

    [entry] = await journal.entries()
    assert entry.pending and entry.ttl_seconds == 600 and entry.attempts == 2
    assert entry.last_error == "DELETE /v1/sessions/sess_a -> HTTP 502"
    assert entry.pending_since is not None and entry.pending_since <= time.time()


async def test_reap_forgets_an_orphan_whose_ttl_has_passed_without_sending_a_delete(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    dead = ProcessIdentity(dead_pid(), None, ProcessIdentity.current().host)
    with SessionJournal(path, owner=dead) as writer:
        for session_id, ttl in (("sess_expired", 60), ("sess_live", 3600)):
            await writer.record_created(
                session_id,
                conversation_id="c1",
                persist=False,
                key_id=KEY_ID,
                base_url=fake_chaser.url,
                ttl_seconds=ttl,
            )
    with sqlite3.connect(path) as db:  # both were created five minutes ago
        db.execute("UPDATE sessions SET created_at = created_at - 300")
    db.close()

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert [r.path for r in fake_chaser.requests] == ["/v1/sessions/sess_live"]  # 404: already closed
    assert report.already_closed == ("sess_live",)
    assert await journal.entries() == []


async def test_a_reap_reports_how_many_orphans_were_pending_deletes(
    path: Path, journal: SessionJournal, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    [session_id] = await orphan_sessions(api, path, fake_chaser, 1)
    await journal.record_pending(session_id, "DELETE -> HTTP 500")

    report = await reap_orphans(journal, {KEY_ID: api}, timeout=10)

    assert report.deleted == (session_id,) and report.pending == 1
    assert "1 were pending deletes of a server that has exited" in report.summary()
