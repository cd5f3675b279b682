"""Three replicas on one real Redis behave as one server: real server processes, real SDK clients in
both protocol eras, the fake Chaser API counting every DELETE.

Replicas beat every 0.3 s (``replica_set``), so a dead one is noticed within a second; leases and
graces are a few seconds, and the tests wait for what the replicas do on their own (no test moves
a clock: the expiry that matters here is Redis's)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
import redis

from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_clients import call_in_session, open_mcp_session, rpc_message
from tests.http_server import HttpServer
from tests.http_server import wait_until as poll_until
from tests.mcp_support import wait_until
from tests.redis_support import RedisServer
from tests.replica_support import connect, created_id, replica_set

pytestmark = pytest.mark.anyio

LEASE = 3.0
BOB = "ck_test_fake_bob_0123456789abcdef"
SECRET = "replicas-share-this-secret-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(api_keys=(DEFAULT_KEY, BOB), ready_delay=0.05) as fake:
        yield fake


def deletes_of(fake: FakeChaser) -> Counter[str]:
    """How many DELETE requests each session got (a second one would be a double delete)."""
    return Counter(r.path.rsplit("/", 1)[-1] for r in fake.requests if r.method == "DELETE")


def is_open(fake: FakeChaser, session_id: str) -> bool:
    found = fake.session(session_id)
    return found is not None and found["status"] in ("creating", "ready")


@pytest.fixture
def leased(fake: FakeChaser, redis_server: RedisServer, tmp_path: Path) -> Iterator[list[HttpServer]]:
    with replica_set(
        fake.url, redis_server.url, tmp_path, env={"CHASER_LEASE_SECONDS": str(LEASE)}
    ) as servers:
        yield servers


async def test_a_stateless_caller_alternating_between_replicas_keeps_its_session_past_a_lease(
    fake: FakeChaser, leased: list[HttpServer]
) -> None:
    first, *others = leased
    async with connect(first.mcp_url, "auto") as client:
        session_id = await created_id(client)
    # The replica that created it never hears from the caller again; the others do, for two leases.
    for turn in range(int(LEASE * 2 / 0.5)):
        async with connect(others[turn % 2].mcp_url, "auto") as client:
            result = await client.call_tool("get_session", {"session_id": session_id})
            assert not result.is_error, result.content
        await anyio.sleep(0.5)

    assert is_open(fake, session_id)
    assert deletes_of(fake)[session_id] == 0


async def test_every_replica_knows_what_a_stateless_caller_owns(leased: list[HttpServer]) -> None:
    async with connect(leased[0].mcp_url, "auto") as client:
        session_id = await created_id(client)

    async with connect(leased[1].mcp_url, "auto") as client:
        listed = await client.call_tool("list_sessions", {"owned_only": True})
        deleted = await client.call_tool("delete_session", {"session_id": session_id})

    assert listed.structured_content is not None
    assert [s["id"] for s in listed.structured_content["sessions"]] == [session_id]
    assert not deleted.is_error, deleted.content  # owned there, so no force is needed


async def test_a_lease_that_expires_deletes_each_session_exactly_once(
    fake: FakeChaser, leased: list[HttpServer]
) -> None:
    made = []
    for server in leased:
        async with connect(server.mcp_url, "auto") as client:
            made.append(await created_id(client))

    await wait_until(
        lambda: not any(is_open(fake, s) for s in made), timeout=LEASE + 15, what="the lease end"
    )
    await anyio.sleep(2.0)  # several more reap passes of every replica

    assert deletes_of(fake) == Counter(dict.fromkeys(made, 1))


async def test_a_persisted_session_outlives_its_callers_lease(
    fake: FakeChaser, leased: list[HttpServer]
) -> None:
    async with connect(leased[0].mcp_url, "auto") as client:
        kept = await created_id(client, persist=True)
        doomed = await created_id(client)

    await wait_until(lambda: not is_open(fake, doomed), timeout=LEASE + 15, what="the lease end")

    assert is_open(fake, kept)


async def test_a_caller_that_reconnects_through_another_replica_adopts_its_session(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_RECONNECT_GRACE": "30"}
    with replica_set(fake.url, redis_server.url, tmp_path, count=2, env=env) as (first, second):
        async with connect(first.mcp_url, "legacy") as client:
            session_id = await created_id(client)
        async with connect(second.mcp_url, "legacy") as client:
            result = await client.call_tool("get_session", {"session_id": session_id})
            assert result.structured_content is not None and result.structured_content["owned"] is True
            # Adopted here: this conversation's end (grace aside) is what deletes it now.

        assert is_open(fake, session_id)
        assert deletes_of(fake)[session_id] == 0


async def test_a_session_nobody_adopts_is_deleted_once_after_the_grace(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_RECONNECT_GRACE": "1"}
    with replica_set(fake.url, redis_server.url, tmp_path, count=2, env=env) as servers:
        async with connect(servers[0].mcp_url, "legacy") as client:
            session_id = await created_id(client)
        assert is_open(fake, session_id)  # waiting for the caller

        await wait_until(lambda: not is_open(fake, session_id), timeout=15, what="the grace to end")
        await anyio.sleep(1.0)

        assert deletes_of(fake)[session_id] == 1


async def test_another_caller_cannot_adopt_a_held_session_through_any_replica(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_RECONNECT_GRACE": "30", "CHASER_STATE_SECRET": SECRET}
    with replica_set(fake.url, redis_server.url, tmp_path, count=2, env=env, args=("--multi-tenant",)) as (
        first,
        second,
    ):
        async with connect(first.mcp_url, "legacy", DEFAULT_KEY) as alice:
            session_id = await created_id(alice)
        async with connect(second.mcp_url, "legacy", BOB) as bob:
            listed = await bob.call_tool("list_sessions", {"owned_only": True})
            deleted = await bob.call_tool("delete_session", {"session_id": session_id})

    assert listed.structured_content is not None and listed.structured_content["sessions"] == []
    assert deleted.is_error  # not Bob's: refused without force (and his key cannot reach it anyway)
    assert deletes_of(fake)[session_id] == 0


async def test_an_expired_lease_is_reaped_with_the_callers_sealed_key_by_a_replica_that_never_saw_it(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_LEASE_SECONDS": str(LEASE), "CHASER_STATE_SECRET": SECRET}
    with replica_set(
        fake.url, redis_server.url, tmp_path, count=2, env=env, args=("--multi-tenant",)
    ) as servers:
        async with connect(servers[0].mcp_url, "auto", BOB) as bob:
            session_id = await created_id(bob)
        servers[0].stop()  # kill -9: only the replica that never saw Bob's key is left

        await wait_until(lambda: not is_open(fake, session_id), timeout=LEASE + 15, what="the reap")

    assert [r.api_key for r in fake.requests if r.method == "DELETE"] == [BOB]


async def test_a_replica_killed_with_minus_9_has_its_conversations_sessions_reaped_by_a_survivor(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    with replica_set(fake.url, redis_server.url, tmp_path, count=2) as (doomed, survivor):
        async with httpx2.AsyncClient(timeout=30) as http:
            mcp_session = await open_mcp_session(http, doomed.mcp_url)
            made = [
                rpc_message(await call_in_session(http, doomed.mcp_url, mcp_session, "create_session", args))
                for args in ({}, {"persist": True})
            ]
        session_id, kept = (m["result"]["structuredContent"]["id"] for m in made)
        assert doomed.process is not None
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(10)

        await wait_until(lambda: not is_open(fake, session_id), timeout=15, what="the survivor's reap")

        assert survivor.process is not None and survivor.process.poll() is None
    assert deletes_of(fake)[session_id] == 1
    assert is_open(fake, kept)


async def test_with_redis_down_a_create_fails_clearly_and_leaves_nothing_running(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    with replica_set(fake.url, redis_server.url, tmp_path, count=1) as (server,):
        async with connect(server.mcp_url, "legacy") as client:
            before = await created_id(client)
            redis_server.stop()

            failed = await client.call_tool("create_session", {})
            read = await client.call_tool("get_session", {"session_id": before})
            health = httpx2.get(f"{server.base}/healthz", timeout=5)

            assert failed.is_error
            text = failed.content[0].text  # type: ignore[union-attr]
            assert "No session was created" in text and "Redis" in text
            assert [s["id"] for s in fake.sessions if s["status"] in ("creating", "ready")] == [before]
            assert not read.is_error  # reads still work
            assert health.status_code == 503 and "state store" in health.text
        # ... and deletes too: the conversation's end deleted what it owned
        await wait_until(lambda: not is_open(fake, before), timeout=10, what="the cleanup")


async def test_healthz_says_ok_again_once_redis_is_back(
    redis_server: RedisServer, fake: FakeChaser, tmp_path: Path
) -> None:
    with replica_set(fake.url, redis_server.url, tmp_path, count=1) as (server,):
        redis_server.stop()
        down = httpx2.get(f"{server.base}/healthz", timeout=5).status_code
        redis_server.start()

        assert down == 503
        assert poll_until(lambda: httpx2.get(f"{server.base}/healthz", timeout=5).status_code == 200)


async def test_a_callers_key_is_checked_once_for_every_replica(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_STATE_SECRET": SECRET}
    with replica_set(fake.url, redis_server.url, tmp_path, env=env, args=("--multi-tenant",)) as servers:
        for server in servers:
            async with connect(server.mcp_url, "auto", BOB) as bob:
                assert not (await bob.call_tool("list_sessions", {})).is_error

    checks = [r for r in fake.requests if r.method == "GET" and r.query.get("limit") == ["1"]]
    assert len(checks) == 1


async def test_a_redis_restart_mid_run_loses_no_session_and_no_lease(
    fake: FakeChaser, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "aof", appendonly=True)
    redis.start()
    env = {"CHASER_LEASE_SECONDS": str(LEASE)}
    try:
        with replica_set(fake.url, redis.url, tmp_path, count=2, env=env) as (first, second):
            async with connect(first.mcp_url, "auto") as client:
                before = await created_id(client)
            redis.kill()
            async with connect(second.mcp_url, "auto") as client:
                refused = await client.call_tool("create_session", {})
            redis.start()
            async with connect(second.mcp_url, "auto") as client:
                after = await created_id(client)
                owned = await client.call_tool("list_sessions", {"owned_only": True})

            assert refused.is_error
            assert owned.structured_content is not None
            assert {s["id"] for s in owned.structured_content["sessions"]} == {before, after}
            await wait_until(
                lambda: not (is_open(fake, before) or is_open(fake, after)),
                timeout=LEASE + 15,
                what="lease end",
            )
            await anyio.sleep(1.0)
    finally:
        redis.stop()
    # The create refused while Redis was down had made a session: deleted at once, once.
    assert set(deletes_of(fake).values()) == {1}
    assert {before, after} <= set(deletes_of(fake))
    assert not any(is_open(fake, s["id"]) for s in fake.sessions)


async def test_a_scan_of_every_redis_key_and_value_finds_no_api_key_or_token(
    fake: FakeChaser, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"CHASER_STATE_SECRET": SECRET, "CHASER_RECONNECT_GRACE": "30"}
    with replica_set(fake.url, redis_server.url, tmp_path, count=2, env=env, args=("--multi-tenant",)) as (
        first,
        second,
    ):
        async with connect(first.mcp_url, "auto", BOB) as bob:
            await created_id(bob)
        async with connect(second.mcp_url, "legacy", DEFAULT_KEY) as alice:
            await created_id(alice)
        dump = redis_dump(redis_server)

    assert dump  # there is something to scan
    for secret in (BOB, DEFAULT_KEY, SECRET):
        assert secret not in dump


def redis_dump(server: RedisServer) -> str:
    """Every key and every value in the Redis, as one text."""
    client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    parts: list[str] = []
    try:
        for key in client.scan_iter("*"):
            kind = client.type(key)
            value: object = {
                "string": client.get,
                "hash": client.hgetall,
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                "set": client.smembers,
            }[kind](key)
            parts.append(f"{key} {value}")
    finally:
        client.close()
    return "\n".join(parts)
