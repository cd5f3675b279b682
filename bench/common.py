"""What the benchmarks share: a description of the machine, the result file, the fake API as its own
process, and the statistics.

Every bench writes its result (with the machine, the versions and the load average) *before* it prints
anything, so a crash in reporting never loses a run; ``python -m bench`` collects them into one report.
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from tests.fake_chaser import DEFAULT_KEY
from tests.local_support import serving

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"  # gitignored: one file per run
FAKE_KEY = DEFAULT_KEY


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def describe_machine(*distributions: str) -> dict[str, Any]:
    """CPU, cores, memory, load, Python, and the versions of ``distributions`` (plus mcp and chaser-mcp)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    for name in ("mcp", "chaser-mcp", *distributions):
        info[name.replace("-", "_")] = installed(name)
    return info


def command_output(command: Sequence[str]) -> str:
    """What a version command prints, or why it could not run (never raises)."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return done.stdout.strip() or done.stderr.strip()


# -- the result file --------------------------------------------------------------------------------


def bench_arguments(description: str | None, *, quick_help: str) -> argparse.ArgumentParser:
    """The options every bench has: ``--quick`` (seconds, for the test suite) and ``--out``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    return parser


def new_result(benchmark: str, *, quick: bool, machine: dict[str, Any]) -> dict[str, Any]:
    """The envelope every result starts with; ``write_result`` completes it."""
    return {
        "benchmark": benchmark,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "command": " ".join(["python", "-m", f"bench.{benchmark}", *map(repo_relative, sys.argv[1:])]),
        "machine": machine,
        "_started": time.perf_counter(),
    }


def repo_relative(argument: str) -> str:
    """A command-line argument as a reader can reuse it: paths inside the repository relative to it."""
    path = Path(argument)
    return (
        str(path.relative_to(REPO_ROOT))
        if path.is_absolute() and path.is_relative_to(REPO_ROOT)
        else argument
    )


def write_result(result: dict[str, Any], out: Path) -> Path:
    """Write ``result`` as JSON under ``out`` (with the load average at the end and the runtime) and
    return the path. Called before anything is printed, so a crash in reporting never loses a run."""
    started = result.pop("_started", None)
    if started is not None:
        result["runtime_s"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = load_average()
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"{result['benchmark']}-{stamp}{'-quick' if result['quick'] else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


# -- statistics -------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


# -- what an image costs a model ---------------------------------------------------------------------

# Claude's vision documentation (docs.claude.com, "Images and vision", "Evaluate image size" and
# "Calculate image costs"): an image whose long edge is over 1568 px, or over about 1.15 megapixels,
# is scaled down (aspect ratio kept) before the model sees it, and costs about width * height / 750
# tokens after that. A larger screenshot therefore buys latency and bytes, never more tokens.
BILLED_MAX_LONG_EDGE = 1568
BILLED_MAX_PIXELS = 1_150_000
BILLED_PIXELS_PER_TOKEN = 750


def billed_image_size(width: int, height: int) -> tuple[int, int]:
    """The pixels the host bills for a ``width`` x ``height`` image: downscaled (never up) until the
    long edge is at most 1568 px and the area at most 1.15 megapixels, aspect ratio kept."""
    if width <= 0 or height <= 0:
        raise ValueError(f"an image has a positive size; got {width}x{height}")
    scale = min(
        1.0,
        BILLED_MAX_LONG_EDGE / max(width, height),
        math.sqrt(BILLED_MAX_PIXELS / (width * height)),
    )
    if scale >= 1.0:
        return width, height
    # Rounded down: the result must be within both limits, and a pixel less is what a resizer gives.
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def billed_image_tokens(width: int, height: int) -> int:
    """About how many input tokens a host running Claude bills for a ``width`` x ``height`` image."""
    billed_width, billed_height = billed_image_size(width, height)
    return round(billed_width * billed_height / BILLED_PIXELS_PER_TOKEN)


# -- processes ------------------------------------------------------------------------------------


async def stop(process: Process) -> None:
    """SIGTERM, then SIGKILL if it lingers; never leaves the process behind."""
    with anyio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        await process.aclose()


@dataclass(frozen=True)
class FakeAPI:
    url: str
    pid: int


@asynccontextmanager
async def fake_api(
    *, latency: float = 0.0, keys: Sequence[str] = (FAKE_KEY,), extra: Sequence[str] = ()
) -> AsyncIterator[FakeAPI]:
    """The loopback fake of the Chaser API as its own process, so it never shares the GIL with a
    client being measured; sessions are ready at once and answer after ``latency`` seconds.
    ``extra``: more command-line options of ``tests/fake_chaser.py`` (e.g. a fault mix)."""
    command = [
        *(sys.executable, "-m", "tests.fake_chaser", "--port", "0"),
        *("--ready-delay", "0", "--latency", str(latency)),
        *(arg for key in keys for arg in ("--key", key)),
        *extra,
    ]
    process = await anyio.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO_ROOT
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            url = ""
            async for chunk in TextReceiveStream(process.stdout):
                url += chunk
                if "\n" in url:
                    break
        yield FakeAPI(url.strip(), process.pid)
    finally:
        await stop(process)


@contextmanager
def serve_html(pages: Mapping[str, str]) -> Iterator[str]:
    """HTML pages by path on a free loopback port, for a bench's browser to open; yields the base URL
    (an unknown path is 404)."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = pages.get(self.path, "").encode()
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Pages, "bench-pages") as base:
        yield base


async def fake_state(http: httpx2.AsyncClient, api_url: str) -> dict[str, Any]:
    """What the fake API (its own process) saw: ``GET /_fake/state`` (tests/fake_chaser.py)."""
    state: dict[str, Any] = (await http.get(f"{api_url}/_fake/state")).raise_for_status().json()
    return state
