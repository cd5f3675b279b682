"""How long ``create_session`` keeps an agent waiting on the local backend, beyond the browser itself.

    python -m bench.bench_ready [--rounds 8]                     # in-process: lag and create -> ready
    python -m bench.bench_ready --warm-browsers 1 --rounds 8     # the same with a warm browser waiting
    python -m bench.bench_ready --spawn --rounds 3               # chaser-mcp --local over stdio, 0 vs 1

In-process, a real MCP client (in memory) calls ``create_session`` on a server wired like
``chaser-mcp --local``; for each session it reports the lag between the moment the backend marked
it ready (``ready_at``, same clock) and the moment the tool returned, and the backend's own
create -> ready. ``--spawn`` starts ``python -m chaser_mcp --local`` over stdio and times spawn ->
first page loaded (``create_session`` then ``navigate`` to a loopback page), with 0 and 1 warm
browsers. Results go to bench/results/ as JSON, then are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

from bench.common import bench_arguments, new_result, serve_html, shown, write_result
from chaser_mcp.api import ChaserClient
from chaser_mcp.config import Settings
from chaser_mcp.conversations import Conversations
from chaser_mcp.local import running_local_api
from chaser_mcp.local.chromium import group_pids
from chaser_mcp.server import ServerState, build_server

KEY = "sk-bench-ready"
PAGE = "<!doctype html><title>First page</title><p>loaded</p>"


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


async def in_process(rounds: int, warm_browsers: int | None) -> dict[str, Any]:
    """Lag (backend ready -> tool returned) and create -> ready, one session at a time."""
    options: dict[str, Any] = {} if warm_browsers is None else {"warm_browsers": warm_browsers}
    memory: dict[str, float] = {}
    lags: list[float] = []
    boots: list[float] = []
    calls: list[float] = []
    async with running_local_api(api_key=KEY, **options) as api:
        settings = Settings.model_validate(
            {"api_key": KEY, "base_url": api.base_url, "journal_enabled": False, "log_level": "WARNING"}
        )
        client = ChaserClient(KEY, base_url=api.base_url)
        state = ServerState(settings, client, Conversations(cleanup_timeout=10))
        try:
            async with Client(build_server(state)) as mcp:
                if warm_browsers:
                    await _until_warm(api.backend)
                    warm = api.backend.warm
                    assert warm is not None
                    memory = warm_memory_mib(warm.process.pid)
                for _ in range(rounds):
                    if warm_browsers:
                        await _until_warm(api.backend)
                    started = time.perf_counter()
                    result = await mcp.call_tool("create_session", {"ttl_seconds": 120})
                    returned = datetime.now(UTC)
                    calls.append(time.perf_counter() - started)
                    info = result.structured_content or {}
                    session = api.backend.get(str(info["id"]))
                    assert session.ready_at is not None, info
                    lags.append((returned - session.ready_at).total_seconds())
                    boots.append((session.ready_at - session.created_at).total_seconds())
                    await mcp.call_tool("delete_session", {"session_id": session.id})
        finally:
            await state.conversations.end_all("bench finished")
            await client.aclose()
    return {
        **({"warm_browser_memory_mib": memory} if memory else {}),
        "lag_ready_to_returned_s": stats(lags),
        "backend_create_to_ready_s": stats(boots),
        "create_session_call_s": stats(calls),
    }


def warm_memory_mib(pid: int) -> dict[str, float]:
    """USS and PSS of the warm browser's whole process group, in MiB (psutil's full memory info)."""
    uss = pss = 0
    for member in group_pids(pid):
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(member).memory_full_info()
            uss += info.uss
            pss += getattr(info, "pss", 0)
    return {"uss": round(uss / 2**20, 1), "pss": round(pss / 2**20, 1)}


async def _until_warm(backend: Any) -> None:
    """A fair round with a warm browser starts once the replacement is up (not mid-launch)."""
    with anyio.fail_after(30):
        while getattr(backend, "warm", True) is None:  # noqa: ASYNC110 - absent in old trees
            await anyio.sleep(0.02)


async def spawn_to_first_page(warm_browsers: int, url: str) -> float:
    """Spawn ``chaser-mcp --local`` and time until a first page is loaded through it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chaser_mcp", "--local", "--warm-browsers", str(warm_browsers), "--journal", "off"],
    )
    started = time.perf_counter()
    async with Client(params) as mcp:
        created = await mcp.call_tool("create_session", {"ttl_seconds": 120})
        info = created.structured_content or {}
        assert info.get("status") == "ready", created
        page = await mcp.call_tool("navigate", {"session_id": info["id"], "url": url})
        assert not page.is_error, page
        elapsed = time.perf_counter() - started
        await mcp.call_tool("delete_session", {"session_id": info["id"]})
    return elapsed


async def spawn(rounds: int) -> dict[str, Any]:
    found: dict[str, list[float]] = {"0": [], "1": []}
    with serve_html({"/first": PAGE}) as base:
        for _ in range(rounds):
            for warm in (0, 1):  # interleaved, so load drifts hit both alike
                found[str(warm)].append(await spawn_to_first_page(warm, base + "/first"))
    return {f"spawn_to_first_page_s_warm_{k}": stats(v) for k, v in found.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_arguments(__doc__, quick_help="two rounds")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warm-browsers", type=int, choices=(0, 1), default=None)
    parser.add_argument("--spawn", action="store_true", help="time chaser-mcp --local spawn -> first page")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    result = new_result("bench_ready", quick=args.quick, machine={})
    if args.spawn:
        result["steps"] = asyncio.run(spawn(rounds))
    else:
        result["warm_browsers"] = args.warm_browsers
        result["steps"] = asyncio.run(in_process(rounds, args.warm_browsers))
    path = write_result(result, args.out)
    for name, values in result["steps"].items():
        if "median" not in values:
            print(f"{name}: {values}")
            continue
        low, high = values["min"], values["max"]
        print(f"{name}: median {values['median']:.4f} (min {low:.4f}, max {high:.4f}, n {values['n']})")
    print(f"written: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
