"""act refuses bad input with one sentence, before anything is sent, and fails clearly and boundedly
on a page that cannot do what was asked."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, act_error, assert_one_sentence, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("action", "target", "value", "says"),
    [
        ("tap", None, None, "tap needs a target"),
        ("fill", "#email", None, "fill needs a value"),
        ("select", None, "Hats", "select needs a target"),
        ("back", "#email", None, "back takes no target"),
        ("tap", "#email", "x", "tap takes no value"),
        ("scroll", None, None, "scroll needs a value"),
        ("scroll", None, "sideways", "not a scroll direction"),
        ("press", None, "Hyperspace", "not a key name"),
    ],
)
async def test_a_malformed_request_is_one_sentence_and_touches_nothing(
    page_client: Client, session: str, pages_site: PagesSite, action: str, target: str, value: str, says: str
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, action, target, value)
    assert says in error, error
    assert_one_sentence(error)
    assert "Email events: none" in await page_text(page_client, session)


async def test_an_unknown_action_is_refused_naming_the_actions(page_client: Client, session: str) -> None:
    error = await act_error(page_client, session, "click", "#email")
    # the server's argument check answers, in its own words, before the tool runs
    assert "'tap'" in error and "'dismiss_dialog'" in error and "Nothing was sent" in error, error
    assert "\n" not in error


async def test_a_malformed_selector_is_one_sentence(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, "tap", "button[type=")
    assert "not a valid CSS selector" in error or "neither a ref" in error, error
    assert_one_sentence(error)


async def test_a_missing_element_fails_after_a_bounded_wait_saying_so(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, "tap", "#no-such-button")
    assert "Nothing on the page matched" in error and "within 5 s" in error, error
    assert_one_sentence(error)


async def test_a_selector_matching_several_elements_lists_their_refs(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, "fill", "input", "x")
    assert "matches 3 elements" in error and "[ref=" in error, error


async def test_fill_on_something_that_is_not_a_field_says_so(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, "fill", "h1", "x")
    assert "not a text field" in error, error
    assert_one_sentence(error)


async def test_type_without_a_target_and_nothing_focused_asks_for_a_target(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    error = await act_error(page_client, session, "type", value="hello")
    assert "pass the field as target" in error, error


async def test_acting_on_a_deleted_session_is_one_sentence(page_client: Client, session: str) -> None:
    await page_client.call_tool("delete_session", {"session_id": session})
    error = await act_error(page_client, session, "tap", "#email")
    assert session in error and "create_session" in error, error
    assert_one_sentence(error.removeprefix("Error executing tool act: "))


async def test_hover_moves_the_pointer_over_the_element(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    answer = await act(page_client, session, "hover", "button[type=submit]")
    assert answer.startswith("The pointer is over"), answer
