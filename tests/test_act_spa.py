"""act in a single-page app: content that renders after the load event, pushState routes, back."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_a_tap_waits_for_a_link_the_app_renders_after_load(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("spa.html"))
    # navigate returns at the load event; the app renders its links later
    answer = await act(page_client, session, "tap", "a[data-view=profile]")
    assert "view=profile" in answer and '"App - profile"' in answer, answer
    assert "Profile: Ada Lovelace" in await page_text(page_client, session)


async def test_back_and_forward_walk_the_apps_pushstate_routes(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("spa.html"))
    await act(page_client, session, "tap", "a[data-view=profile]")
    await act(page_client, session, "tap", "a[data-view=settings]")
    answer = await act(page_client, session, "back")
    assert "view=profile" in answer, answer
    assert "Profile: Ada Lovelace" in await page_text(page_client, session)
    answer = await act(page_client, session, "forward")
    assert "view=settings" in answer, answer
    assert "Settings: dark mode off" in await page_text(page_client, session)


async def test_back_past_the_first_page_is_a_clear_error(page_client: Client, session: str) -> None:
    # a fresh session's tab has one history entry
    result = await page_client.call_tool("act", {"session_id": session, "action": "back"})
    if not result.is_error:  # the new tab may hold about:blank then the start page
        result = await page_client.call_tool("act", {"session_id": session, "action": "back"})
    assert result.is_error
    assert "no earlier page" in str(result.content[0].text)  # type: ignore[union-attr]


async def test_reload_loads_the_page_again(page_client: Client, session: str, pages_site: PagesSite) -> None:
    await open_in(page_client, session, pages_site.url("spa.html"))
    await act(page_client, session, "tap", "a[data-view=settings]")
    answer = await act(page_client, session, "reload")
    assert "Reloaded." in answer and "view=settings" in answer, answer
    await act(page_client, session, "tap", "a[data-view=home]")  # rendered again after the reload
    assert "Home: latest news" in await page_text(page_client, session)
