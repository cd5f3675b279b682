"""act in a shop behind a cookie banner: a covered button, the banner dismissed, a filter that
re-renders the list, taps that add to the cart, and a ref that went stale with the old list."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, act_error, assert_one_sentence, page_text, ref_in
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio

RED_SNEAKERS = "button[aria-label='Add Red sneakers to cart']"


async def test_a_tap_on_a_covered_button_names_the_banner_and_taps_nothing(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    error = await act_error(page_client, session, "tap", RED_SNEAKERS)
    assert "covered by" in error, error
    assert "Cookie consent" in error or "We use cookies" in error, error  # the banner, named
    assert "dismiss" in error
    assert_one_sentence(error)
    assert "Cart: 0 items" in await page_text(page_client, session)


async def test_after_the_banner_is_dismissed_the_same_tap_adds_to_the_cart(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    await act(page_client, session, "tap", "#accept-cookies")
    answer = await act(page_client, session, "tap", RED_SNEAKERS)
    assert answer.startswith("Tapped"), answer
    await act(page_client, session, "tap", RED_SNEAKERS)
    text = await page_text(page_client, session)
    assert "Cart: 2 items" in text and "Last added: Red sneakers" in text


async def test_select_picks_an_option_by_label_and_the_list_re_renders(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    await act(page_client, session, "tap", "#reject-cookies")
    answer = await act(page_client, session, "select", "#filter", "Hats")
    assert '"Hats"' in answer, answer
    text = await page_text(page_client, session)
    assert "Sun hat" in text and "Red sneakers" not in text


async def test_select_by_value_works_too(page_client: Client, session: str, pages_site: PagesSite) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    await act(page_client, session, "tap", "#reject-cookies")
    await act(page_client, session, "select", "#filter", "bags")
    assert "Canvas tote" in await page_text(page_client, session)


async def test_select_with_no_such_option_lists_the_options(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    error = await act_error(page_client, session, "select", "#filter", "Gloves")
    assert '"All", "Shoes", "Hats", "Bags"' in error, error
    assert_one_sentence(error)


async def test_a_ref_from_the_list_before_a_re_render_is_stale_and_taps_nothing(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shop.html"))
    await act(page_client, session, "tap", "#accept-cookies")
    old_ref = ref_in(await act(page_client, session, "tap", RED_SNEAKERS))
    await act(page_client, session, "select", "#filter", "Shoes")  # Red sneakers is rendered again
    error = await act_error(page_client, session, "tap", old_ref)
    assert "take a new snapshot" in error, error
    assert_one_sentence(error)
    assert "Cart: 1 item" in await page_text(page_client, session)
    # the ref the error asks for works: the re-rendered button, found anew
    await act(page_client, session, "tap", RED_SNEAKERS)
    assert "Cart: 2 items" in await page_text(page_client, session)
