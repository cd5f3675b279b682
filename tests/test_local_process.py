"""The local API as its own process: a hard kill must not leave a single browser behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from chaser_mcp.api import APIStatusError, ChaserClient
from chaser_mcp.local.chromium import group_pids
from tests.local_support import (
    browsers_under,
    chromium_pids_under,
    entries,
    requires_chromium,
    short_temp_dir,
    wait_for_no_processes,
    wait_until_ready,
)

pytestmark = [pytest.mark.anyio, requires_chromium]


@pytest.fixture
def base_dir() -> Iterator[Path]:
    with short_temp_dir() as path:
        yield path


@dataclass(frozen=True)
class LocalAPIProcess:
    process: Process
    url: str
    key: str  # minted by the server and printed on its stdout


@asynccontextmanager
async def local_api_process(base_dir: Path) -> AsyncIterator[LocalAPIProcess]:
    """``python -m chaser_mcp.local`` on a free port, without CHASER_LOCAL_KEY.

    No warm browser, so the browsers under ``base_dir`` are exactly the sessions' (tests count them).
    """
    env = {name: value for name, value in os.environ.items() if name != "CHASER_LOCAL_KEY"}
    process = await anyio.open_process(
        [
            *(sys.executable, "-m", "chaser_mcp.local", "--port", "0", "--warm-browsers", "0"),
            *("--base-dir", str(base_dir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        with anyio.fail_after(30):
            async for chunk in TextReceiveStream(process.stdout):
                for line in chunk.splitlines():
                    name, _, value = line.partition("=")
                    printed[name] = value.strip()
                if "CHASER_BASE_URL" in printed:
                    break
        assert "CHASER_BASE_URL" in printed, "the local API never printed its URL"
        yield LocalAPIProcess(process, printed["CHASER_BASE_URL"], printed["CHASER_KEY"])
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.move_on_after(10):
            await process.wait()


async def test_without_a_configured_key_it_mints_one_and_refuses_every_other(base_dir: Path) -> None:
    async with local_api_process(base_dir) as server:
        async with ChaserClient("sk-guessed", base_url=server.url, max_retries=0) as stranger:
            with pytest.raises(APIStatusError) as caught:
                await stranger.list_sessions()
        async with ChaserClient(server.key, base_url=server.url, max_retries=0) as owner:
            assert (await owner.list_sessions()).data == []
    assert caught.value.status == 401
    assert len(server.key) >= 32


async def test_kill_9_of_the_server_leaves_no_browser_process(base_dir: Path) -> None:
    async with local_api_process(base_dir) as server:
        process = server.process
        async with ChaserClient(server.key, base_url=server.url, max_retries=0) as client:
            for _ in range(2):
                created = await client.create_session(ttl_seconds=600)
                await wait_until_ready(client, created.id)
        mains = browsers_under(base_dir)
        assert len(mains) == 2
        assert all(group_pids(main) for main in mains)
        os.kill(process.pid, signal.SIGKILL)
        with anyio.fail_after(10):
            await process.wait()
        # The parent-death signal kills each browser; its helpers follow on their own.
        assert await wait_for_no_processes(lambda: chromium_pids_under(base_dir), timeout=10) == []
        assert (
            await wait_for_no_processes(lambda: [p for m in mains for p in group_pids(m)], timeout=10) == []
        )
    # Only the profile dirs stay behind, and the next server sweeps them away at startup.
    assert len(entries(base_dir)) == 2
    async with local_api_process(base_dir):
        assert entries(base_dir) == []


async def test_sigterm_closes_every_browser_and_removes_their_profiles_before_exit(base_dir: Path) -> None:
    async with local_api_process(base_dir) as server:
        process = server.process
        async with ChaserClient(server.key, base_url=server.url, max_retries=0) as client:
            created = await client.create_session(ttl_seconds=600)
            await wait_until_ready(client, created.id)
        mains = browsers_under(base_dir)
        assert len(mains) == 1
        process.terminate()
        with anyio.fail_after(20):
            await process.wait()
        assert chromium_pids_under(base_dir) == []
        assert group_pids(mains[0]) == []
        assert entries(base_dir) == []


# A process that launches one browser without setpriv (the ctypes prctl fallback), prints its pid, waits.
_FALLBACK_LAUNCHER = """
import asyncio, sys
from pathlib import Path
from chaser_mcp.local import chromium
chromium._setpriv_with_pdeathsig = lambda: None
async def main():
    async with chromium.launch_browser(base_dir=Path(sys.argv[1])) as browser:
        print(browser.pid, flush=True)
        await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_without_setpriv_the_prctl_fallback_still_ties_the_browser_to_its_parent(
    base_dir: Path,
) -> None:
    process = await anyio.open_process(
        [sys.executable, "-c", _FALLBACK_LAUNCHER, str(base_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = (await process.stdout.receive()).decode().strip()
        browser = int(line)
        command = (await anyio.Path(f"/proc/{browser}/cmdline").read_bytes()).split(b"\0")
        assert not command[0].endswith(b"setpriv")
        assert group_pids(browser)
        process.kill()
        with anyio.fail_after(10):
            await process.wait()
        assert await wait_for_no_processes(lambda: group_pids(browser), timeout=10) == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
