"""Benchmark the streamable HTTP server: throughput, latency and memory per idle conversation.

Every number is measured beside a reference taken in the same run, so a busy machine slows both
sides alike and the ratio stays meaningful. Three servers run side by side, each its own process:

* ``chaser_mcp``: ``python -m chaser_mcp --transport http``; its ``get_session`` tool does a real
  HTTP round trip to the fake Chaser API (another process, 0 ms added latency).
* ``bare``: an ``MCPServer`` with one trivial async tool (``mcp.run("streamable-http")``): the
  SDK's own floor.
* ``bare_api``: the same bare server with one tool that sends the same GET to the same fake API
  with a plain ``httpx2.AsyncClient`` and returns the JSON. chaser/bare_api is chaser's own cost
  (gate, conversations, typed models); bare_api/bare is what the API round trip costs.

1. throughput: C concurrent clients x K ``tools/call`` each, in both protocol eras (SDK
   ``Client(url, mode="legacy")`` and ``mode="auto"``, which negotiates 2026-07-28). The load
   generator is a separate process from every server; rounds alternate the order of the servers
   (up to 5, fewer once 180 s have gone by). Also reported: each server's own CPU time per call
   (from /proc), which a busy machine disturbs far less than calls/s, and the calls/s that CPU
   time would allow on one core. Target: chaser at least 0.8x the bare server's calls/s.
2. memory: N handshake-era conversations that initialize and then sit idle, each holding its
   ``Mcp-Session-Id``; the server's RSS and PSS (``/proc/<pid>/smaps_rollup``) before and after,
   per conversation; then once more after each conversation has made one tool call.

    python -m bench.bench_http            # the full run (3-5 minutes on 2 cores)
    python -m bench.bench_http --quick    # a smoke run of every step (seconds; the test suite runs it)

The result is written as JSON to bench/results/ before it is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process

from bench.common import (
    REPO_ROOT,
    bench_arguments,
    describe_machine,
    fake_api,
    new_result,
    percentile,
    shown,
    stop,
    write_result,
)
from tests.fake_chaser import DEFAULT_KEY
from tests.http_server import listening_port

THROUGHPUT_TARGET_RATIO = 0.8
CPU_TARGET_RATIO = 1.5  # server CPU per get_session, at most this many bare trivial calls
SERVERS = ("chaser_mcp", "bare", "bare_api")
ERAS = ("legacy", "auto")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# log_level="WARNING" keeps uvicorn's access log off, as chaser_mcp has it (access_log=False):
# otherwise the reference would pay for a log line per request that chaser does not.
BARE_SERVER = '''\
"""The reference: an MCPServer with one trivial async tool, over streamable HTTP."""
import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("bare", log_level="WARNING")


@mcp.tool()
async def ping() -> str:
    """Answer pong."""
    return "pong"


mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
'''

BARE_API_SERVER = '''\
"""The reference with the API call: one tool that GETs a session from the fake API with httpx2."""
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.server.mcpserver import Context, MCPServer


@asynccontextmanager
async def lifespan(server: MCPServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=os.environ["BENCH_API_URL"],
        headers={"Authorization": "Bearer " + os.environ["BENCH_API_KEY"]},
    ) as http:
        yield http


mcp = MCPServer("bare_api", log_level="WARNING", lifespan=lifespan)


@mcp.tool()
async def get_session(session_id: str, ctx: Context) -> dict[str, Any]:
    """Get a session from the API, as it is."""
    http: httpx2.AsyncClient = ctx.request_context.lifespan_context
    response = await http.get(f"/v1/sessions/{session_id}")
    response.raise_for_status()
    return response.json()


mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
'''


@dataclass(frozen=True)
class Plan:
    rounds: int
    min_rounds: int
    budget_s: float  # no new round starts after this long (a busy shared box must not run for ever)
    clients: int
    calls: int
    idle_conversations: int
    warm_up: bool  # an untimed pass over every server and era first
    settle_s: float  # pause before each memory reading


FULL = Plan(
    rounds=5,
    min_rounds=2,
    budget_s=180,
    clients=50,
    calls=20,
    idle_conversations=100,
    warm_up=True,
    settle_s=1.0,
)
QUICK = Plan(
    rounds=1, min_rounds=1, budget_s=60, clients=4, calls=3, idle_conversations=5, warm_up=False, settle_s=0.2
)


# -- /proc --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (every thread), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of a process in KiB, from /proc/<pid>/smaps_rollup."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss", "Private_Dirty"):
            found[name.lower()] = int(rest.split()[0])
    return found


def machine() -> dict[str, Any]:
    return describe_machine("httpx2", "uvicorn")


# -- the load generator (runs as its own process: ``bench_http.py --worker load ...``) -----------------


async def load_worker(args: argparse.Namespace) -> dict[str, Any]:
    """C clients connect and warm up; then all start together and make K calls each, timed."""
    from mcp import Client

    arguments: dict[str, Any] = json.loads(args.arguments)
    watched = {"server": args.server_pid, **({"fake": args.fake_pid} if args.fake_pid else {})}
    latencies: list[float] = []
    errors: list[str] = []
    connected = 0
    finished = 0
    all_connected, go, all_finished, release = anyio.Event(), anyio.Event(), anyio.Event(), anyio.Event()
    connecting = anyio.Semaphore(10)  # a burst of 50 handshakes at once only measures the accept queue

    async def one_client() -> None:
        nonlocal connected, finished
        async with connecting:
            client = Client(args.url, mode=args.mode)
            await client.__aenter__()
        try:
            await client.call_tool(args.tool, arguments)  # warm-up, untimed
            connected += 1
            if connected == args.clients:
                all_connected.set()
            await go.wait()
            for _ in range(args.calls):
                started = time.perf_counter()
                result = await client.call_tool(args.tool, arguments)
                latencies.append(time.perf_counter() - started)
                if result.is_error:
                    errors.append(str(result.content)[:200])
            finished += 1
            if finished == args.clients:
                all_finished.set()
            # Closing sends DELETE /mcp: wait until every client is done so no teardown is timed.
            await release.wait()
        finally:
            await client.__aexit__(None, None, None)

    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for _ in range(args.clients):
                tg.start_soon(one_client)
            await all_connected.wait()
            cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            own_before = time.process_time()
            started = time.perf_counter()
            go.set()
            await all_finished.wait()
            wall = time.perf_counter() - started
            own_cpu = time.process_time() - own_before
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
            release.set()
    return {
        "calls": len(latencies),
        "wall_s": wall,
        "latencies_s": latencies,
        "errors": errors[:5],
        "error_count": len(errors),
        "cpu_s": {**cpu, "load_generator": own_cpu},
    }


async def idle_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Open N handshake-era conversations that sit idle, reading the server's memory around them."""
    from mcp import Client

    arguments: dict[str, Any] = json.loads(args.arguments)
    settle = args.settle
    # Warm-up: the first conversation pays for lazy imports and first-use caches, not per conversation.
    for _ in range(2):
        async with Client(args.url, mode="legacy") as warm:
            await warm.call_tool(args.tool, arguments)
    await anyio.sleep(settle)
    readings = {"before": memory_kib(args.server_pid)}
    with anyio.fail_after(300):
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(Client(args.url, mode="legacy"))
                for _ in range(args.conversations)
            ]
            await anyio.sleep(settle)
            readings["idle"] = memory_kib(args.server_pid)
            # One after another: concurrent calls would grow the API client's connection pool (a
            # process-wide cost, up to 100 sockets), which is not state any conversation keeps.
            for client in clients:
                await client.call_tool(args.tool, arguments)
            await anyio.sleep(settle)
            readings["after_one_call"] = memory_kib(args.server_pid)
        await anyio.sleep(settle)
        readings["closed"] = memory_kib(args.server_pid)
    return {"conversations": args.conversations, "kib": readings}


def run_worker(args: argparse.Namespace) -> int:
    worker = load_worker if args.worker == "load" else idle_worker
    result = anyio.run(worker, args)
    print(json.dumps(result), flush=True)
    return 0


# -- processes ---------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    name: str
    url: str
    pid: int
    tool: str
    arguments: dict[str, Any]


async def wait_for_port(process: Process, log: Path) -> int:
    """The port a server started with port 0 bound, once it listens (no pick-release-bind race)."""
    with anyio.fail_after(30):
        while not (port := listening_port(process.pid)):
            if process.returncode is not None:
                tail = (await anyio.Path(log).read_text(errors="replace"))[-2000:]
                raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
            await anyio.sleep(0.05)
    return port


@asynccontextmanager
async def server(name: str, api_url: str, session_id: str, tmp: Path) -> AsyncIterator[RunningServer]:
    """One of the three servers on a port the OS picks; the fake API's key is the server's key."""
    port = 0
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if name == "chaser_mcp":
        command = [sys.executable, "-m", "chaser_mcp", "--transport", "http", "--port", str(port)]
        env |= {"CHASER_KEY": DEFAULT_KEY, "CHASER_BASE_URL": api_url, "CHASER_JOURNAL": "off"}
        tool, arguments = "get_session", {"session_id": session_id}
    elif name == "bare":
        script = tmp / "bare_server.py"
        script.write_text(BARE_SERVER)
        command = [sys.executable, str(script), str(port)]
        tool, arguments = "ping", {}
    else:
        script = tmp / "bare_api_server.py"
        script.write_text(BARE_API_SERVER)
        command = [sys.executable, str(script), str(port)]
        env |= {"BENCH_API_URL": api_url, "BENCH_API_KEY": DEFAULT_KEY}
        tool, arguments = "get_session", {"session_id": session_id}
    log = tmp / f"{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as stderr:
        process = await anyio.open_process(command, env=env, stdout=stderr, stderr=stderr, cwd=REPO_ROOT)
    try:
        port = await wait_for_port(process, log)
        yield RunningServer(name, f"http://127.0.0.1:{port}/mcp", process.pid, tool, arguments)
    finally:
        await stop(process)
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            print(f"--- {name} stderr ---\n{text[-3000:]}", file=sys.stderr)


async def worker(kind: str, target: RunningServer, **options: Any) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "bench.bench_http", "--worker", kind),
        *("--url", target.url, "--server-pid", str(target.pid)),
        *("--tool", target.tool, "--arguments", json.dumps(target.arguments)),
    ]
    for option, value in options.items():
        command += [f"--{option.replace('_', '-')}", str(value)]
    done = await anyio.run_process(command, check=False, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker against {target.name} failed:\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


# -- 1. throughput ----------------------------------------------------------------------------------


async def bench_throughput(plan: Plan, tmp: Path) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {e: [] for e in ERAS} for s in SERVERS}
    async with fake_api() as fake, AsyncExitStack() as stack:
        api_url, fake_pid = fake.url, fake.pid
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
            created = await http.post(f"{api_url}/v1/sessions", json={"ttl_seconds": 3600})
            session_id = created.raise_for_status().json()["id"]
        targets = {
            name: await stack.enter_async_context(server(name, api_url, session_id, tmp)) for name in SERVERS
        }
        # An untimed pass first: a fresh process pays for lazy imports, first-use caches and growing
        # its API connection pool, and only the first server of the first round would be charged.
        for era in ERAS if plan.warm_up else ():
            for name in SERVERS:
                print(f"... warm-up {era:<6} {name}", file=sys.stderr, flush=True)
                await worker(
                    "load", targets[name], mode=era, clients=plan.clients, calls=3, fake_pid=fake_pid
                )
        started = time.monotonic()
        for round_no in range(plan.rounds):
            if round_no >= plan.min_rounds and time.monotonic() - started > plan.budget_s:
                print(f"... time budget spent after {round_no} rounds", file=sys.stderr, flush=True)
                break
            for era in ERAS:
                # Rotate who goes first each round, so no server always runs on a warmer (or busier) box.
                order = SERVERS[round_no % 3 :] + SERVERS[: round_no % 3]
                for name in order:
                    print(
                        f"... round {round_no + 1}/{plan.rounds} {era:<6} {name}", file=sys.stderr, flush=True
                    )
                    run = await worker(
                        "load",
                        targets[name],
                        mode=era,
                        clients=plan.clients,
                        calls=plan.calls,
                        fake_pid=fake_pid,
                    )
                    if run["error_count"]:
                        raise RuntimeError(f"{name} ({era}) answered tool errors: {run['errors']}")
                    runs[name][era].append(run)
    return summarize_throughput(runs, plan)


def summarize_throughput(runs: dict[str, dict[str, list[dict[str, Any]]]], plan: Plan) -> dict[str, Any]:
    summary: dict[str, Any] = {"by_server": {}, "ratios": {}}
    for name, eras in runs.items():
        summary["by_server"][name] = {}
        for era, era_runs in eras.items():
            latencies = [x for run in era_runs for x in run["latencies_s"]]
            rates = [run["calls"] / run["wall_s"] for run in era_runs]
            calls = sum(run["calls"] for run in era_runs)
            cpu = {
                who: sum(run["cpu_s"][who] for run in era_runs if who in run["cpu_s"])
                for who in ("server", "fake", "load_generator")
            }
            wall = sum(run["wall_s"] for run in era_runs)
            summary["by_server"][name][era] = {
                "calls": calls,
                "calls_per_s": statistics.median(rates),
                "calls_per_s_each_round": rates,
                "p50_s": statistics.median(latencies),
                "p99_s": percentile(latencies, 0.99),
                "server_cpu_ms_per_call": 1000 * cpu["server"] / calls,
                "fake_api_cpu_ms_per_call": 1000 * cpu["fake"] / calls,
                "load_generator_cpu_ms_per_call": 1000 * cpu["load_generator"] / calls,
                # Cores each process kept busy while the calls ran (2 is the whole machine).
                "cores_used": {who: seconds / wall for who, seconds in cpu.items()},
            }
    for era in ERAS:
        by = {name: summary["by_server"][name][era] for name in SERVERS}
        paired = [
            c["calls"] / c["wall_s"] / (b["calls"] / b["wall_s"])
            for c, b in zip(runs["chaser_mcp"][era], runs["bare"][era], strict=True)
        ]
        summary["ratios"][era] = {
            "chaser_over_bare": by["chaser_mcp"]["calls_per_s"] / by["bare"]["calls_per_s"],
            "chaser_over_bare_each_round": paired,
            "chaser_over_bare_api": by["chaser_mcp"]["calls_per_s"] / by["bare_api"]["calls_per_s"],
            "bare_api_over_bare": by["bare_api"]["calls_per_s"] / by["bare"]["calls_per_s"],
            "server_cpu_per_call_chaser_over_bare": by["chaser_mcp"]["server_cpu_ms_per_call"]
            / by["bare"]["server_cpu_ms_per_call"],
            "server_cpu_per_call_chaser_over_bare_api": by["chaser_mcp"]["server_cpu_ms_per_call"]
            / by["bare_api"]["server_cpu_ms_per_call"],
            "meets_target": by["chaser_mcp"]["calls_per_s"] / by["bare"]["calls_per_s"]
            >= THROUGHPUT_TARGET_RATIO,
            "meets_cpu_target": by["chaser_mcp"]["server_cpu_ms_per_call"]
            <= CPU_TARGET_RATIO * by["bare"]["server_cpu_ms_per_call"],
        }
    rounds = len(runs["bare"]["legacy"])
    summary["plan"] = {"clients": plan.clients, "calls_per_client": plan.calls, "rounds": rounds}
    return summary


# -- 2. memory per idle conversation -------------------------------------------------------------------


async def bench_memory(plan: Plan, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with fake_api() as fake:
        api_url = fake.url
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as http:
            created = await http.post(f"{api_url}/v1/sessions", json={"ttl_seconds": 3600})
            session_id = created.raise_for_status().json()["id"]
        for name in ("chaser_mcp", "bare"):  # fresh processes: a heap grown by the load run would hide growth
            print(f"... memory {name}", file=sys.stderr, flush=True)
            async with server(name, api_url, session_id, tmp) as target:
                run = await worker(
                    "idle", target, conversations=plan.idle_conversations, settle=plan.settle_s
                )
            n = run["conversations"]
            kib = run["kib"]
            results[name] = {
                "conversations": n,
                "kib": kib,
                "idle_rss_kib_per_conversation": (kib["idle"]["rss"] - kib["before"]["rss"]) / n,
                "idle_pss_kib_per_conversation": (kib["idle"]["pss"] - kib["before"]["pss"]) / n,
                "after_call_rss_kib_per_conversation": (kib["after_one_call"]["rss"] - kib["before"]["rss"])
                / n,
                "after_call_pss_kib_per_conversation": (kib["after_one_call"]["pss"] - kib["before"]["pss"])
                / n,
            }
    return results


# -- the run ------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(result: dict[str, Any], command: str) -> None:
    m = result["machine"]
    t = result["throughput"]
    plan = t["plan"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable),"
        f" load at start {m['load_average']}"
    )
    print(
        f"         Python {m['python']}, mcp {m['mcp']}, chaser-mcp {m['chaser_mcp']},"
        f" uvicorn {m['uvicorn']}, httpx2 {m['httpx2']};"
        f" load at end {result['load_average_at_end']}"
    )
    print(
        "         cores: no pinning; the server under load, the load generator and the fake API are\n"
        "         separate processes the kernel spreads over the cores (the other servers sit idle in\n"
        "         epoll). 'cores' below is CPU seconds / wall seconds per process while the calls ran."
    )
    print()
    print(
        f"1. throughput: {plan['clients']} concurrent clients x {plan['calls_per_client']} tools/call, "
        f"{plan['rounds']} interleaved round(s) per server and era (median calls/s; latencies pooled)"
    )
    for era in ERAS:
        for name in SERVERS:
            r = t["by_server"][name][era]
            cores = r["cores_used"]
            print(
                f"   {era:<6} {name:<10} {r['calls_per_s']:7.1f} calls/s  p50 {ms(r['p50_s']):>9}"
                f"  p99 {ms(r['p99_s']):>9}  server CPU {r['server_cpu_ms_per_call']:.2f} ms/call"
                f"  | cores: server {cores['server']:.2f}, load gen {cores['load_generator']:.2f},"
                f" fake API {cores['fake']:.2f}"
                # A load generator busier than the server means the server could go faster than this.
                + (" [load-generator bound]" if cores["load_generator"] >= cores["server"] else "")
            )
        q = t["ratios"][era]
        print(
            f"   {era:<6} chaser/bare {q['chaser_over_bare']:.2f}x "
            f"(each round {', '.join(f'{x:.2f}' for x in q['chaser_over_bare_each_round'])})"
            f" -> {'meets' if q['meets_target'] else 'MISSES'} target (>= {THROUGHPUT_TARGET_RATIO:g}x);"
            f" chaser/bare_api {q['chaser_over_bare_api']:.2f}x; bare_api/bare {q['bare_api_over_bare']:.2f}x"
        )
        print(
            f"   {era:<6} server CPU per call: chaser/bare {q['server_cpu_per_call_chaser_over_bare']:.2f}x,"
            f" -> {'meets' if q['meets_cpu_target'] else 'MISSES'} target (<= {CPU_TARGET_RATIO:g}x);"
            f" chaser/bare_api {q['server_cpu_per_call_chaser_over_bare_api']:.2f}x"
        )
    print()
    mem = result["memory"]
    print(
        f"2. memory per idle handshake-era conversation ({mem['chaser_mcp']['conversations']} conversations)"
    )
    for name in ("chaser_mcp", "bare"):
        r = mem[name]
        print(
            f"   {name:<10} idle: RSS {r['idle_rss_kib_per_conversation']:.1f} KiB, "
            f"PSS {r['idle_pss_kib_per_conversation']:.1f} KiB | after one call each: "
            f"RSS {r['after_call_rss_kib_per_conversation']:.1f} KiB, "
            f"PSS {r['after_call_pss_kib_per_conversation']:.1f} KiB "
            f"(server RSS before {r['kib']['before']['rss'] / 1024:.1f} MiB)"
        )
    print()
    print("3. for the README:")
    print()
    # The ceiling is what the server's own CPU per call allows on one core, whatever the load generator
    # manages: on a shared 2-core box it is the steadier of the two throughput figures.
    print("| streamable HTTP | era | calls/s | vs bare | p50 | p99 | server CPU/call | 1-core ceiling |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for era in ERAS:
        bare_rate = t["by_server"]["bare"][era]["calls_per_s"]
        for name in SERVERS:
            r = t["by_server"][name][era]
            print(
                f"| {name} | {era} | {r['calls_per_s']:.0f} | {r['calls_per_s'] / bare_rate:.2f}x "
                f"| {ms(r['p50_s'])} | {ms(r['p99_s'])} | {r['server_cpu_ms_per_call']:.2f} ms "
                f"| {1000 / r['server_cpu_ms_per_call']:.0f} calls/s |"
            )
    print()
    print("| idle conversation (legacy) | RSS/conv | PSS/conv | after one call: RSS/conv |")
    print("|---|---:|---:|---:|")
    for name in ("chaser_mcp", "bare"):
        r = mem[name]
        print(
            f"| {name} | {r['idle_rss_kib_per_conversation']:.1f} KiB "
            f"| {r['idle_pss_kib_per_conversation']:.1f} KiB "
            f"| {r['after_call_rss_kib_per_conversation']:.1f} KiB |"
        )
    print()
    print(
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, mcp {m['mcp']}; "
        f"{plan['clients']} clients x {plan['calls_per_client']} calls; chaser's tool does a real GET to a "
        "loopback fake API (0 ms latency), bare's does nothing, bare_api's does the same GET."
    )
    print(f"rerun: {command}")


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    result = new_result("bench_http", quick=quick, machine=machine())
    result["plan"] = asdict(plan)
    with tempfile.TemporaryDirectory() as tmp:
        result["throughput"] = await bench_throughput(plan, Path(tmp))
        result["memory"] = await bench_memory(plan, Path(tmp))
    result["meets_targets"] = all(result["throughput"]["ratios"][era]["meets_target"] for era in ERAS)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the run completed (the verdicts are in the result), 1 when it crashed."""
    parser = bench_arguments(__doc__, quick_help="a smoke run of every step (seconds)")
    # The workers: this same module, started by the run as separate processes.
    parser.add_argument("--worker", choices=("load", "idle"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fake-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--arguments", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="legacy", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--conversations", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--settle", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    result = anyio.run(run, QUICK if args.quick else FULL, args.quick)
    path = write_result(result, args.out)
    report(result, result["command"])
    print(f"\nwritten: {shown(path)}")
    print(f"runtime: {result['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
