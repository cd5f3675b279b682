"""Finding, launching, closing and sweeping real Chromium processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from chaser_mcp.local.chromium import (
    PROFILE_PREFIX,
    BrowserLaunchError,
    BrowserNotFound,
    find_chromium,
    group_pids,
    launch_browser,
    sweep_stale_profiles,
)
from tests.local_support import (
    CHROMIUM,
    entries,
    environment_of,
    requires_chromium,
    short_temp_dir,
    wait_for_no_processes,
    wait_until,
)

pytestmark = pytest.mark.anyio


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_chaser_chrome_names_the_browser_to_use() -> None:
    assert find_chromium({"CHASER_CHROME": sys.executable, "PATH": ""}) == sys.executable


def test_a_chaser_chrome_that_is_not_executable_is_reported_with_how_to_fix_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-browser-here"
    with pytest.raises(BrowserNotFound) as caught:
        find_chromium({"CHASER_CHROME": str(missing), "PATH": ""})
    message = str(caught.value)
    assert "CHASER_CHROME" in message
    assert "apt-get install --no-install-recommends chromium" in message


def test_no_browser_anywhere_is_reported_with_how_to_install_one(tmp_path: Path) -> None:
    with pytest.raises(BrowserNotFound) as caught:
        find_chromium({"PATH": str(tmp_path)}, candidates=("chromium", "google-chrome"))
    assert "apt-get install --no-install-recommends chromium" in str(caught.value)
    assert "CHASER_CHROME" in str(caught.value)


def test_a_browser_on_path_is_found(tmp_path: Path) -> None:
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert find_chromium({"PATH": str(tmp_path)}, candidates=("chromium", "chromium-browser")) == str(fake)


@pytest.fixture
def short_base() -> Iterator[Path]:
    with short_temp_dir() as path:
        yield path


@requires_chromium
async def test_a_browser_runs_in_its_own_group_with_its_own_profile_and_temp_dir(short_base: Path) -> None:
    async with launch_browser(base_dir=short_base) as browser:
        assert os.getpgid(browser.pid) == browser.pid != os.getpgid(0)
        assert browser.profile_dir.parent == short_base
        assert browser.profile_dir.name.startswith(f"{PROFILE_PREFIX}{os.getpid()}-")
        async with browser.connect() as cdp:  # DevTools over the pipe
            assert (await cdp.send("Browser.getVersion"))["protocolVersion"] == "1.3"
        assert f"TMPDIR={browser.tmp_dir}" in environment_of(browser.pid)
        assert browser.tmp_dir.is_relative_to(browser.profile_dir)
        assert len(browser.live_pids()) > 1  # the browser and its helpers


@requires_chromium
async def test_a_browser_preloads_no_browser_ui_of_its_own(short_base: Path) -> None:
    """Headless Chromium never shows its omnibox, yet preloads its popups' WebUI in a renderer that
    burns ~1.3 s of CPU at start; they appear within half a second of launch when not disabled."""
    async with launch_browser(base_dir=short_base) as browser, browser.connect() as cdp:
        seen: list[str] = []
        targets: list[dict[str, Any]] = []
        with anyio.move_on_after(2):
            while not seen:
                targets = (await cdp.send("Target.getTargets", {"filter": [{}]}))["targetInfos"]
                seen = [t["url"] for t in targets if t["type"] == "browser_ui"]
                await anyio.sleep(0.05)
        assert seen == []
        assert [t["url"] for t in targets if t["type"] == "page"] == ["about:blank"]


@requires_chromium
async def test_close_leaves_no_process_and_no_profile_behind(tmp_path: Path) -> None:
    async with launch_browser(base_dir=tmp_path) as browser:
        pass
    assert group_pids(browser.pid) == []
    assert not browser.profile_dir.exists()
    assert browser.returncode == 0  # Browser.close over CDP is a clean exit
    assert entries(tmp_path) == []


@requires_chromium
async def test_a_block_cancelled_from_outside_still_speaks_cdp_in_its_teardown(tmp_path: Path) -> None:
    with anyio.CancelScope() as scope:
        async with launch_browser(base_dir=tmp_path) as browser, browser.connect() as cdp:
            try:
                scope.cancel()  # e.g. DELETE cancelling a session's life
                await anyio.sleep(30)
            finally:
                # The pipe and connection readers serve the block until it ends, so a shielded
                # goodbye (a live view stopping its screencast) is still answered.
                with anyio.CancelScope(shield=True):
                    version = await cdp.send("Browser.getVersion", timeout=5)
    assert scope.cancelled_caught
    assert version["protocolVersion"] == "1.3"
    assert group_pids(browser.pid) == []
    assert entries(tmp_path) == []


@requires_chromium
async def test_a_deep_base_dir_still_launches_with_a_short_temp_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60)
    async with launch_browser(base_dir=deep) as browser:
        assert not browser.tmp_dir.is_relative_to(browser.profile_dir)
        assert browser.tmp_dir.name.startswith(PROFILE_PREFIX)
    assert not browser.tmp_dir.exists()
    assert not browser.profile_dir.exists()


async def test_a_binary_that_exits_without_devtools_is_a_launch_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "bin" / "broken-browser"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'cannot start: no display' >&2\nexit 3\n")
    fake.chmod(0o755)
    base = tmp_path / "profiles"
    with pytest.raises(BrowserLaunchError) as caught:
        async with launch_browser(executable=str(fake), base_dir=base):
            pass
    assert "exited with code 3" in str(caught.value)
    assert "cannot start: no display" in str(caught.value)
    assert entries(base) == []


def test_the_sweep_removes_only_profiles_whose_owner_is_gone(tmp_path: Path) -> None:
    stale = tmp_path / f"{PROFILE_PREFIX}{_dead_pid()}-0a1b2c"
    ours = tmp_path / f"{PROFILE_PREFIX}{os.getpid()}-0a1b2c"
    living = tmp_path / f"{PROFILE_PREFIX}1-0a1b2c"  # pid 1 is always alive
    unrelated = tmp_path / "chaser-local-notes"
    for path in (stale, ours, living, unrelated):
        (path / "Default").mkdir(parents=True)
    assert sweep_stale_profiles(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (ours, living, unrelated))


@requires_chromium
async def test_the_sweep_kills_a_browser_still_running_from_a_stale_profile(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    profile = tmp_path / f"{PROFILE_PREFIX}{_dead_pid()}-0a1b2c"
    profile.mkdir()
    orphan = await anyio.open_process(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await wait_until(lambda: len(group_pids(orphan.pid)) > 1)  # it has started its helpers
        assert sweep_stale_profiles(tmp_path) == [profile]
        with anyio.fail_after(10):
            await orphan.wait()
        assert await wait_for_no_processes(lambda: group_pids(orphan.pid)) == []
    finally:
        if orphan.returncode is None:
            os.killpg(orphan.pid, 9)
            await orphan.wait()
