"""Benchmark the stdio server: tool-call overhead, cold start, and cleanup when the conversation ends.

Every number is measured beside a reference taken in the same run, interleaved, so a busy machine
slows both sides alike and the ratio stays meaningful:

1. overhead: ``get_session`` through ``python -m chaser_mcp`` (SDK ``Client`` over
   ``StdioServerParameters``, legacy and auto mode) against the same GET sent directly with httpx2 to
   the same fake API process. Target: at most 2 ms added at the median. Beside both, a bare
   ``MCPServer`` echo tool over the same transport: what chaser adds above the SDK's own round trip
   plus the GET (median chaser - median GET - median echo). Target: at most 0.5 ms. The same in CPU,
   which a busy machine disturbs less: chaser's server CPU per call - the echo server's - the client
   CPU of the direct GET.
2. cold start: spawn -> answered ``tools/list`` for ``python -m chaser_mcp`` against a bare
   ``MCPServer`` with one trivial tool. Target: at most 1.2x.
3. cleanup: stdin closed -> process exited with 50 owned sessions and 50 ms of API latency, against
   the same server owning none (the exit floor). Target: under 1 s (concurrent, not 50 x 50 ms).

The fake API runs as its own process so it never shares the GIL with the client being timed.

    python -m bench.bench_stdio            # the full run (about 75 s on a quiet 2-core machine)
    python -m bench.bench_stdio --quick    # a smoke run of every step (seconds; the test suite runs it)

The result is written as JSON to bench/results/ (not committed) before it is printed.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from bench.bench_http import cpu_seconds
from bench.common import (
    REPO_ROOT,
    bench_arguments,
    describe_machine,
    fake_api,
    new_result,
    percentile,
    shown,
    write_result,
)
from tests.fake_chaser import DEFAULT_KEY
from tests.stdio_process import SERVER_COMMAND, StdioServer, chaser_env, cleanup_summaries

OVERHEAD_TARGET_MS = 2.0
OVER_ECHO_TARGET_MS = 0.5
COLD_START_TARGET_RATIO = 1.2
CLEANUP_TARGET_S = 1.0
CLEANUP_LATENCY = 0.05
# Must never load on a stdio start-up: Pillow (screenshots only), the HTTP transport, the local
# browser backend and its websockets. uvicorn/starlette are not listed: mcp itself imports them.
UNWANTED_AT_STARTUP = (
    "PIL",
    "websockets",
    "chaser_mcp.transports.http",
    "chaser_mcp.local",
    "chaser_mcp.browser.cdp",
    "chaser_mcp.browser.browsing",
    "chaser_mcp.images",
)

BARE_SERVER = '''\
"""The reference for cold start: an MCPServer with one trivial tool, served over stdio."""
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


server.run()
'''

ECHO_SERVER = '''\
"""The reference for a tool call: an MCPServer whose one tool echoes its argument, over stdio."""
from mcp.server.mcpserver import MCPServer

server = MCPServer("echo", log_level="WARNING")


@server.tool()
def echo(session_id: str) -> str:
    """Answer with the argument."""
    return session_id


server.run()
'''


@dataclass(frozen=True)
class Repetitions:
    overhead_calls: int
    overhead_warmup: int
    cold_starts: int
    cleanups: int
    cleanup_sessions: int
    warm_up: bool = True  # one untimed cold start of each server first (warms the page cache)


FULL = Repetitions(overhead_calls=500, overhead_warmup=50, cold_starts=21, cleanups=9, cleanup_sessions=50)
QUICK = Repetitions(
    overhead_calls=20, overhead_warmup=5, cold_starts=1, cleanups=1, cleanup_sessions=10, warm_up=False
)


# -- statistics -------------------------------------------------------------------------------------


def describe(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "p90": percentile(samples, 0.9),
        "min": min(samples),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


# -- the machine ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return describe_machine("httpx2")


# -- the fake API, as its own process ----------------------------------------------------------------


def api_client(base_url: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=30.0
    )


# -- 1. tool-call overhead ----------------------------------------------------------------------------


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line contains ``marker`` (from /proc)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text()
            ppid = int(fields[fields.rindex(")") + 2 :].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if ppid == me and marker in cmdline:
            return int(stat.parent.name)
    raise RuntimeError(f"no child process runs {marker!r}")


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def bench_overhead(reps: Repetitions) -> dict[str, Any]:

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        echo_path = Path(tmp) / "echo_server.py"
        echo_path.write_text(ECHO_SERVER)
        async with fake_api() as fake, api_client(fake.url) as http:
            for mode in ("legacy", "auto"):
                results[mode] = await overhead_in_mode(mode, reps, fake.url, http, echo_path)
    return results


async def overhead_in_mode(
    mode: str, reps: Repetitions, url: str, http: httpx2.AsyncClient, echo_path: Path
) -> dict[str, Any]:
    """``get_session`` through chaser-mcp, the bare GET and the bare echo tool, interleaved."""
    from mcp import Client, StdioServerParameters

    created = (await http.post("/v1/sessions", json={"ttl_seconds": 3600})).raise_for_status().json()
    session_id = created["id"]
    chaser = StdioServerParameters(
        command=SERVER_COMMAND[0],
        args=list(SERVER_COMMAND[1:]),
        env=chaser_env(url, extra={"CHASER_LOG_LEVEL": "WARNING"}),
        cwd=REPO_ROOT,
    )
    bare = StdioServerParameters(command=sys.executable, args=[str(echo_path)], cwd=REPO_ROOT)
    async with Client(chaser, mode=mode) as client, Client(bare, mode=mode) as echo_client:

        async def direct() -> None:
            (await http.get(f"/v1/sessions/{session_id}")).raise_for_status()

        async def through_mcp() -> None:
            result = await client.call_tool("get_session", {"session_id": session_id})
            if result.is_error:
                raise RuntimeError(f"get_session failed: {result.content}")

        async def echo() -> None:
            result = await echo_client.call_tool("echo", {"session_id": session_id})
            if result.is_error:
                raise RuntimeError(f"echo failed: {result.content}")

        legs: dict[str, Callable[[], Awaitable[None]]] = {"direct": direct, "mcp": through_mcp, "echo": echo}
        for _ in range(reps.overhead_warmup):
            for leg in legs.values():
                await leg()
        samples: dict[str, list[float]] = {name: [] for name in legs}
        names = list(legs)
        # Each server works only during its own leg, so its CPU over the loop is its CPU for those calls.
        servers = {"mcp": child_pid(SERVER_COMMAND[-1]), "echo": child_pid(str(echo_path))}
        server_cpu = {name: cpu_seconds(pid) for name, pid in servers.items()}
        direct_cpu = 0.0
        for i in range(reps.overhead_calls):
            # Rotate which goes first, so none always runs on a warmer cache.
            for name in names[i % len(names) :] + names[: i % len(names)]:
                cpu_before = time.process_time()
                samples[name].append(await timed(legs[name]))
                if name == "direct":
                    direct_cpu += time.process_time() - cpu_before
        cpu_ms = {
            name: (cpu_seconds(pid) - server_cpu[name]) * 1000 / reps.overhead_calls
            for name, pid in servers.items()
        }
        direct_cpu_ms = direct_cpu * 1000 / reps.overhead_calls
    mcp_s, direct_s, echo_s = samples["mcp"], samples["direct"], samples["echo"]
    added = statistics.median(mcp_s) - statistics.median(direct_s)
    over_echo = added - statistics.median(echo_s)
    paired = [m - d for m, d in zip(mcp_s, direct_s, strict=True)]
    paired_over_echo = [m - d - e for m, d, e in zip(mcp_s, direct_s, echo_s, strict=True)]
    return {
        "direct_s": describe(direct_s),
        "mcp_s": describe(mcp_s),
        "echo_s": describe(echo_s),
        "added_median_s": added,
        "added_paired_median_s": statistics.median(paired),
        "added_paired_p90_s": percentile(paired, 0.9),
        "ratio_median": statistics.median(mcp_s) / statistics.median(direct_s),
        "meets_target": added * 1000 <= OVERHEAD_TARGET_MS,
        # chaser's own cost: what a get_session takes beyond the SDK's round trip and the GET itself.
        "over_echo_median_s": over_echo,
        "over_echo_paired_median_s": statistics.median(paired_over_echo),
        "meets_over_echo_target": over_echo * 1000 <= OVER_ECHO_TARGET_MS,
        "cpu_ms_per_call": {
            "chaser_server": cpu_ms["mcp"],
            "echo_server": cpu_ms["echo"],
            "direct_get": direct_cpu_ms,
        },
        "over_echo_cpu_ms": cpu_ms["mcp"] - cpu_ms["echo"] - direct_cpu_ms,
    }


# -- 2. cold start ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawned:
    wall_s: float  # spawn -> tools/list answered
    cpu_s: float  # user + system CPU of the whole process life (start-up, the requests, exit)
    stderr: str


async def spawn_to_tools_list(
    command: Sequence[str], api_url: str, env: dict[str, str] | None = None
) -> Spawned:
    """Time from spawn to the answer of ``tools/list`` (after the ``initialize`` handshake)."""
    server = StdioServer(api_url, command=command, env={"CHASER_LOG_LEVEL": "WARNING", **(env or {})})
    # Children are reaped one at a time here (the fake API, also a child, is reaped only at the
    # end), so the difference in RUSAGE_CHILDREN is this server's CPU time.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        await server.start()
        await server.initialize()
        tools = await server.request("tools/list", timeout=30)
        elapsed = time.perf_counter() - started
        if not tools.get("tools"):
            raise RuntimeError(f"{command}: tools/list came back empty")
        await server.close_stdin()
        returncode = await server.wait(15)
        stderr = server.stderr_text()
    finally:
        await server.aclose()
    if returncode != 0:
        raise RuntimeError(f"{command} exited with {returncode}:\n{stderr}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return Spawned(elapsed, cpu, stderr)


def imported_modules(importtime_stderr: str) -> dict[str, int]:
    """Module -> self import time in microseconds, from ``python -X importtime`` output."""
    modules: dict[str, int] = {}
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line[len("import time:") :].split("|")
            modules[name.strip()] = int(self_us)
    return modules


async def startup_imports(commands: dict[str, list[str]], api_url: str) -> dict[str, Any]:
    """What a real stdio start-up (through tools/list) imports that it should not, and what it adds
    over the bare server, by top-level package."""
    found: dict[str, dict[str, int]] = {}
    for name in ("chaser_mcp", "bare_mcpserver"):
        command = commands[name]
        spawned = await spawn_to_tools_list([command[0], "-X", "importtime", *command[1:]], api_url)
        found[name] = imported_modules(spawned.stderr)
    chaser, bare = found["chaser_mcp"], found["bare_mcpserver"]
    unwanted = sorted(m for m in chaser if any(m == u or m.startswith(u + ".") for u in UNWANTED_AT_STARTUP))
    extra: dict[str, int] = {}
    for module, self_us in chaser.items():
        if module not in bare:
            top = module.split(".")[0]
            extra[top] = extra.get(top, 0) + self_us
    return {
        "unwanted_imported": unwanted,
        "also_in_bare_mcpserver": sorted(
            {m.split(".")[0] for m in bare} & {"uvicorn", "starlette", "httpx2"}
        ),
        "extra_self_ms_by_package": {
            k: round(v / 1000, 1) for k, v in sorted(extra.items(), key=lambda kv: -kv[1]) if v >= 500
        },
        "extra_self_ms_total": round(sum(extra.values()) / 1000, 1),
    }


async def bench_cold_start(reps: Repetitions) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        bare_path = Path(tmp) / "bare_server.py"
        bare_path.write_text(BARE_SERVER)
        commands = {
            "chaser_mcp": list(SERVER_COMMAND),
            "chaser_mcp_journal_on": list(SERVER_COMMAND),
            "bare_mcpserver": [sys.executable, str(bare_path)],
        }
        # The default a user gets: the crash journal on (here in a scratch file, not the user's own).
        envs = {"chaser_mcp_journal_on": {"CHASER_JOURNAL": str(Path(tmp) / "journal.sqlite3")}}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        async with fake_api() as fake:
            url = fake.url
            for name, command in commands.items() if reps.warm_up else ():  # warm each, untimed
                await spawn_to_tools_list(command, url, envs.get(name))
            for i in range(reps.cold_starts):
                names = list(commands)
                order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
                for name in order:
                    spawned = await spawn_to_tools_list(commands[name], url, envs.get(name))
                    wall[name].append(spawned.wall_s)
                    cpu[name].append(spawned.cpu_s)
            imports = await startup_imports(commands, url)
    bare_wall, bare_cpu = statistics.median(wall["bare_mcpserver"]), statistics.median(cpu["bare_mcpserver"])
    result: dict[str, Any] = {"startup_imports": imports}
    for name in commands:
        result[name] = {
            "wall_s": describe(wall[name]),
            "cpu_s": describe(cpu[name]),
            "ratio_wall_median": statistics.median(wall[name]) / bare_wall,
            "ratio_cpu_median": statistics.median(cpu[name]) / bare_cpu,
            "added_wall_median_s": statistics.median(wall[name]) - bare_wall,
        }
    result["meets_target"] = (
        all(result[n]["ratio_wall_median"] <= COLD_START_TARGET_RATIO for n in commands)
        and not imports["unwanted_imported"]
    )
    return result


# -- 3. cleanup ---------------------------------------------------------------------------------------


async def stdin_close_to_exit(
    api_url: str, sessions: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Create ``sessions`` through the tool, close stdin, time until the process has exited."""
    async with StdioServer(api_url, env=env) as server:
        await server.initialize()
        calls = [
            await server.start_tool_call("create_session", {"wait_until_ready": False})
            for _ in range(sessions)
        ]
        ids = [(await server.tool_result(call, timeout=60))["id"] for call in calls]
        started = time.perf_counter()
        await server.close_stdin()
        returncode = await server.wait(30)
        elapsed = time.perf_counter() - started
        stderr = server.stderr_text()
    if returncode != 0 or "Traceback" in stderr:
        raise RuntimeError(f"the server exited with {returncode}:\n{stderr}")
    summaries = cleanup_summaries(stderr)
    logged = summaries[0] if summaries else {}
    return {
        "ids": ids,
        "exit_s": elapsed,
        "logged_cleanup_s": float(logged.get("seconds", "nan")),
        "logged_deleted": int(logged.get("deleted", 0)),
        "logged_failed": int(logged.get("failed", 0)),
    }


async def deleted_by_client(http: httpx2.AsyncClient, ids: Sequence[str]) -> int:
    """How many of ``ids`` the API shows as closed by a DELETE (``ended_reason: client_delete``)."""
    found: list[dict[str, Any]] = []

    async def fetch(session_id: str) -> None:
        found.append((await http.get(f"/v1/sessions/{session_id}")).raise_for_status().json())

    async with anyio.create_task_group() as tg:
        for session_id in ids:
            tg.start_soon(fetch, session_id)
    return sum(1 for s in found if s["status"] == "closed" and s["ended_reason"] == "client_delete")


async def bench_cleanup(reps: Repetitions) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"journal_off": {}, "journal_on": {"CHASER_JOURNAL": str(Path(tmp) / "journal.sqlite3")}}
        async with fake_api(latency=CLEANUP_LATENCY) as fake, api_client(fake.url) as http:
            url = fake.url
            for variant, env in variants.items():
                runs: list[dict[str, Any]] = []
                floor: list[float] = []
                api_deletes: list[int] = []
                for i in range(reps.cleanups):
                    # The reference: the same server owning nothing, so the rest is the cost of the deletes.
                    if i % 2 == 0:
                        run = await stdin_close_to_exit(url, reps.cleanup_sessions, env)
                        floor.append((await stdin_close_to_exit(url, 0, env))["exit_s"])
                    else:
                        floor.append((await stdin_close_to_exit(url, 0, env))["exit_s"])
                        run = await stdin_close_to_exit(url, reps.cleanup_sessions, env)
                    runs.append(run)
                    api_deletes.append(await deleted_by_client(http, run["ids"]))
                exit_s = [r["exit_s"] for r in runs]
                median_exit = statistics.median(exit_s)
                results[variant] = {
                    "exit_s": describe(exit_s),
                    "exit_with_no_sessions_s": describe(floor),
                    "added_by_cleanup_median_s": median_exit - statistics.median(floor),
                    "ratio_to_no_sessions": median_exit / statistics.median(floor),
                    "logged_cleanup_s": describe([r["logged_cleanup_s"] for r in runs]),
                    "logged_deleted": [r["logged_deleted"] for r in runs],
                    "logged_failed": [r["logged_failed"] for r in runs],
                    "api_deletes_seen": api_deletes,
                    "meets_target": median_exit < CLEANUP_TARGET_S
                    and all(n == reps.cleanup_sessions for n in api_deletes),
                }
    return {
        "sessions": reps.cleanup_sessions,
        "api_latency_s": CLEANUP_LATENCY,
        "sequential_lower_bound_s": reps.cleanup_sessions * CLEANUP_LATENCY,
        **results,
        "meets_target": all(results[v]["meets_target"] for v in results),
    }


# -- the run ------------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), load {m['load_average']}")
    print(
        f"         Python {m['python']}, mcp {m['mcp']}, chaser-mcp {m['chaser_mcp']}, httpx2 {m['httpx2']}"
    )
    print()
    print(
        f"1. get_session round trip (median of {result['repetitions']['overhead_calls']} calls, interleaved)"
    )
    for mode, r in result["overhead"].items():
        print(
            f"   {mode:<6} through stdio {ms(r['mcp_s']['median'])} (p90 {ms(r['mcp_s']['p90'])})"
            f" | direct httpx2 {ms(r['direct_s']['median'])} (p90 {ms(r['direct_s']['p90'])})"
            f" | added {ms(r['added_median_s'])} (paired p90 {ms(r['added_paired_p90_s'])})"
            f", {r['ratio_median']:.1f}x -> {verdict(r['meets_target'])} (<= {OVERHEAD_TARGET_MS:g} ms)"
        )
        print(
            f"          bare echo tool {ms(r['echo_s']['median'])} | chaser above echo + GET"
            f" {ms(r['over_echo_median_s'])} (paired {ms(r['over_echo_paired_median_s'])})"
            f" -> {verdict(r['meets_over_echo_target'])} (<= {OVER_ECHO_TARGET_MS:g} ms)"
        )
        c = r["cpu_ms_per_call"]
        print(
            f"          CPU per call: chaser server {c['chaser_server']:.2f} ms, echo server"
            f" {c['echo_server']:.2f} ms, direct GET (client) {c['direct_get']:.2f} ms"
            f" | chaser above echo + GET {r['over_echo_cpu_ms']:.2f} ms"
        )
    c = result["cold_start"]
    print(
        f"2. cold start, spawn -> tools/list answered (median of {c['chaser_mcp']['wall_s']['n']}, "
        "interleaved; CPU = the whole process life)"
    )
    for name in ("chaser_mcp", "chaser_mcp_journal_on", "bare_mcpserver"):
        r = c[name]
        print(
            f"   {name:<22} {ms(r['wall_s']['median'])} (p90 {ms(r['wall_s']['p90'])})"
            f" {r['ratio_wall_median']:.2f}x | CPU {ms(r['cpu_s']['median'])} {r['ratio_cpu_median']:.2f}x"
        )
    imports = c["startup_imports"]
    print(
        f"   unwanted at start-up: {imports['unwanted_imported'] or 'none'} | extra imports vs bare: "
        f"{imports['extra_self_ms_total']} ms self, {imports['extra_self_ms_by_package']}"
    )
    print(
        f"   -> {verdict(c['meets_target'])} "
        f"(<= {COLD_START_TARGET_RATIO:g}x wall, nothing unwanted imported)"
    )
    k = result["cleanup"]
    print(
        f"3. cleanup, stdin closed -> exited, {k['sessions']} sessions, "
        f"{k['api_latency_s'] * 1000:g} ms API latency (median of {k['journal_off']['exit_s']['n']}; "
        f"sequential would be >= {k['sequential_lower_bound_s']:g} s)"
    )
    for variant in ("journal_off", "journal_on"):
        v = k[variant]
        print(
            f"   {variant:<11} {ms(v['exit_s']['median'])} (p90 {ms(v['exit_s']['p90'])})"
            f" | owning nothing {ms(v['exit_with_no_sessions_s']['median'])}"
            f" | cleanup as logged {ms(v['logged_cleanup_s']['median'])}"
            f" | DELETEs landed {min(v['api_deletes_seen'])}-{max(v['api_deletes_seen'])}/{k['sessions']}"
            f" -> {verdict(v['meets_target'])} (< {CLEANUP_TARGET_S:g} s, all deleted)"
        )


async def run(reps: Repetitions, quick: bool) -> dict[str, Any]:
    result = new_result("bench_stdio", quick=quick, machine=machine())
    result["repetitions"] = asdict(reps)
    for name, bench in (("overhead", bench_overhead), ("cold_start", bench_cold_start)):
        print(f"... {name}", file=sys.stderr, flush=True)
        result[name] = await bench(reps)
    print("... cleanup", file=sys.stderr, flush=True)
    result["cleanup"] = await bench_cleanup(reps)
    result["meets_targets"] = (
        all(result["overhead"][m]["meets_target"] for m in result["overhead"])
        and result["cold_start"]["meets_target"]
        and result["cleanup"]["meets_target"]
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the run completed (the verdicts are in the result), 1 when it crashed."""
    args = bench_arguments(__doc__, quick_help="a smoke run of every step (seconds)").parse_args(argv)
    result = anyio.run(run, QUICK if args.quick else FULL, args.quick)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
