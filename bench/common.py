"""What the benchmarks share: a description of the machine, and the fake API as its own process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "ck_test_fake_0123456789abcdef"  # tests.fake_chaser.DEFAULT_KEY


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


def describe_machine(*distributions: str) -> dict[str, Any]:
    """CPU, cores, load, Python, and the versions of ``distributions`` (plus mcp and chaser-mcp)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    for name in ("mcp", "chaser-mcp", *distributions):
        info[name.replace("-", "_")] = installed(name)
    return info


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
async def fake_api(*, latency: float = 0.0) -> AsyncIterator[FakeAPI]:
    """The loopback fake of the Chaser API as its own process, so it never shares the GIL with a
    client being measured; sessions are ready at once and answer after ``latency`` seconds."""
    command = [
        *(sys.executable, str(REPO_ROOT / "tests" / "fake_chaser.py"), "--port", "0"),
        *("--ready-delay", "0", "--latency", str(latency), "--key", FAKE_KEY),
    ]
    process = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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
