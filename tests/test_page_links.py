"""Page links (chaser_mcp/browser/links.py): one CDP connection per session kept across calls, which
sees dialogs, navigations and new tabs, on a real local backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from chaser_mcp.api import ChaserClient
from chaser_mcp.browser.links import DialogOpen, NoDialog, PageLink, PageLinks
from chaser_mcp.browser.page import Page
from chaser_mcp.local import running_local_api
from tests.local_support import (
    LoopbackSite,
    navigate_to,
    requires_chromium,
    short_temp_dir,
    wait_for_status,
    wait_until,
    wait_until_ready,
)

pytestmark = [pytest.mark.anyio, requires_chromium]

# Full-width targets 100 CSS px apart: a confirm, a prompt, a new tab, a navigation, a plain button.
CONTROLS = """document.body.innerHTML = `
<style>.c{position:absolute;left:0;display:block;width:400px;height:90px}</style>
<button class=c style=top:0 onclick="document.title = 'confirm:' + confirm('Delete it?')">confirm</button>
<button class=c style=top:100px onclick="document.title = 'prompt:' + prompt('Your name?', 'nobody')"
 >prompt</button>
<a class=c style=top:200px href="/colour" target="_blank">tab</a>
<a class=c style=top:300px href="/text?n=2">go</a>
<button class=c style=top:400px onclick="window.pressed = (window.pressed || 0) + 1">nothing</button>`"""
CONFIRM, PROMPT, NEW_TAB, NAVIGATE, NOTHING = 45, 145, 245, 345, 445


def tap_at(y: float):  # type: ignore[no-untyped-def]
    async def tap(page: Page) -> None:
        await page.send(
            "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": 100, "y": y}]}
        )
        await page.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    return tap


@pytest.fixture(scope="module")
async def local_api() -> AsyncIterator[tuple[str, ChaserClient]]:
    with short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base) as server,
            ChaserClient("sk-links", base_url=server.base_url) as client,
        ):
            yield server.base_url, client


@pytest.fixture
async def cdp_url(local_api: tuple[str, ChaserClient], site: LoopbackSite) -> AsyncIterator[str]:
    _, client = local_api
    created = await client.create_session(ttl_seconds=300)
    try:
        ready = await wait_until_ready(client, created.id)
        assert ready.cdp_url is not None
        await navigate_to(ready.cdp_url, site.url("/button"))
        yield ready.cdp_url
    finally:
        await client.delete_session(created.id)


@asynccontextmanager
async def running_pool(idle_timeout: float = 60.0) -> AsyncIterator[PageLinks]:
    """A pool whose run() owns its links, as a transport runs it."""
    pool = PageLinks(idle_timeout=idle_timeout)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run)
        await wait_until(lambda: pool._tasks is not None)
        yield pool
        tg.cancel_scope.cancel()


async def controls(link: PageLink) -> None:
    await link.page.evaluate(CONTROLS)


async def test_a_dialog_an_action_opens_is_reported_and_stays_open_for_a_later_call(cdp_url: str) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            outcome = await link.perform(tap_at(CONFIRM), timeout=10)
        assert outcome.dialog is not None
        assert (outcome.dialog.type, outcome.dialog.message) == ("confirm", "Delete it?")
        async with links.use("k", cdp_url, timeout=10) as link:
            assert link.dialog == outcome.dialog
            with pytest.raises(DialogOpen, match="accept_dialog or dismiss_dialog"):
                link.check_no_dialog()
            dialog, after = await link.answer_dialog(True, timeout=10)
        assert dialog.message == "Delete it?"
        assert after.title == "confirm:true"
        assert after.dialog is None


async def test_dismissing_a_confirm_gives_the_page_false(cdp_url: str) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            await link.perform(tap_at(CONFIRM), timeout=10)
            _, after = await link.answer_dialog(False, timeout=10)
        assert after.title == "confirm:false"


async def test_a_prompt_is_answered_with_the_given_text(cdp_url: str) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            outcome = await link.perform(tap_at(PROMPT), timeout=10)
            assert outcome.dialog is not None and outcome.dialog.default_prompt == "nobody"
            _, after = await link.answer_dialog(True, "Ada", timeout=10)
        assert after.title == "prompt:Ada"


async def test_answering_when_no_dialog_is_open_is_refused(cdp_url: str) -> None:
    async with running_pool() as links, links.use("k", cdp_url, timeout=10) as link:
        with pytest.raises(NoDialog, match="No dialog is open"):
            await link.answer_dialog(True, timeout=10)


async def test_a_tap_on_a_link_returns_once_the_next_page_has_loaded(
    cdp_url: str, site: LoopbackSite
) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            outcome = await link.perform(tap_at(NAVIGATE), timeout=10)
        assert outcome.navigated and not outcome.new_tab
        assert (outcome.url, outcome.title) == (site.url("/text?n=2"), "Long read")


async def test_a_tab_the_page_opens_becomes_the_current_page_and_is_a_phone(
    cdp_url: str, site: LoopbackSite
) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            opener = link.page.target_id
            outcome = await link.perform(tap_at(NEW_TAB), timeout=10)
            assert outcome.new_tab
            assert (outcome.url, outcome.title) == (site.url("/colour"), "Colour block")
            assert link.page.target_id != opener
            assert await link.page.evaluate("innerWidth") == 412
        async with links.use("k", cdp_url, timeout=10) as link:  # later calls use the new tab
            assert await link.page.evaluate("location.pathname") == "/colour"


async def test_an_action_that_changes_nothing_reports_no_navigation(cdp_url: str, site: LoopbackSite) -> None:
    async with running_pool() as links:
        async with links.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            outcome = await link.perform(tap_at(NOTHING), timeout=10)
            assert await link.page.evaluate("window.pressed") == 1
        assert not (outcome.navigated or outcome.new_tab or outcome.dialog)
        assert outcome.url == site.url("/button")


async def test_calls_reuse_one_link_and_two_first_calls_at_once_open_only_one(cdp_url: str) -> None:
    async with running_pool() as links:
        seen: list[PageLink] = []

        async def use() -> None:
            async with links.use("k", cdp_url, timeout=10) as link:
                seen.append(link)

        async with anyio.create_task_group() as tg:
            tg.start_soon(use)
            tg.start_soon(use)
        await use()
        assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
        assert len(links) == 1


async def test_a_link_ends_when_its_session_is_deleted(
    local_api: tuple[str, ChaserClient], site: LoopbackSite
) -> None:
    async with running_pool() as links:
        _, client = local_api
        created = await client.create_session(ttl_seconds=300)
        ready = await wait_until_ready(client, created.id)
        assert ready.cdp_url is not None
        async with links.use("gone", ready.cdp_url, timeout=10):
            pass
        assert len(links) == 1
        await client.delete_session(created.id)
        await wait_for_status(client, created.id, "closed")
        with anyio.fail_after(10):
            await wait_until(lambda: len(links) == 0)


async def test_an_idle_link_closes_but_never_while_a_dialog_is_open(cdp_url: str) -> None:
    pool = PageLinks(idle_timeout=0.3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run)
        await wait_until(lambda: pool._tasks is not None)
        async with pool.use("k", cdp_url, timeout=10) as link:
            await controls(link)
            await link.perform(tap_at(CONFIRM), timeout=10)
        await anyio.sleep(1.5)  # well past the idle timeout: the open dialog keeps it
        assert len(pool) == 1
        async with pool.use("k", cdp_url, timeout=10) as link:
            await link.answer_dialog(True, timeout=10)
        with anyio.fail_after(10):
            await wait_until(lambda: len(pool) == 0)
        tg.cancel_scope.cancel()


async def test_without_a_running_pool_a_link_lasts_for_one_block(cdp_url: str) -> None:
    pool = PageLinks()
    async with pool.use("k", cdp_url, timeout=10) as link:
        assert await link.page.evaluate("1 + 1") == 2
    assert link.closed
    assert len(pool) == 0
