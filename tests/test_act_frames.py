"""act reaches into open shadow roots and same-origin iframes, below the fold."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_a_button_two_shadow_roots_deep_is_scrolled_to_and_tapped(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("act-shadow.html"))
    answer = await act(page_client, session, "tap", "#save")
    assert answer.startswith("Tapped"), answer
    assert "Saved from the shadow root" in await page_text(page_client, session)


async def test_a_button_inside_a_same_origin_iframe_is_tapped_at_the_right_point(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("act-frame.html"))
    answer = await act(page_client, session, "tap", "#pay")
    assert answer.startswith("Tapped"), answer
    assert "Paid from the frame" in await page_text(page_client, session)
