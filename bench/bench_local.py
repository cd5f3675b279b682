"""Measure the local backend on this machine: create->ready, navigate, screenshots, memory, delete.

    python -m bench.bench_local [--rounds 5] [--sessions 3]
    python -m bench.bench_local --quick      # one round, one session (seconds; the test suite runs it)

Everything goes through the same paths a user's requests take (ChaserClient against
the local API on loopback, browsing.navigate over the session's cdp_url), except the
JPEG screenshot, which the API does not offer and is taken from the session's browser
directly. The result (medians, min-max, the machine) is written as JSON to bench/results/ before
it is printed.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from bench.common import (
    bench_arguments,
    command_output,
    describe_machine,
    new_result,
    serve_html,
    shown,
    write_result,
)
from chaser_mcp.api import ChaserClient, Session
from chaser_mcp.browser.browsing import NavigationResult, navigate
from chaser_mcp.browser.page import open_page
from chaser_mcp.local import running_local_api
from chaser_mcp.local.chromium import find_chromium, group_pids

T = TypeVar("T")

_CARDS = "".join(
    f'<div class="card"><h2>Card {i}</h2><p>Some text for card {i}, long enough to wrap on a phone.</p>'
    f'<svg width="300" height="40"><rect width="{40 + i * 7}" height="40" '
    f'fill="#{i * 997 % 4096:03x}"/></svg></div>'
    for i in range(30)
)
PAGE = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Bench page</title><style>body{font:16px sans-serif;margin:0}"
    ".card{margin:12px;padding:12px;border-radius:12px;background:linear-gradient(135deg,#fde,#def)}"
    f"</style></head><body>{_CARDS}</body></html>"
)


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of ``pids`` in MiB (shared pages split fairly between processes)."""
    total_kib = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kib / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the live processes among ``pids`` have used since they started."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Plan:
    rounds: int  # sessions created one after another
    sessions: int  # sessions open at once for the memory figure (1: skipped)
    screenshots: int  # timed screenshots of each kind per round
    settle_s: float  # pause before a memory reading


FULL = Plan(rounds=5, sessions=3, screenshots=3, settle_s=2.0)
QUICK = Plan(rounds=1, sessions=1, screenshots=1, settle_s=0.2)


def machine() -> dict[str, Any]:
    info = describe_machine()
    info["chromium"] = command_output([find_chromium(), "--version"])
    return info


async def timed(action: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await action()
    return (time.perf_counter() - started) * 1000, result


async def open_and_navigate(cdp_url: str, url: str) -> NavigationResult:
    """What the navigate tool did per call before pages were kept open: connect, attach, load."""
    async with open_page(cdp_url) as page:
        return await navigate(page, url)


async def wait_ready(client: ChaserClient, session_id: str) -> Session:
    while True:
        session = await client.get_session(session_id)
        if session.status != "creating":
            return session
        await asyncio.sleep(0.005)


def unit_of(name: str) -> str:
    if "size" in name:
        return "KiB"
    return {"PSS": "MiB", "CPU": "s"}.get(name.split(",")[0], "ms")


def summary(name: str, values: dict[str, Any]) -> str:
    return (
        f"{name:<40} median {values['median']:8.1f} {values['unit']}"
        f"   (min {values['min']:.1f}, max {values['max']:.1f}, n={values['n']})"
    )


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    result = new_result("bench_local", quick=quick, machine=machine())
    result["plan"] = asdict(plan)
    samples: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with serve_html({"/": PAGE}) as url, tempfile.TemporaryDirectory(prefix="clb-", dir="/tmp") as base:
        async with (
            running_local_api(base_dir=Path(base), max_sessions=max(plan.sessions, 1)) as server,
            ChaserClient("bench", base_url=server.base_url) as client,
        ):
            for _ in range(plan.rounds):
                started = time.perf_counter()
                created = await client.create_session(ttl_seconds=300)
                record("POST /v1/sessions (201)", (time.perf_counter() - started) * 1000)
                session = await wait_ready(client, created.id)
                record("create -> ready", (time.perf_counter() - started) * 1000)
                assert session.cdp_url is not None
                ms, _ = await timed(functools.partial(open_and_navigate, session.cdp_url, url))
                record("navigate (first, loopback page)", ms)
                ms, _ = await timed(functools.partial(open_and_navigate, session.cdp_url, url))
                record("navigate (again)", ms)
                browser = server.backend.get(session.id).browser
                assert browser is not None
                await client.screenshot(session.id)  # warm-up
                for _ in range(plan.screenshots):
                    ms, png = await timed(functools.partial(client.screenshot, session.id))
                    record("screenshot PNG via API 1082x2402", ms)
                    ms, jpeg = await timed(
                        functools.partial(browser.screenshot, image_format="jpeg", quality=80)
                    )
                    record("screenshot JPEG q80 direct", ms)
                record("PNG size", len(png) / 1024)
                record("JPEG size", len(jpeg) / 1024)
                await asyncio.sleep(plan.settle_s)  # let the renderer settle before measuring memory
                browser_pids = group_pids(browser.process.pid)
                record("PSS, one session (page loaded)", pss_mib(browser_pids))
                # Everything the browser burnt from launch to here, taken from the agent's host on a small
                # machine (the omnibox WebUI preload alone was ~1.3 s of it).
                record("CPU, one session's browser, launch to end of round", cpu_seconds(browser_pids))
                ms, _ = await timed(functools.partial(client.delete_session, session.id))
                record("DELETE (browser fully gone)", ms)

            if plan.sessions > 1:
                ids = []
                for _ in range(plan.sessions):
                    created = await client.create_session(ttl_seconds=300)
                    ids.append(created.id)
                pids: list[int] = []
                for session_id in ids:
                    ready = await wait_ready(client, session_id)
                    assert ready.cdp_url is not None
                    await open_and_navigate(ready.cdp_url, url)
                await asyncio.sleep(plan.settle_s * 1.5)
                for session_id in ids:
                    browser = server.backend.get(session_id).browser
                    assert browser is not None
                    pids.extend(group_pids(browser.process.pid))
                total = pss_mib(pids)
                record("PSS, sessions at once (total)", total)
                record("PSS, sessions at once (each)", total / plan.sessions)
                for session_id in ids:
                    await client.delete_session(session_id)

    result["steps"] = {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "n": len(values),
            "unit": unit_of(name),
        }
        for name, values in samples.items()
    }
    return result


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"machine: {m['platform']}; {m['cpu']} x{m['cores']}, {m['memory_gib']} GiB RAM; {m['chromium']}; "
        f"Python {m['python']}; load {m['load_average']}"
    )
    for name, values in result["steps"].items():
        print(summary(name, values))


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_arguments(__doc__, quick_help="one round, one session (seconds)")
    parser.add_argument("--rounds", type=int, help=f"sessions created one after another ({FULL.rounds})")
    parser.add_argument("--sessions", type=int, help=f"sessions open at once for memory ({FULL.sessions})")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        sessions=args.sessions or plan.sessions,
        screenshots=plan.screenshots,
        settle_s=plan.settle_s,
    )
    result = asyncio.run(run(plan, args.quick))
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
