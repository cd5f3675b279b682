"""act scroll: an infinite feed loads more as it is scrolled, until the wanted post appears."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, page_text, text_appears
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_scrolling_down_an_infinite_feed_loads_posts_until_the_wanted_one_appears(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("feed.html"))
    assert "Post 45" not in await page_text(page_client, session)
    loaded_more = False
    for _ in range(40):  # bounded: ten posts a load, each screen ~7 posts
        answer = await act(page_client, session, "scroll", value="down")
        loaded_more = loaded_more or "loaded more content" in answer
        if "Post 45" in await page_text(page_client, session):
            break
    assert "Post 45" in await page_text(page_client, session)
    assert loaded_more


async def test_scroll_to_the_bottom_waits_for_the_feed_to_grow(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("feed.html"))
    answer = await act(page_client, session, "scroll", value="bottom")
    assert "loaded more content" in answer, answer
    assert "Post 20" in await page_text(page_client, session)


async def test_scroll_up_at_the_top_says_nothing_moved(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("feed.html"))
    answer = await act(page_client, session, "scroll", value="up")
    assert "nothing moved" in answer, answer


async def test_scroll_with_a_target_brings_it_into_view(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("feed.html"))
    answer = await act(page_client, session, "scroll", "#more")
    assert answer.startswith("Scrolled") and "into view" in answer, answer
    # on screen, the "Loading more" line makes the feed load the next posts
    assert "Post 20" in await text_appears(page_client, session, "Post 20")
