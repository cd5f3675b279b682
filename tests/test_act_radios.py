"""act on radio buttons and checkboxes: check, uncheck, already so, disabled, a styled switch."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, act_error, assert_one_sentence, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_checking_a_radio_moves_the_choice(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    answer = await act(page_client, session, "check", "input[value=large]")
    assert "checked now" in answer, answer
    assert "Size: large" in await page_text(page_client, session)


async def test_checking_what_is_already_checked_does_nothing_and_says_so(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    answer = await act(page_client, session, "check", "input[value=medium]")
    assert "already checked; nothing was done" in answer, answer


async def test_a_checkbox_checks_and_unchecks(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    await act(page_client, session, "check", "#gift")
    assert "gift wrap: yes" in await page_text(page_client, session)
    await act(page_client, session, "uncheck", "#gift")
    assert "gift wrap: no" in await page_text(page_client, session)
    assert "already unchecked" in await act(page_client, session, "uncheck", "#gift")


async def test_a_radio_cannot_be_unchecked(page_client: Client, session: str, pages_site: PagesSite) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    error = await act_error(page_client, session, "uncheck", "input[value=medium]")
    assert "check another option" in error, error
    assert_one_sentence(error)
    assert "Size: medium" in await page_text(page_client, session)


async def test_a_disabled_radio_is_refused_after_a_bounded_wait(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    error = await act_error(page_client, session, "check", "input[value=xl]")
    assert "disabled" in error, error
    assert_one_sentence(error)
    assert "Size: medium" in await page_text(page_client, session)


async def test_a_switch_whose_checkbox_is_hidden_is_checked_through_its_label(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    await act(page_client, session, "check", "#express")
    assert "express: yes" in await page_text(page_client, session)


async def test_check_on_something_that_is_not_checkable_says_to_tap_it(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("radios.html"))
    error = await act_error(page_client, session, "check", "h1")
    assert "use tap" in error, error
    assert_one_sentence(error)
