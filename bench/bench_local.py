"""Measure the local backend on this machine: create->ready, navigate, screenshots, memory, delete.

    python bench/bench_local.py [--rounds 5] [--sessions 3]

Everything goes through the same paths a user's requests take (ChaserClient against
the local API on loopback, browsing.navigate over the session's cdp_url), except the
JPEG screenshot, which the API does not offer and is taken from the session's browser
directly. Prints medians (and min-max) plus the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from chaser_mcp.api import ChaserClient, Session
from chaser_mcp.browsing import navigate
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


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=functools.partial(server.serve_forever, 0.05), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


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


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(next(line.split()[1] for line in handle if line.startswith("MemTotal")))
            memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration):
        pass
    chromium = find_chromium()
    version = subprocess.run(
        [chromium, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{platform.platform()}; {cpu} x{os.cpu_count()}{memory}; {version}; "
        f"Python {platform.python_version()}"
    )


async def timed(action: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await action()
    return (time.perf_counter() - started) * 1000, result


async def wait_ready(client: ChaserClient, session_id: str) -> Session:
    while True:
        session = await client.get_session(session_id)
        if session.status != "creating":
            return session
        await asyncio.sleep(0.005)


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    if not values:
        return f"{name:<34} n/a"
    return (
        f"{name:<34} median {statistics.median(values):8.1f} {unit}"
        f"   (min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"
    )


async def run(rounds: int, sessions: int) -> None:
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    print(f"machine: {machine()}")
    with serve_page() as url, tempfile.TemporaryDirectory(prefix="clb-", dir="/tmp") as base:
        async with (
            running_local_api(base_dir=Path(base), max_sessions=max(sessions, 1)) as server,
            ChaserClient("bench", base_url=server.base_url) as client,
        ):
            for _ in range(rounds):
                started = time.perf_counter()
                created = await client.create_session(ttl_seconds=300)
                record("POST /v1/sessions (201)", (time.perf_counter() - started) * 1000)
                session = await wait_ready(client, created.id)
                record("create -> ready", (time.perf_counter() - started) * 1000)
                assert session.cdp_url is not None
                ms, _ = await timed(functools.partial(navigate, session.cdp_url, url))
                record("navigate (first, loopback page)", ms)
                ms, _ = await timed(functools.partial(navigate, session.cdp_url, url))
                record("navigate (again)", ms)
                browser = server.backend.get(session.id).browser
                assert browser is not None
                await client.screenshot(session.id)  # warm-up
                for _ in range(3):
                    ms, png = await timed(functools.partial(client.screenshot, session.id))
                    record("screenshot PNG via API 1082x2402", ms)
                    ms, jpeg = await timed(
                        functools.partial(browser.screenshot, image_format="jpeg", quality=80)
                    )
                    record("screenshot JPEG q80 direct", ms)
                record("PNG size", len(png) / 1024)
                record("JPEG size", len(jpeg) / 1024)
                await asyncio.sleep(2)  # let the renderer settle before measuring memory
                record("PSS, one session (page loaded)", pss_mib(group_pids(browser.process.pid)))
                ms, _ = await timed(functools.partial(client.delete_session, session.id))
                record("DELETE (browser fully gone)", ms)

            if sessions > 1:
                ids = []
                for _ in range(sessions):
                    created = await client.create_session(ttl_seconds=300)
                    ids.append(created.id)
                pids: list[int] = []
                for session_id in ids:
                    ready = await wait_ready(client, session_id)
                    assert ready.cdp_url is not None
                    await navigate(ready.cdp_url, url)
                await asyncio.sleep(3)
                for session_id in ids:
                    browser = server.backend.get(session_id).browser
                    assert browser is not None
                    pids.extend(group_pids(browser.process.pid))
                total = pss_mib(pids)
                record(f"PSS, {sessions} sessions at once (total)", total)
                record(f"PSS, {sessions} sessions at once (each)", total / sessions)
                for session_id in ids:
                    await client.delete_session(session_id)

    for name, values in results.items():
        unit = "KiB" if "size" in name else "MiB" if name.startswith("PSS") else "ms"
        print(summary(name, values, unit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="sessions created one after another")
    parser.add_argument("--sessions", type=int, default=3, help="sessions open at once for the memory figure")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.sessions))


if __name__ == "__main__":
    main()
