"""act and JavaScript dialogs: a tap that opens one says so, the dialog stays open (and blocks
other actions) until accept_dialog or dismiss_dialog, whose answer the page receives."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, act_error, assert_one_sentence, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_a_confirm_is_reported_and_accepting_it_tells_the_page_yes(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("dialogs.html"))
    answer = await act(page_client, session, "tap", "#delete")
    assert 'A confirm dialog opened: "Delete the item?"' in answer, answer
    answer = await act(page_client, session, "accept_dialog")
    assert answer.startswith("Accepted the confirm dialog"), answer
    assert "Result: deleted" in await page_text(page_client, session)


async def test_dismissing_a_confirm_tells_the_page_no(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("dialogs.html"))
    await act(page_client, session, "tap", "#delete")
    await act(page_client, session, "dismiss_dialog")
    assert "Result: kept" in await page_text(page_client, session)


async def test_a_prompt_is_answered_with_the_value(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("dialogs.html"))
    answer = await act(page_client, session, "tap", "#rename")
    assert "prompt dialog" in answer and '"New name?"' in answer and "Old name" in answer, answer
    answer = await act(page_client, session, "accept_dialog", value="Shiny")
    assert 'with "Shiny"' in answer, answer
    assert "Result: renamed to Shiny" in await page_text(page_client, session)


async def test_while_a_dialog_is_open_other_actions_are_refused_saying_how_to_answer_it(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("dialogs.html"))
    await act(page_client, session, "tap", "#save")
    error = await act_error(page_client, session, "tap", "#delete")
    assert "accept_dialog or dismiss_dialog" in error, error
    assert_one_sentence(error)
    await act(page_client, session, "accept_dialog")
    assert "Result: alert closed" in await page_text(page_client, session)


async def test_answering_when_no_dialog_is_open_is_one_sentence(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("dialogs.html"))
    error = await act_error(page_client, session, "dismiss_dialog")
    assert "No dialog is open" in error, error
    assert_one_sentence(error)
