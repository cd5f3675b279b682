"""The ownership store on a real redis-server: the journal's contract, across replicas.

A dead replica is a real process killed with -9 after recording its entries (its heartbeat key
then expires); survivors are store objects with their own replica ids. Reaping runs over real
sockets against the loopback fake API, which counts the DELETEs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import redis
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from chaser_mcp import cli
from chaser_mcp._ids import key_fingerprint
from chaser_mcp.api import ChaserClient
from chaser_mcp.config import Settings, SettingsError
from chaser_mcp.store import reap_orphans
from chaser_mcp.store.ownership import JournalEntry
from chaser_mcp.store.redis_store import RedisStore, StoreUnavailable
from chaser_mcp.store.sealing import SealError, StateCipher
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.redis_support import RedisServer, free_port

pytestmark = pytest.mark.anyio

KEY_ID = key_fingerprint(DEFAULT_KEY)
BASE = "http://127.0.0.1:9"  # store-only tests never talk to it
SECRET = "a-shared-secret-of-the-replicas"
BEAT = 0.2  # a dead replica's heartbeat expires after three of these

# A replica in its own process: records entries with its heartbeat alive, says so, then waits to be
# killed with -9 (no cleanup, no goodbye: its heartbeat key runs out by itself).
REPLICA = r"""
import sys
import anyio
from chaser_mcp.store.redis_store import RedisStore
from chaser_mcp.store.sealing import StateCipher

async def main(url, base_url, key, ids):
    store = RedisStore(url, heartbeat=float(sys.argv[5]), cipher=StateCipher(sys.argv[6]))
    await store.beat()
    for session_id in ids:
        await store.record_created(
            session_id, conversation_id="c1", persist=False, key_id=sys.argv[4], base_url=base_url,
            api_key=key,
        )
    print("recorded", flush=True)
    sys.stdin.read()

anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[7:])
"""


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture
async def store(server: RedisServer) -> AsyncIterator[RedisStore]:
    # A long heartbeat: the survivor beats once and stays alive for the whole test.
    survivor = RedisStore(server.url, replica_id="survivor", heartbeat=60, cipher=StateCipher(SECRET))
    await survivor.beat()
    yield survivor
    await survivor.aclose()


def run_replica_and_kill_it(args: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", REPLICA, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "recorded"
    finally:
        proc.kill()
        proc.wait()


async def dead_replica(url: str, ids: list[str], *, base_url: str = BASE, key: str = DEFAULT_KEY) -> None:
    """Record ``ids`` from a replica process, kill it with -9, and wait until its heartbeat is gone."""
    args = [url, base_url, key, key_fingerprint(key), str(BEAT), SECRET, *ids]
    await anyio.to_thread.run_sync(run_replica_and_kill_it, args)
    async with RedisStore(url, replica_id="watcher") as watcher:
        # Its heartbeat key expires three beats after the last one: bounded, not timed.
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(10), wait=wait_fixed(BEAT / 2), reraise=True
        ):
            with attempt:
                assert set(ids) <= {e.session_id for e in await watcher.orphans()}


def ids_of(entries: list[JournalEntry]) -> list[str]:
    return sorted(entry.session_id for entry in entries)


async def record(store: RedisStore, session_id: str, *, persist: bool = False, base_url: str = BASE) -> None:
    await store.record_created(
        session_id,
        conversation_id="c1",
        persist=persist,
        key_id=KEY_ID,
        base_url=base_url,
        api_key=DEFAULT_KEY,
    )


# -- who is an orphan -----------------------------------------------------------------------------


async def test_entries_of_a_replica_killed_with_minus_9_become_orphans(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_a", "sess_b"])

    assert ids_of(await store.orphans()) == ["sess_a", "sess_b"]


async def test_entries_of_a_replica_with_a_live_heartbeat_are_not_orphans(
    server: RedisServer, store: RedisStore
) -> None:
    async with RedisStore(server.url, replica_id="other", heartbeat=60) as other:
        await other.beat()
        await record(other, "sess_live")

        [entry] = await store.entries()
        assert entry.owner.host == "other"
        assert await store.orphans() == []


async def test_entries_of_this_replica_are_not_orphans_even_after_missed_beats(
    server: RedisServer,
) -> None:
    async with RedisStore(server.url, replica_id="me", heartbeat=BEAT) as me:
        await record(me, "sess_mine")  # never beat: no heartbeat key at all

        assert await me.orphans() == []
        assert await me.claim_orphans() == []


async def test_persisted_and_closed_entries_of_a_dead_replica_are_not_orphans(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_kept", "sess_closed", "sess_open"])
    await store.record_persist("sess_kept", True)
    await store.record_closed("sess_closed")

    assert ids_of(await store.orphans()) == ["sess_open"]


async def test_entries_older_than_the_longest_session_are_not_orphans(server: RedisServer) -> None:
    await dead_replica(server.url, ["sess_old"])
    async with RedisStore(server.url, replica_id="survivor", max_age=0.0) as survivor:
        assert await survivor.orphans() == []
        assert await survivor.forget_owner_closed() == 1
        assert await survivor.entries() == []


async def test_a_replica_that_closes_leaves_what_it_still_owns_reapable_at_once(
    server: RedisServer, store: RedisStore
) -> None:
    leaving = RedisStore(server.url, replica_id="leaving", heartbeat=60)
    await leaving.beat()
    await record(leaving, "sess_left")

    await leaving.aclose()

    assert ids_of(await store.orphans()) == ["sess_left"]


# -- claims ---------------------------------------------------------------------------------------


async def test_two_replicas_claiming_at_once_claim_each_entry_of_a_dead_one_exactly_once(
    server: RedisServer,
) -> None:
    ids = [f"sess_{n:03d}" for n in range(60)]
    await dead_replica(server.url, ids)
    claimed: dict[str, list[str]] = {"one": [], "two": []}
    # Both stay alive until both are done, as reapers do while they delete: a claimer that has left
    # (its heartbeat gone) has given up its claims.
    survivors = [RedisStore(server.url, replica_id=replica_id) for replica_id in claimed]

    async def claim_all(survivor: RedisStore) -> None:
        while batch := await survivor.claim_orphans(limit=3):
            claimed[survivor.replica_id] += [e.session_id for e in batch]

    try:
        for survivor in survivors:
            await survivor.beat()
        async with anyio.create_task_group() as tg:
            for survivor in survivors:
                tg.start_soon(claim_all, survivor)
    finally:
        for survivor in survivors:
            await survivor.aclose()

    assert sorted(claimed["one"] + claimed["two"]) == ids  # all claimed, none twice
    assert claimed["one"] and claimed["two"]  # and both replicas took part


async def test_an_entry_claimed_by_a_live_replica_is_not_claimed_again(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_a"])
    assert ids_of(await store.claim_orphans()) == ["sess_a"]

    async with RedisStore(server.url, replica_id="late") as late:
        await late.beat()
        assert await late.claim_orphans() == []


async def test_a_claim_whose_lease_ran_out_can_be_taken_over(server: RedisServer, store: RedisStore) -> None:
    await dead_replica(server.url, ["sess_a"])
    assert ids_of(await store.claim_orphans()) == ["sess_a"]

    async with RedisStore(server.url, replica_id="late", lease=0.0) as late:
        assert ids_of(await late.claim_orphans()) == ["sess_a"]


async def test_entries_claimed_by_a_replica_that_died_can_be_claimed(server: RedisServer) -> None:
    await dead_replica(server.url, ["sess_a"])
    claimer = RedisStore(server.url, replica_id="claimer", heartbeat=60)
    await claimer.beat()
    assert ids_of(await claimer.claim_orphans()) == ["sess_a"]
    await claimer.aclose()  # its heartbeat goes with it

    async with RedisStore(server.url, replica_id="next") as successor:
        assert ids_of(await successor.claim_orphans()) == ["sess_a"]


async def test_claims_are_limited_to_the_accounts_asked_for(server: RedisServer, store: RedisStore) -> None:
    await dead_replica(server.url, ["sess_here"])
    await dead_replica(server.url, ["sess_there"], base_url="http://127.0.0.1:10")

    claimed = await store.claim_orphans(accounts=[(KEY_ID, BASE + "/")])

    assert ids_of(claimed) == ["sess_here"]


async def test_release_gives_a_claim_back_and_counts_the_failed_attempt(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_a"])
    await store.claim_orphans()

    await store.release({"sess_a": "503 unavailable"})

    async with RedisStore(server.url, replica_id="next") as successor:
        [entry] = await successor.claim_orphans()
    assert entry.attempts == 1 and entry.last_error == "503 unavailable"


async def test_a_failed_delete_marks_the_entry_pending_once_and_counts_each_attempt(
    store: RedisStore,
) -> None:
    await record(store, "sess_a")

    await store.record_pending("sess_a", "first")
    [first] = await store.entries()
    await store.record_pending("sess_a", "second")
    [entry] = await store.entries()

    assert entry.pending and entry.pending_since == first.pending_since
    assert entry.attempts == 2 and entry.last_error == "second"


async def test_updates_of_an_unknown_session_create_no_entry(store: RedisStore) -> None:
    await store.record_closed("sess_unknown")
    await store.record_pending("sess_unknown", "why")
    await store.record_persist("sess_unknown", True)

    assert await store.entries() == []


async def test_forget_owner_closed_drops_closed_entries_and_persisted_ones_of_dead_replicas(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_kept", "sess_open"])
    await store.record_persist("sess_kept", True)
    await record(store, "sess_closed")
    await store.record_closed("sess_closed")
    await record(store, "sess_mine", persist=True)

    assert await store.forget_owner_closed() == 2
    assert ids_of(await store.entries()) == ["sess_mine", "sess_open"]


async def test_two_prefixes_on_one_redis_never_see_each_others_entries(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_a"])
    async with RedisStore(server.url, prefix="other-deployment:", replica_id="x") as other:
        assert await other.entries() == []
        assert await other.claim_orphans() == []


# -- reaping against the loopback API -------------------------------------------------------------


@pytest.fixture
async def api(fake_chaser: FakeChaser) -> AsyncIterator[ChaserClient]:
    async with ChaserClient(
        DEFAULT_KEY, base_url=fake_chaser.url, timeout=2.0, max_retries=1, backoff_base=0.01, backoff_max=0.02
    ) as client:
        yield client


async def test_a_survivor_reaps_exactly_the_open_sessions_of_a_dead_replica_once(
    server: RedisServer, store: RedisStore, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    orphans = sorted([(await api.create_session()).id for _ in range(3)])
    persisted = (await api.create_session()).id
    await dead_replica(server.url, [*orphans, persisted], base_url=fake_chaser.url)
    await store.record_persist(persisted, True)
    mine = (await api.create_session()).id
    await record(store, mine, base_url=fake_chaser.url)
    fake_chaser.reset_requests()

    async with RedisStore(server.url, replica_id="second") as second:
        await second.beat()
        reports = [
            await reap_orphans(store, {KEY_ID: api}, timeout=10),
            await reap_orphans(second, {KEY_ID: api}, timeout=10),
        ]

    assert fake_chaser.count("DELETE") == 3
    assert sorted(fake_chaser.deleted_ids()) == orphans
    assert sorted(reports[0].deleted + reports[1].deleted) == orphans
    assert ids_of(await store.entries()) == [mine]  # the dead replica's persisted entry is dropped too


# -- secrets --------------------------------------------------------------------------------------


async def test_a_scan_of_every_key_and_value_finds_no_api_key_or_token(
    server: RedisServer, store: RedisStore, api: ChaserClient, fake_chaser: FakeChaser
) -> None:
    ids = [(await api.create_session()).id for _ in range(2)]
    await dead_replica(server.url, ids, base_url=fake_chaser.url)
    await store.claim_orphans()
    await store.release({ids[0]: "503 unavailable"})
    await record(store, "sess_mine")

    client = redis.Redis.from_url(server.url)
    dump = b""
    try:
        for key in client.scan_iter(match="*"):
            dump += key + b"\0" + (client.dump(key) or b"")
            if client.type(key) == b"hash":
                dump += b"".join(k + v for k, v in client.hgetall(key).items())
    finally:
        client.close()

    assert KEY_ID.encode() in dump  # the bytes scanned are the store's
    assert DEFAULT_KEY.encode() not in dump


async def test_a_sealed_key_opens_with_the_shared_secret_and_only_for_its_entry(
    server: RedisServer, store: RedisStore
) -> None:
    await dead_replica(server.url, ["sess_a"])

    assert await store.sealed_key("sess_a") == DEFAULT_KEY
    async with RedisStore(server.url, replica_id="x", cipher=StateCipher("another-secret-entirely")) as other:
        assert await other.sealed_key("sess_a") is None
    sealed = StateCipher(SECRET).seal(DEFAULT_KEY, bound_to="sess_a")
    with pytest.raises(SealError):
        StateCipher(SECRET).open(sealed, bound_to="sess_b")


async def test_without_a_cipher_no_key_is_kept_at_all(server: RedisServer) -> None:
    async with RedisStore(server.url, replica_id="plain") as plain:
        await record(plain, "sess_a")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            fields = client.hgetall("chaser-mcp:session:sess_a")
        finally:
            client.close()
    assert "sealed_key" not in fields and DEFAULT_KEY not in "".join(fields.values())


def test_multi_tenant_on_redis_without_the_state_secret_is_refused_naming_it() -> None:
    env = {"CHASER_TRANSPORT": "http", "CHASER_MULTI_TENANT": "1", "CHASER_STORE": "redis://127.0.0.1:6379/0"}

    with pytest.raises(SettingsError, match="CHASER_STATE_SECRET"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "CHASER_STATE_SECRET": SECRET}).store == env["CHASER_STORE"]


def test_a_store_that_is_not_a_redis_url_is_refused() -> None:
    with pytest.raises(SettingsError, match="CHASER_STORE"):
        Settings.from_env({"CHASER_STORE": "postgres://db/1"})


# -- Redis down, and restarted --------------------------------------------------------------------


async def test_with_redis_down_recording_a_new_session_raises_a_clear_error_and_cleanup_goes_on() -> None:
    async with RedisStore(f"redis://127.0.0.1:{free_port()}/0", replica_id="alone", timeout=0.5) as alone:
        with pytest.raises(StoreUnavailable, match=r"did not answer .* check that Redis is running"):
            await record(alone, "sess_a")
        await alone.record_closed("sess_a")  # the safety net of a cleanup: logged, never raised
        await alone.forget(["sess_a"])
        assert await alone.claim_orphans() == []


async def test_a_redis_killed_and_restarted_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "aof", appendonly=True)
    server.start()
    try:
        async with RedisStore(server.url, replica_id="writer") as writer:
            for n in range(20):
                await record(writer, f"sess_{n:02d}")
            await writer.record_pending("sess_00", "503")
            server.kill()
            with pytest.raises(StoreUnavailable):
                await record(writer, "sess_lost")
            server.start()
            entries = await writer.entries()
            await record(writer, "sess_after")  # and it works again without a new store
    finally:
        server.stop()

    assert ids_of(entries) == [f"sess_{n:02d}" for n in range(20)]
    assert [e.pending for e in entries].count(True) == 1


def test_the_state_secret_and_the_store_password_stay_out_of_repr() -> None:
    settings = Settings.from_env(
        {"CHASER_STORE": "redis://:hunter2-store-pass@127.0.0.1:6379/0", "CHASER_STATE_SECRET": SECRET}
    )

    for shown in (repr(settings), str(settings)):
        assert SECRET not in shown and "hunter2-store-pass" not in shown


async def test_a_server_configured_with_chaser_store_records_its_sessions_on_redis(
    server: RedisServer,
) -> None:
    settings = Settings.from_env({"CHASER_STORE": server.url, "CHASER_STORE_PREFIX": "served:"})

    opened = cli.open_journal(settings)

    assert isinstance(opened, RedisStore) and opened.prefix == "served:"
    await record(opened, "sess_a")
    assert ids_of(await opened.entries()) == ["sess_a"]
    await opened.aclose()
