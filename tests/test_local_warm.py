"""One warm browser in the local backend: launched ahead of need, taken by the next create, replaced
once that session is ready, counted against the cap, never reused, killed on close."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import psutil
import pytest

from chaser_mcp.api import ChaserClient, RateLimited
from chaser_mcp.config import Settings, SettingsError
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.local.__main__ import LocalAPISettings
from chaser_mcp.local.backend import LocalBackend
from chaser_mcp.local.chromium import group_pids
from chaser_mcp.local.runtime import LocalBrowser
from tests.local_support import (
    browsers_under,
    chromium_pids_under,
    requires_chromium,
    short_temp_dir,
    wait_for_no_processes,
    wait_until,
)

pytestmark = pytest.mark.anyio

KEY = "sk-local-warm"


@pytest.fixture
def base_dir() -> Iterator[Path]:
    with short_temp_dir() as path:
        yield path


@asynccontextmanager
async def warm_api(
    base_dir: Path, *, warm: int = 1, max_sessions: int = 3, refill_delay: float = 0.0
) -> AsyncIterator[LocalAPIServer]:
    async with running_local_api(
        base_dir=base_dir, warm_browsers=warm, max_sessions=max_sessions, warm_refill_delay=refill_delay
    ) as server:
        yield server


@asynccontextmanager
async def api_client(server: LocalAPIServer) -> AsyncIterator[ChaserClient]:
    async with ChaserClient(KEY, base_url=server.base_url, timeout=30, max_retries=0) as client:
        yield client


async def launched_warm(backend: LocalBackend, *, not_pid: int | None = None) -> LocalBrowser:
    """The warm browser, once it is launched (and is not the one whose pid is ``not_pid``)."""
    await wait_until(lambda: backend.warm is not None and backend.warm.process.pid != not_pid, timeout=30)
    warm = backend.warm
    assert warm is not None
    return warm


async def ready_session(client: ChaserClient, server: LocalAPIServer) -> tuple[str, int]:
    """A new session, once ready, and its browser's pid."""
    created = await client.create_session(ttl_seconds=120)
    session = await client.get_session(created.id, wait=10)
    assert session.status == "ready", session
    browser = server.backend.get(created.id).browser
    assert browser is not None
    return created.id, browser.process.pid


# -- the setting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Settings, LocalAPISettings])
@pytest.mark.parametrize("value", ["0", "1"])
def test_warm_browsers_parses_0_and_1(cls: type[Settings | LocalAPISettings], value: str) -> None:
    settings = cls.from_env({"CHASER_LOCAL_WARM_BROWSERS": value})
    field = "local_warm_browsers" if cls is Settings else "warm_browsers"
    assert getattr(settings, field) == int(value)


@pytest.mark.parametrize("cls", [Settings, LocalAPISettings])
@pytest.mark.parametrize(
    ("value", "problem"),
    [("2", "must be between 0 and 1"), ("-1", "must be between 0 and 1"), ("yes", "whole")],
)
def test_warm_browsers_rejects_other_values_naming_the_variable_and_flag(
    cls: type[Settings | LocalAPISettings], value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        cls.from_env({"CHASER_LOCAL_WARM_BROWSERS": value})
    assert "CHASER_LOCAL_WARM_BROWSERS (--warm-browsers)" in str(caught.value)
    assert problem in str(caught.value)


def test_the_warm_browsers_flag_overrides_the_environment() -> None:
    parser = argparse.ArgumentParser()
    Settings.add_flags(parser)
    args = parser.parse_args(["--local", "--warm-browsers", "0"])
    assert Settings.from_args(args, {"CHASER_LOCAL_WARM_BROWSERS": "1"}).local_warm_browsers == 0


def test_the_command_lines_default_to_one_warm_browser_and_the_backend_to_none() -> None:
    assert Settings.from_env({}).local_warm_browsers == 1
    assert LocalAPISettings.from_env({}).warm_browsers == 1
    assert LocalBackend().warm_browsers == 0


def test_the_backend_refuses_more_than_one_warm_browser() -> None:
    with pytest.raises(ValueError, match="warm_browsers must be 0 or 1"):
        LocalBackend(warm_browsers=2)


# -- the warm browser -----------------------------------------------------------------------------


@requires_chromium
async def test_a_warm_browser_is_launched_at_start_when_enabled(base_dir: Path) -> None:
    async with warm_api(base_dir) as server:
        warm = await launched_warm(server.backend)

        assert browsers_under(base_dir) == [warm.process.pid]
        assert server.backend.open_sessions() == []


@requires_chromium
async def test_no_warm_browser_is_launched_when_set_to_zero(base_dir: Path) -> None:
    async with warm_api(base_dir, warm=0) as server, api_client(server) as client:
        _, pid = await ready_session(client, server)  # where a replacement would be launched

        assert not server.backend.has_warm
        assert browsers_under(base_dir) == [pid]


@requires_chromium
async def test_create_takes_the_warm_browser_without_a_new_launch(base_dir: Path) -> None:
    async with warm_api(base_dir) as server, api_client(server) as client:
        warm = await launched_warm(server.backend)
        before = set(browsers_under(base_dir))

        _, pid = await ready_session(client, server)

        assert pid == warm.process.pid
        assert before == {pid}


@requires_chromium
async def test_a_replacement_is_launched_only_after_the_taken_session_is_ready(base_dir: Path) -> None:
    async with warm_api(base_dir) as server, api_client(server) as client:
        taken = await launched_warm(server.backend)
        created = await client.create_session(ttl_seconds=120)
        assert not server.backend.has_warm  # taken, and its session is not ready yet: no launch

        await server.backend.get(created.id).settled.wait()
        replacement = await launched_warm(server.backend, not_pid=taken.process.pid)

        assert server.backend.get(created.id).status == "ready"
        assert sorted(browsers_under(base_dir)) == sorted([taken.process.pid, replacement.process.pid])


@requires_chromium
async def test_the_replacement_waits_the_refill_delay_so_it_does_not_compete_with_the_first_page(
    base_dir: Path,
) -> None:
    async with warm_api(base_dir, refill_delay=1.0) as server, api_client(server) as client:
        taken = await launched_warm(server.backend)
        created = await client.create_session(ttl_seconds=120)
        await server.backend.get(created.id).settled.wait()
        await anyio.sleep(0.1)  # well inside the delay

        assert not server.backend.has_warm
        replacement = await launched_warm(server.backend, not_pid=taken.process.pid)
        assert replacement.process.pid in browsers_under(base_dir)


@requires_chromium
async def test_the_warm_browser_counts_against_the_cap_and_gives_way_to_sessions(base_dir: Path) -> None:
    async with warm_api(base_dir, max_sessions=2) as server, api_client(server) as client:
        await launched_warm(server.backend)
        _, first = await ready_session(client, server)
        await launched_warm(server.backend, not_pid=first)  # one session + one warm = the cap

        _, second = await ready_session(client, server)  # takes the warm one rather than failing

        assert not server.backend.has_warm  # the cap is full with sessions: no warm browser
        assert sorted(browsers_under(base_dir)) == sorted([first, second])
        with pytest.raises(RateLimited):
            await client.create_session(ttl_seconds=120)


@requires_chromium
async def test_a_sessions_browser_is_never_reused_after_delete(base_dir: Path) -> None:
    async with warm_api(base_dir) as server, api_client(server) as client:
        await launched_warm(server.backend)
        session_id, used = await ready_session(client, server)
        await launched_warm(server.backend, not_pid=used)

        await client.delete_session(session_id)
        assert await wait_for_no_processes(lambda: group_pids(used)) == []
        _, second = await ready_session(client, server)
        third = await launched_warm(server.backend, not_pid=second)

        assert used not in (second, third.process.pid)
        assert not psutil.pid_exists(used) or psutil.Process(used).status() == psutil.STATUS_ZOMBIE


@requires_chromium
async def test_close_kills_the_warm_browser(base_dir: Path) -> None:
    async with warm_api(base_dir) as server:
        warm = await launched_warm(server.backend)
        assert group_pids(warm.process.pid)

    assert chromium_pids_under(base_dir) == []
    assert group_pids(warm.process.pid) == []
