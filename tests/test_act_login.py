"""act on a login form: fill, a wrong password shown by the page, a checkbox, submit, the next page."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.act_support import act, page_text
from tests.page_support import PagesSite, open_in

pytestmark = pytest.mark.anyio


async def test_a_wrong_password_shows_the_pages_error_and_stays_on_the_form(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    await act(page_client, session, "fill", "#email", "ada@example.com")
    await act(page_client, session, "fill", "#password", "wrong")
    answer = await act(page_client, session, "tap", "button[type=submit]")
    assert "Now at" not in answer
    assert "Wrong email or password." in await page_text(page_client, session)


async def test_a_login_fills_ticks_submits_and_lands_on_the_next_page(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    await act(page_client, session, "fill", "#email", "ada@example.com")
    await act(page_client, session, "fill", "#password", "correct horse")
    await act(page_client, session, "check", "#remember")
    answer = await act(page_client, session, "tap", "button[type=submit]")
    assert "welcome.html" in answer and '"Welcome"' in answer, answer
    text = await page_text(page_client, session)
    assert "Welcome, ada@example.com" in text
    assert "Remembered: yes" in text


async def test_fill_replaces_the_value_and_fires_input_and_change_like_a_person(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    await act(page_client, session, "fill", "#email", "first@example.com")
    answer = await act(page_client, session, "fill", "#email", "ada@example.com")
    assert 'now holds "ada@example.com"' in answer, answer
    assert "Email events: input change" in await page_text(page_client, session)


async def test_a_password_fill_never_echoes_the_secret(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    answer = await act(page_client, session, "fill", "#password", "correct horse")
    assert "correct horse" not in answer
    assert "13 characters" in answer, answer


async def test_type_sends_keystrokes_and_enter_submits_the_form(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("login.html"))
    await act(page_client, session, "type", "#email", "ada@example.com")
    await act(page_client, session, "type", "#password", "correct horse")
    answer = await act(page_client, session, "press", value="Enter")
    assert "welcome.html" in answer, answer
    assert "Welcome, ada@example.com" in await page_text(page_client, session)
