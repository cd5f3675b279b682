"""Replicas under load: three chaser-mcp replicas behind HAProxy on one Redis, behaving as one server.

Three real replicas (``python -m chaser_mcp --transport http --multi-tenant``, ``CHASER_STORE`` on a
real redis-server with an append-only file) behind Debian's HAProxy running the shipped
``deploy/haproxy.cfg``, in front of the loopback fake API answering 10% of requests with a fault
(429, 500, 503, slow; seeded). For ``duration`` seconds, 100 stateless 2026-07-28 callers (one key
each; HAProxy spreads their requests over every replica) and 20 handshake-era conversations (sticky
to one replica) create sessions and call tools. Midway, one replica is killed with SIGKILL and
restarted on the same port a few seconds later; a handshake-era conversation that lived on it sees
its MCP session gone and reconnects. Then every caller ends: handshake-era clients DELETE their MCP
session (their sessions wait out a short reconnect grace); stateless callers just stop, and their
leases run out.

Reported: calls made and failed (and how many failures fell in the kill window), sessions created,
**sessions leaked** (open at the fake at the end, not persisted, create answered), **double deletes**
(a DELETE that reached a session another DELETE had already closed: the fault mix has no
"answer lost after the effect" kind, so every such DELETE is a real second delete), and the seconds
from the kill until the last session of the dead replica's conversations was deleted.

Then, in the same run and without faults, the added latency of the Redis store: one replica on Redis
and one on the embedded store, the same stateless client calling ``get_session`` on each in
interleaved rounds; the medians and their difference (target: at most +0.3 ms).

    python -m bench.bench_replicas            # 100 + 20 callers for 60 s (about three minutes)
    python -m bench.bench_replicas --quick    # 6 + 2 callers for 6 s (the test suite runs it)

The result is written as JSON to bench/results/ before it is printed.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import (
    REPO_ROOT,
    bench_arguments,
    describe_machine,
    fake_api,
    fake_state,
    median,
    new_result,
    shown,
    stop,
    write_result,
)
from tests.haproxy_support import HAProxy
from tests.redis_support import RedisServer, free_ports

# One key per caller: stateless callers take the first ones, handshake-era conversations the next ones
# (a key shared by both would let the stateless caller adopt the other's sessions, as a caller may).
KEYS = tuple(f"ck_test_replica_{i:03d}_0123456789abcdef" for i in range(120))
SECRET = "bench-replicas-shared-secret-0123456789"
FAULT_KINDS = "429,500,503,slow"
PERSIST_TTL = 3599  # persisted sessions are told apart at the fake by this TTL
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Plan:
    replicas: int
    stateless: int  # 2026-07-28 callers, one key each
    handshake: int  # handshake-era conversations
    duration_s: float
    kill_at_s: float
    restart_after_s: float
    fault_rate: float
    seed: int
    lease_s: float
    grace_s: float
    heartbeat_s: float
    latency_rounds: int
    latency_calls: int  # per round and store


FULL = Plan(3, 100, 20, 60.0, 20.0, 5.0, 0.1, 7, 10.0, 3.0, 1.0, 5, 200)
QUICK = Plan(3, 6, 2, 6.0, 2.0, 1.0, 0.1, 7, 3.0, 1.0, 0.5, 2, 60)


@dataclass
class Tally:
    calls: int = 0
    # An injected API fault the server passed on as the tool's error, as designed (a 500 on a read,
    # any failure of a create: never retried, see the README's "Retries"): not the replicas' doing.
    api_faults_passed_on: int = 0
    failed: int = 0  # every other failure: what the replicas and the balancer caused
    failed_in_kill_window: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failed_at: list[float] = field(default_factory=list)  # time.time() of each failure
    reconnects: int = 0
    created: list[str] = field(default_factory=list)
    # Sessions of handshake-era conversations whose MCP session was lost with the killed replica.
    orphaned_by_kill: list[str] = field(default_factory=list)
    kill_window: tuple[float, float] = (0.0, 0.0)  # time.time() bounds


# -- the parts ----------------------------------------------------------------------------------------


@dataclass
class Replica:
    port: int
    env: Mapping[str, str]
    log: Path
    process: Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_replica(replica: Replica) -> None:
    command = [
        *(sys.executable, "-m", "chaser_mcp", "--transport", "http", "--port", str(replica.port)),
        "--multi-tenant",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASER_")} | dict(replica.env)
    with replica.log.open("ab") as out:
        replica.process = await anyio.open_process(command, env=env, stdout=out, stderr=out, cwd=REPO_ROOT)
    async with httpx2.AsyncClient(timeout=2) as http:
        with anyio.fail_after(30):
            while True:
                if replica.process.returncode is not None:
                    raise RuntimeError(f"a replica exited at start:\n{replica.log.read_text()[-2000:]}")
                try:
                    if (await http.get(f"{replica.base}/healthz")).status_code == 200:
                        return
                except httpx2.HTTPError:
                    pass
                await anyio.sleep(0.1)


@asynccontextmanager
async def replicas_running(replicas: Sequence[Replica]) -> AsyncIterator[None]:
    try:
        for replica in replicas:
            await start_replica(replica)
        yield
    finally:
        for replica in replicas:
            if replica.process is not None:
                await stop(replica.process)


def connect(url: str, key: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=CALL_TIMEOUT)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def call(client: Client, tally: Tally, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """One tool call; its structured result, or None when it failed (tallied, with when)."""
    tally.calls += 1
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool(tool, arguments)
        if not result.is_error:
            return result.structured_content or {}
        text = " ".join(getattr(block, "text", "") for block in result.content)
        if "injected" in text or "HTTP 429" in text:  # the fake's marks of a fault it injected
            tally.api_faults_passed_on += 1
            return None
        reason = f"{tool}: tool error: {text[:80]}"
    except Exception as exc:  # a failed call is what is measured, not a reason to stop
        reason = f"{tool}: {type(exc).__name__}: {str(exc)[:60]}"
    tally.failed += 1
    tally.failures[reason] += 1
    tally.failed_at.append(time.time())
    start, end = tally.kill_window
    if start <= time.time() <= end:
        tally.failed_in_kill_window += 1
    if "Session not found" in reason:
        # The spec's rule: a 404 for its MCP session means the client starts a new one. (A client in
        # auto mode can fall back to the handshake when its first request meets the kill, and then
        # holds an MCP session like any handshake-era client.)
        raise SessionGone(reason)
    return None


class SessionGone(Exception):
    """The client's MCP session is gone (its replica died): the caller opens a new one."""


# -- the callers --------------------------------------------------------------------------------------


async def stateless_caller(url: str, key: str, persist: bool, until: float, tally: Tally) -> None:
    """Each request stands alone (HAProxy spreads them); a client broken by the kill starts again."""
    ids: list[str] = []
    while time.time() < until:
        try:
            async with connect(url, key, "auto") as client:
                wanted = [{"ttl_seconds": 600}] + (
                    [{"persist": True, "ttl_seconds": PERSIST_TTL}] if persist else []
                )
                for options in wanted[len(ids) :]:
                    for _attempt in range(
                        3
                    ):  # a create meeting an injected fault is not retried by the server
                        made = await call(client, tally, "create_session", options)
                        if made is not None:
                            ids.append(str(made["id"]))
                            tally.created.append(ids[-1])
                            break
                turn = 0
                while time.time() < until:
                    if ids:
                        await call(client, tally, "get_session", {"session_id": ids[turn % len(ids)]})
                    if turn % 5 == 4:
                        await call(client, tally, "list_sessions", {"owned_only": True})
                    turn += 1
                    await anyio.sleep(0.5)
            return
        except Exception as exc:  # opening or closing the client met the kill, or its session is gone
            if not isinstance(exc, SessionGone):
                tally.failures[f"stateless client: {type(exc).__name__}"] += 1
            tally.reconnects += 1
            await anyio.sleep(0.2)


async def handshake_conversation(url: str, key: str, until: float, tally: Tally) -> None:
    """One MCP session at a time: when the replica holding it dies, the next call fails with the
    session gone, and the conversation starts again (through HAProxy, on a live replica)."""
    while time.time() < until:
        mine: list[str] = []
        try:
            async with connect(url, key, "legacy") as client:
                made = await call(client, tally, "create_session", {"ttl_seconds": 600})
                if made is not None:
                    mine.append(str(made["id"]))
                    tally.created.extend(mine)
                while time.time() < until:
                    if mine:
                        await call(client, tally, "get_session", {"session_id": mine[0]})
                    await anyio.sleep(0.5)
            return
        except Exception:  # the replica holding this MCP session died: its sessions are the survivors' now
            tally.orphaned_by_kill.extend(mine)
            tally.reconnects += 1
            await anyio.sleep(0.2)


# -- what the fake saw ----------------------------------------------------------------------------------


def open_unpersisted(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in state["sessions"]
        if s["status"] in ("creating", "ready") and s["ttl_seconds"] != PERSIST_TTL and s["create_answered"]
    ]


async def wait_for_deletes(http: httpx2.AsyncClient, api_url: str, bound: float) -> float:
    """Poll the fake until every session that must be deleted is, or ``bound`` passes; seconds waited."""
    started = time.perf_counter()
    with anyio.move_on_after(bound):
        while True:
            if not open_unpersisted(await fake_state(http, api_url)):
                break
            await anyio.sleep(0.25)
    return time.perf_counter() - started


# -- the run ------------------------------------------------------------------------------------------


async def load_phase(plan: Plan, tmp: Path, result: dict[str, Any]) -> None:
    tally = Tally()
    redis = RedisServer(tmp / "redis", appendonly=True)
    redis.start()
    faults = [
        *("--fault-rate", str(plan.fault_rate), "--fault-seed", str(plan.seed)),
        *("--fault-kinds", FAULT_KINDS, "--slow-seconds", "0.5"),
    ]
    try:
        async with fake_api(keys=KEYS, extra=faults) as fake, httpx2.AsyncClient(timeout=10) as http:
            env = {
                "CHASER_BASE_URL": fake.url,
                "CHASER_STORE": redis.url,
                "CHASER_STATE_SECRET": SECRET,
                "CHASER_LEASE_SECONDS": str(plan.lease_s),
                "CHASER_RECONNECT_GRACE": str(plan.grace_s),
                "CHASER_STORE_HEARTBEAT": str(plan.heartbeat_s),
                "CHASER_LOG_LEVEL": "WARNING",
            }
            ports = free_ports(plan.replicas)
            replicas = [Replica(port, env, tmp / f"replica-{i}.log") for i, port in enumerate(ports)]
            async with replicas_running(replicas):
                proxy = HAProxy(tmp / "haproxy", [r.port for r in replicas]).start()
                try:
                    url = f"{proxy.base}/mcp"
                    started = time.time()
                    until = started + plan.duration_s
                    doomed = replicas[-1]
                    async with anyio.create_task_group() as tg:
                        for i in range(plan.stateless):
                            tg.start_soon(stateless_caller, url, KEYS[i], i == 0, until, tally)
                        for j in range(plan.handshake):
                            key = KEYS[plan.stateless + j]
                            tg.start_soon(handshake_conversation, url, key, until, tally)
                        await anyio.sleep(plan.kill_at_s)
                        killed_at = time.time()
                        tally.kill_window = (killed_at, killed_at + plan.restart_after_s + 5.0)
                        assert doomed.process is not None
                        doomed.process.send_signal(signal.SIGKILL)
                        await doomed.process.wait()
                        await anyio.sleep(plan.restart_after_s)
                        await start_replica(doomed)
                        restarted_at = time.time()
                    ended_at = time.time()
                    waited = await wait_for_deletes(http, fake.url, plan.lease_s + plan.grace_s + 60)
                    final = await fake_state(http, fake.url)
                finally:
                    proxy.stop()
    finally:
        redis.stop()
    deleted_at = {s["id"]: s["deleted_at"] for s in final["sessions"]}
    dead_ones = [deleted_at.get(sid) for sid in tally.orphaned_by_kill]
    reaped = [t for t in dead_ones if t is not None]
    leaked = open_unpersisted(final)
    persisted = [s for s in final["sessions"] if s["ttl_seconds"] == PERSIST_TTL]
    result["load"] = {
        "calls": tally.calls,
        "api_faults_passed_on": tally.api_faults_passed_on,
        "calls_failed": tally.failed,
        "calls_failed_in_kill_window": tally.failed_in_kill_window,
        "failures": dict(tally.failures),
        "failures_seconds_after_kill": sorted(round(t - killed_at, 1) for t in tally.failed_at),
        "reconnects": tally.reconnects,
        "sessions_created": len(final["sessions"]),
        "sessions_created_seen_by_callers": len(tally.created),
        "persisted_kept": sum(1 for s in persisted if s["status"] in ("creating", "ready")),
        "sessions_leaked": len(leaked),
        "leaked_ids": [s["id"] for s in leaked][:20],
        "double_deletes": sum(final["redundant_deletes"].values()),
        "dead_replicas_sessions": len(dead_ones),
        "dead_replicas_sessions_not_reaped": len(dead_ones) - len(reaped),
        "seconds_kill_to_last_reap": round(max(reaped) - killed_at, 1) if reaped else None,
        "seconds_kill_to_each_reap": sorted(round(t - killed_at, 1) for t in reaped),
        "restart_after_s": round(restarted_at - killed_at, 1),
        "seconds_end_to_all_deleted": round(waited, 1),
        "run_s": round(ended_at - started, 1),
        "faults_injected": {k: sum(v.values()) for k, v in final["faults"].items()},
        "api_requests": final["requests"],
    }


async def timed_calls(
    urls: Mapping[str, str], key: str, ids: Mapping[str, str], count: int
) -> dict[str, list[float]]:
    """``count`` get_session calls on each server, alternating call by call (drift hits both alike)."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(connect(url, key, "auto")) for name, url in urls.items()
        }
        for _ in range(count):
            for name, client in clients.items():
                began = time.perf_counter()
                result = await client.call_tool("get_session", {"session_id": ids[name]})
                samples[name].append((time.perf_counter() - began) * 1000)
                assert not result.is_error, result.content
    return samples


async def latency_phase(plan: Plan, tmp: Path, result: dict[str, Any]) -> None:
    """The Redis store against the embedded one: same fake, same kind of client, calls interleaved."""
    redis = RedisServer(tmp / "redis-latency")
    redis.start()
    try:
        async with fake_api(keys=KEYS[:1]) as fake:
            common = {"CHASER_BASE_URL": fake.url, "CHASER_LOG_LEVEL": "WARNING"}
            redis_port, embedded_port = free_ports(2)
            on_redis = Replica(
                redis_port,
                common | {"CHASER_STORE": redis.url, "CHASER_STATE_SECRET": SECRET},
                tmp / "on-redis.log",
            )
            embedded = Replica(
                embedded_port, common | {"CHASER_JOURNAL": str(tmp / "journal.sqlite3")}, tmp / "embedded.log"
            )
            samples: dict[str, list[float]] = {"redis": [], "embedded": []}
            async with replicas_running([on_redis, embedded]):
                ids: dict[str, str] = {}
                for name, replica in (("redis", on_redis), ("embedded", embedded)):
                    async with connect(f"{replica.base}/mcp", KEYS[0], "auto") as client:
                        made = await client.call_tool("create_session", {})
                        assert made.structured_content is not None
                        ids[name] = str(made.structured_content["id"])
                urls = {"redis": f"{on_redis.base}/mcp", "embedded": f"{embedded.base}/mcp"}
                await timed_calls(urls, KEYS[0], ids, plan.latency_calls)  # warms both up
                for _ in range(plan.latency_rounds):
                    for name, times in (await timed_calls(urls, KEYS[0], ids, plan.latency_calls)).items():
                        samples[name] += times
    finally:
        redis.stop()
    medians = {name: round(median(values), 3) for name, values in samples.items()}
    added = round(medians["redis"] - medians["embedded"], 3)
    result["store_latency"] = {
        "calls_per_store": len(samples["redis"]),
        "median_ms": medians,
        "added_ms": added,
        "target_ms": 0.3,
        "meets_target": added <= 0.3,
    }


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    result = new_result("bench_replicas", quick=quick, machine=describe_machine("redis", "httpx2", "uvicorn"))
    result["plan"] = asdict(plan)
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        await load_phase(plan, Path(tmp), result)
        await latency_phase(plan, Path(tmp), result)
    load = result["load"]
    result["meets_target"] = (
        load["sessions_leaked"] == 0
        and load["double_deletes"] == 0
        and load["dead_replicas_sessions_not_reaped"] == 0
        and load["calls_failed"] == load["calls_failed_in_kill_window"]
    )
    return result


def report(result: dict[str, Any]) -> None:
    plan, load, lat = result["plan"], result["load"], result["store_latency"]
    m = result["machine"]
    load_average = f"{m['load_average']} -> {result['load_average_at_end']}"
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {load_average}")
    print(
        f"{plan['replicas']} replicas behind HAProxy on Redis; {plan['stateless']} stateless callers + "
        f"{plan['handshake']} handshake-era conversations for {plan['duration_s']:g} s; "
        f"{plan['fault_rate']:.0%} faults ({FAULT_KINDS}); one replica killed -9 at {plan['kill_at_s']:g} s, "
        f"restarted {load['restart_after_s']} s later"
    )
    print(
        f"  calls {load['calls']}: {load['api_faults_passed_on']} answered with an injected API fault "
        f"(passed on as designed); failed otherwise {load['calls_failed']}, "
        f"{load['calls_failed_in_kill_window']} of them in the kill window {load['failures']}"
    )
    print(
        f"  sessions {load['sessions_created']}; LEAKED {load['sessions_leaked']}; "
        f"DOUBLE DELETES {load['double_deletes']}; persisted kept {load['persisted_kept']}"
    )
    print(
        f"  the dead replica's conversations' sessions: {load['dead_replicas_sessions']}, the last reaped "
        f"{load['seconds_kill_to_last_reap']} s after the kill; "
        f"not reaped: {load['dead_replicas_sessions_not_reaped']}"
    )
    print(f"  after the end: every session deleted in {load['seconds_end_to_all_deleted']} s")
    print(
        f"store latency per get_session (2026-07-28, median of {lat['calls_per_store']}): "
        f"Redis {lat['median_ms']['redis']} ms, embedded {lat['median_ms']['embedded']} ms, "
        f"added {lat['added_ms']:+} ms (target <= +{lat['target_ms']} ms)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_arguments(__doc__, quick_help="6 + 2 callers for 6 s")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    result = anyio.run(run, plan, args.quick)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
