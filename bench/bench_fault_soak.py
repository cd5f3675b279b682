"""Fault soak: does every paid session end with its conversation when the API misbehaves?

The real server (``python -m chaser_mcp --transport http --multi-tenant``) runs against the loopback
fake API as its own process, with a seeded share of every request (10% by default, every endpoint and
method, DELETE included) answered with one of the fault kinds of ``tests.fake_chaser.FAULT_KINDS``:
429 with Retry-After, 500, 503, connection resets and dropped answers (before and after the request
took effect), slow answers, and a 200 that says gzip and is not.

Concurrently, 50 handshake-era conversations (SDK ``Client(mode="legacy")``) and 10 stateless
2026-07-28 callers (the default mode; each its own Chaser key, so its own principal and lease) create
sessions (every tenth conversation also one with ``persist``), and call the other tools. Then every
conversation ends: a handshake-era client closes (``DELETE /mcp`` with its ``Mcp-Session-Id``); a
stateless caller just stops calling and its lease (``--lease 3``) runs out. The faults stay on while
the soak waits (bounded) for every non-persisted session to be closed at the fake, then the server is
stopped with SIGTERM.

Reported: calls, tool errors and client-side failures, faults injected by kind, sessions created,
**sessions leaked** (open at the fake after the server stopped, not persisted, and whose id reached the
server), persisted sessions kept, and the seconds from the last conversation's end to the last
successful DELETE (as the fake saw it). A create whose answer was dropped after the session was made
leaves a session nobody learned the id of; those are counted apart (``orphaned_unanswered``), since no
server can delete what it never heard of. Persisted sessions are told apart at the fake by their TTL.

    python -m bench.bench_fault_soak            # 50 + 10 conversations (about a minute)
    python -m bench.bench_fault_soak --quick    # 4 + 2 conversations (seconds; the test suite runs it)

The result is written as JSON to bench/results/ before it is printed.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
    new_result,
    shown,
    stop,
    write_result,
)
from tests.fake_chaser import FAULT_KINDS
from tests.http_server import listening_port

TTL = 600
PERSIST_TTL = 3599  # persisted sessions are told apart at the fake by this TTL
CALL_TIMEOUT = 60.0
KEYS = tuple(f"ck_test_soak_{i:02d}_0123456789abcdef" for i in range(10))


@dataclass(frozen=True)
class Plan:
    handshake: int  # handshake-era conversations
    stateless: int  # 2026-07-28 callers, one key each (at most len(KEYS))
    fault_rate: float
    seed: int
    lease_s: float
    wait_s: float  # bound on waiting for the deletes after the last conversation ended
    slow_s: float  # how long a "slow" fault waits
    api_timeout_s: float  # the server's CHASER_TIMEOUT


FULL = Plan(
    handshake=50, stateless=10, fault_rate=0.1, seed=7, lease_s=3, wait_s=60, slow_s=1.5, api_timeout_s=5
)
QUICK = Plan(
    handshake=4, stateless=2, fault_rate=0.1, seed=7, lease_s=2, wait_s=8, slow_s=1.0, api_timeout_s=5
)


@dataclass
class Tally:
    """What the callers saw, shared by every conversation of the run."""

    calls: Counter[str] = field(default_factory=Counter)  # tool -> calls made
    ok: Counter[str] = field(default_factory=Counter)
    tool_errors: Counter[str] = field(default_factory=Counter)  # isError results, by tool
    call_failures: Counter[str] = field(default_factory=Counter)  # a call raised: by exception type
    open_close_failures: Counter[str] = field(default_factory=Counter)  # opening or closing raised
    conversations_started: Counter[str] = field(default_factory=Counter)
    conversations_not_started: Counter[str] = field(default_factory=Counter)
    created: int = 0
    persisted: int = 0
    ended_at: list[float] = field(default_factory=list)  # time.time() of each conversation's end


# -- the server ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: Process
    log: Path


@asynccontextmanager
async def chaser_server(api_url: str, plan: Plan, tmp: Path) -> AsyncIterator[RunningServer]:
    """``python -m chaser_mcp --transport http --multi-tenant`` on a port the OS picks, healthy."""
    command = [
        *(sys.executable, "-m", "chaser_mcp", "--transport", "http", "--port", "0"),
        *("--multi-tenant", "--lease", str(plan.lease_s), "--session-idle-timeout", "60"),
        *("--journal", str(tmp / "journal.sqlite3"), "--timeout", str(plan.api_timeout_s)),
        *("--log-level", "INFO"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASER_")}
    env["CHASER_BASE_URL"] = api_url
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = await anyio.open_process(command, env=env, stdout=out, stderr=out, cwd=REPO_ROOT)
    try:
        base = ""
        async with httpx2.AsyncClient(timeout=2) as http:
            with anyio.fail_after(30):
                while True:
                    if process.returncode is not None:
                        raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
                    if not base and (port := listening_port(process.pid)):
                        base = f"http://127.0.0.1:{port}"
                    try:
                        if base and (await http.get(f"{base}/healthz")).status_code == 200:
                            break
                    except httpx2.HTTPError:
                        pass
                    await anyio.sleep(0.1)
        yield RunningServer(f"{base}/mcp", process, log)
    finally:
        await stop(process)


async def sigterm(process: Process) -> tuple[int | None, float]:
    """SIGTERM, then the exit code and how long the server took to exit (None: killed after 60 s)."""
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(60):
        await process.wait()
    return process.returncode, time.perf_counter() - started


# -- the callers --------------------------------------------------------------------------------------


def connect(url: str, key: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=CALL_TIMEOUT)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def call(client: Client, tally: Tally, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """One tool call; its structured result when it succeeded, None when it failed (tallied)."""
    tally.calls[tool] += 1
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool(tool, arguments)
    except Exception as exc:  # a failed call must not end the soak: it is what is measured
        tally.call_failures[type(exc).__name__] += 1
        return None
    if result.is_error:
        tally.tool_errors[tool] += 1
        return None
    tally.ok[tool] += 1
    content: dict[str, Any] = result.structured_content or {}
    return content


async def conversation(client: Client, tally: Tally, persist: bool) -> None:
    """What one conversation does: two sessions (and a persisted one), each other tool, one delete."""
    ids: list[str] = []
    for _ in range(2):
        created = await call(client, tally, "create_session", {"ttl_seconds": TTL})
        if created is not None:
            tally.created += 1
            ids.append(str(created["id"]))
    if persist:
        kept = await call(client, tally, "create_session", {"ttl_seconds": PERSIST_TTL, "persist": True})
        if kept is not None:
            tally.persisted += 1
    await call(client, tally, "list_sessions", {"owned_only": True})
    for session_id in ids[:1]:
        await call(client, tally, "get_session", {"session_id": session_id})
        await call(client, tally, "take_screenshot", {"session_id": session_id})
        await call(client, tally, "get_preview_link", {"session_id": session_id})
    for session_id in ids[1:]:
        await call(client, tally, "delete_session", {"session_id": session_id})


async def caller(url: str, key: str, mode: str, persist: bool, tally: Tally, gate: anyio.Semaphore) -> None:
    """Open a conversation (up to three tries: the key check itself may meet a fault), run it, end it.

    Handshake era: leaving the client sends DELETE /mcp, which ends the conversation. Stateless: nothing
    is sent; the caller just stops, and its lease runs out.
    """
    era = "handshake" if mode == "legacy" else "stateless"
    for attempt in range(3):
        began = False
        await gate.acquire()  # only the handshake is gated: a burst of 60 only measures the accept queue
        released = False
        try:
            with anyio.fail_after(CALL_TIMEOUT * 10):
                async with connect(url, key, mode) as client:
                    gate.release()
                    released = began = True
                    tally.conversations_started[era] += 1
                    await conversation(client, tally, persist)
        except Exception as exc:  # each call's own failures are tallied inside; these are open/close
            tally.open_close_failures[f"{'close' if began else 'open'}: {type(exc).__name__}"] += 1
        finally:
            if not released:
                gate.release()
        if began:
            tally.ended_at.append(time.time())
            return
        await anyio.sleep(0.2 * (attempt + 1))
    tally.conversations_not_started[era] += 1


# -- what the fake saw ----------------------------------------------------------------------------------


def pending(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Sessions still open at the fake that the server knew of and must delete."""
    return [
        s
        for s in state["sessions"]
        if s["status"] in ("creating", "ready") and s["ttl_seconds"] != PERSIST_TTL and s["create_answered"]
    ]


async def wait_for_deletes(http: httpx2.AsyncClient, api_url: str, bound: float) -> tuple[int, float]:
    """Poll the fake until nothing is pending or ``bound`` seconds pass: (still pending, seconds waited)."""
    started = time.perf_counter()
    while True:
        left = pending(await fake_state(http, api_url))
        waited = time.perf_counter() - started
        if not left or waited >= bound:
            return len(left), waited
        await anyio.sleep(0.25)


def summarize(state: dict[str, Any], tally: Tally, last_end: float) -> dict[str, Any]:
    sessions = state["sessions"]
    persisted = [s for s in sessions if s["ttl_seconds"] == PERSIST_TTL]
    others = [s for s in sessions if s["ttl_seconds"] != PERSIST_TTL]
    open_states = ("creating", "ready")
    deletes = [s["deleted_at"] for s in others if s["deleted_at"] is not None]
    leaked = [s["id"] for s in others if s["status"] in open_states and s["create_answered"]]
    faults = {kind: sum(state["faults"].get(kind, {}).values()) for kind in FAULT_KINDS}
    by_method: Counter[str] = Counter()
    for per_method in state["faults"].values():
        by_method.update(per_method)
    return {
        "sessions_created": len(sessions),
        "sessions_created_seen_by_callers": tally.created + tally.persisted,
        "persisted_created": len(persisted),
        "persisted_kept": sum(1 for s in persisted if s["status"] in open_states),
        "sessions_leaked": len(leaked),
        "leaked_ids": leaked[:20],
        "orphaned_unanswered": sum(
            1 for s in others if s["status"] in open_states and not s["create_answered"]
        ),
        "seconds_last_end_to_last_delete": round(max(0.0, max(deletes) - last_end), 2) if deletes else None,
        "faults_injected": {**faults, "total": sum(faults.values())},
        "faults_by_method": dict(by_method),
        "faults_by_kind_and_method": state["faults"],
        "api_requests": state["requests"],
    }


def log_facts(log: Path) -> dict[str, Any]:
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    return {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "error_lines": sum(1 for line in lines if " ERROR " in line or line.startswith("ERROR")),
        "warning_lines": sum(1 for line in lines if " WARNING " in line or line.startswith("WARNING")),
        "last_lines": lines[-15:],
    }


# -- the run ------------------------------------------------------------------------------------------


async def soak(plan: Plan, result: dict[str, Any]) -> None:
    if plan.stateless > len(KEYS):
        raise ValueError(f"at most {len(KEYS)} stateless callers (one key each)")
    tally = Tally()
    fault_options = [
        *("--fault-rate", str(plan.fault_rate), "--fault-seed", str(plan.seed)),
        *("--slow-seconds", str(plan.slow_s)),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        async with (
            fake_api(keys=KEYS, extra=fault_options) as fake,
            chaser_server(fake.url, plan, Path(tmp)) as server,
            httpx2.AsyncClient(timeout=10) as http,
        ):
            started = time.perf_counter()
            gate = anyio.Semaphore(10)
            with anyio.fail_after(600):
                async with anyio.create_task_group() as tg:
                    for i in range(plan.handshake):
                        key, persist = KEYS[i % len(KEYS)], i % 10 == 0
                        tg.start_soon(caller, server.url, key, "legacy", persist, tally, gate)
                    for j in range(plan.stateless):
                        tg.start_soon(caller, server.url, KEYS[j], "auto", j == 0, tally, gate)
            conversations_s = time.perf_counter() - started
            last_end = max(tally.ended_at) if tally.ended_at else time.time()
            print("... every conversation ended; waiting for the deletes", file=sys.stderr, flush=True)
            still_pending, waited = await wait_for_deletes(http, fake.url, plan.wait_s)
            healthz = (await http.get(server.url.removesuffix("/mcp") + "/healthz")).status_code
            exit_code, shutdown_s = await sigterm(server.process)
            final = await fake_state(http, fake.url)
            result["server_log"] = log_facts(server.log)
    result["conversations"] = {
        "handshake": plan.handshake,
        "stateless": plan.stateless,
        "started": dict(tally.conversations_started),
        "not_started": dict(tally.conversations_not_started),
        "seconds": round(conversations_s, 1),
    }
    result["calls"] = {
        "total": sum(tally.calls.values()),
        "ok": sum(tally.ok.values()),
        "tool_errors": sum(tally.tool_errors.values()),
        "client_failures": sum(tally.call_failures.values()),
        "by_tool": dict(tally.calls),
        "tool_errors_by_tool": dict(tally.tool_errors),
        "client_failures_by_type": dict(tally.call_failures),
    }
    result["conversations"]["open_close_failures"] = dict(tally.open_close_failures)
    result["after_end"] = {
        "waited_s": round(waited, 1),
        "pending_when_the_wait_ended": still_pending,
        "healthz_before_stop": healthz,
        "server_exit_code": exit_code,
        "server_shutdown_s": round(shutdown_s, 2),
    }
    result["outcome"] = summarize(final, tally, last_end)


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    result = new_result("bench_fault_soak", quick=quick, machine=describe_machine("httpx2", "uvicorn"))
    result["plan"] = asdict(plan)
    result["fault_kinds"] = list(FAULT_KINDS)
    await soak(plan, result)
    return result


def report(result: dict[str, Any]) -> None:
    plan, c, calls, after, o = (
        result["plan"],
        result["conversations"],
        result["calls"],
        result["after_end"],
        result["outcome"],
    )
    m = result["machine"]
    load = f"{m['load_average']} -> {result['load_average_at_end']}"
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {load}")
    print(
        f"{c['handshake']} handshake-era conversations + {c['stateless']} stateless callers, "
        f"{plan['fault_rate']:.0%} of API requests faulted (seed {plan['seed']}), lease {plan['lease_s']:g} s"
    )
    print(
        f"  conversations started {c['started']}, not started {c['not_started']}, in {c['seconds']} s; "
        f"failures opening or closing one {c['open_close_failures']}"
    )
    print(
        f"  calls {calls['total']}: ok {calls['ok']}, tool errors {calls['tool_errors']}, "
        f"client failures {calls['client_failures']} {calls['client_failures_by_type']}"
    )
    faults = o["faults_injected"]
    print(
        f"  faults injected {faults['total']} of {sum(o['api_requests'].values())} API requests: "
        + ", ".join(f"{k} {v}" for k, v in faults.items() if k != "total")
    )
    print(f"  faults by method {o['faults_by_method']}")
    print(
        f"  sessions created {o['sessions_created']} (persisted {o['persisted_created']}, kept "
        f"{o['persisted_kept']}); orphaned by unanswered creates {o['orphaned_unanswered']}"
    )
    print(
        f"  after the end: waited {after['waited_s']} s, "
        f"{after['pending_when_the_wait_ended']} still pending; "
        f"/healthz {after['healthz_before_stop']}; SIGTERM -> exit {after['server_exit_code']} in "
        f"{after['server_shutdown_s']} s"
    )
    print(
        f"  SESSIONS LEAKED: {o['sessions_leaked']}; last conversation end -> last successful DELETE: "
        f"{o['seconds_last_end_to_last_delete']} s"
    )
    log = result["server_log"]
    print(f"  server log: {log['tracebacks']} tracebacks, {log['error_lines']} ERROR lines")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the soak ran to the end (leaks are in the result), 1 when it crashed."""
    parser = bench_arguments(__doc__, quick_help="4 + 2 conversations (seconds)")
    parser.add_argument("--fault-rate", type=float, help="share of API requests faulted (0.1)")
    parser.add_argument("--seed", type=int, help="seed of the fault draws (7)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.fault_rate is not None:
        plan = Plan(**{**asdict(plan), "fault_rate": args.fault_rate})
    if args.seed is not None:
        plan = Plan(**{**asdict(plan), "seed": args.seed})
    result = anyio.run(run, plan, args.quick)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
