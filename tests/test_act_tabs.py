"""act on a target=_blank link: the new tab is where later tools work."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_a_link_that_opens_a_new_tab_makes_it_the_page_later_tools_use(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("tabs.html"))
    answer = await act(page_client, session, "tap", "a[target=_blank]")
    assert "new tab" in answer, answer
    await act(page_client, session, "tap", "#hi")
    assert "Hi from the help page" in await page_text(page_client, session)
