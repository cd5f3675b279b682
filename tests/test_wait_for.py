"""wait_for: each condition holds when the page gets there, a timeout says what the page showed, no
condition is refused, and a navigation in the middle of a wait does not end it.

tests/pages/late.html changes after its load event on a schedule set by its query string.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.mcp_support import error_text, text_of
from tests.page_support import PagesSite, call, open_in

pytestmark = pytest.mark.anyio


async def wait(client: Client, session_id: str, **conditions: Any) -> str:
    """wait_for's answer (fails the test if it is an error)."""
    result = await call(client, "wait_for", session_id=session_id, **conditions)
    assert not result.is_error, text_of(result)
    return text_of(result)


@pytest.mark.parametrize(
    ("page", "condition", "said"),
    [
        ("late.html?appear=800", {"text": "results LOADED"}, 'the text "results LOADED" is shown'),
        ("late.html?gone=800", {"text_gone": "Loading..."}, 'the text "Loading..." is gone'),
        ("late.html?appear=800", {"selector": "#results"}, '"#results" shows paragraph [ref='),
        ("late.html?push=800", {"url_contains": "step=done"}, 'the URL contains "step=done"'),
    ],
    ids=["text", "text_gone", "selector", "url_contains"],
)
async def test_each_condition_is_waited_for_until_the_page_meets_it(
    page_client: Client, session: str, pages_site: PagesSite, page: str, condition: dict[str, str], said: str
) -> None:
    await open_in(page_client, session, pages_site.url(page))  # the page changes 800 ms after its load

    answer = await wait(page_client, session, **condition)

    assert said in answer, answer
    assert '"Late page" at' in answer


async def test_text_inside_an_open_shadow_root_and_a_same_origin_iframe_counts(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html?appear=500"))

    assert "is shown" in await wait(page_client, session, text="Shadow greeting")
    assert "is shown" in await wait(page_client, session, text="Framed note")


async def test_several_conditions_must_all_hold_at_once(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html?appear=300&gone=300&push=1200"))

    answer = await wait(
        page_client, session, text="Results loaded", text_gone="Loading", url_contains="step=done"
    )

    # The text arrives first; the answer only comes once the URL has changed too.
    assert "step=done" in answer and "is shown" in answer and "is gone" in answer, answer


async def test_a_wait_outlives_a_navigation_and_holds_in_the_new_document(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    # The first document navigates 300 ms after load to a second one, whose text comes 500 ms later.
    await open_in(
        page_client,
        session,
        pages_site.url("late.html?goafter=300&go=late.html%3Fappear%3D500%26text%3DArrived"),
    )

    answer = await wait(page_client, session, text="Arrived", timeout_seconds=15)

    assert "through 1 navigation" in answer, answer
    assert "text=Arrived" in answer


async def test_a_timeout_says_what_did_not_happen_and_what_the_page_showed(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html?appear=100&gone=100"))

    message = error_text(
        await call(page_client, "wait_for", session_id=session, text="Secret hidden", timeout_seconds=1)
    )

    # Hidden text is in the DOM but not on screen: it never counts as shown.
    assert 'Waited 1 s but the text "Secret hidden" never appeared' in message, message
    assert "late.html" in message and '"Late page"' in message
    assert "Results loaded" in message  # the excerpt of what the page showed
    assert message.count(". ") == 0, "one sentence"


async def test_a_timeout_on_a_selector_says_whether_anything_matched(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html"))

    hidden = error_text(
        await call(page_client, "wait_for", session_id=session, selector="#hidden", timeout_seconds=0.5)
    )
    missing = error_text(
        await call(page_client, "wait_for", session_id=session, selector=".nope", timeout_seconds=0.5)
    )

    assert '"#hidden" matches 1 element but none is shown' in hidden, hidden
    assert 'nothing matches ".nope"' in missing, missing


async def test_a_wait_without_any_condition_is_refused(page_client: Client, session: str) -> None:
    message = error_text(await call(page_client, "wait_for", session_id=session, timeout_seconds=1))

    assert message.endswith(
        "Nothing to wait for: give at least one of text, text_gone, selector or url_contains."
    ), message


async def test_a_malformed_selector_is_an_error_at_once(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html"))

    message = error_text(
        await call(page_client, "wait_for", session_id=session, selector="div[", timeout_seconds=30)
    )

    assert message.endswith('"div[" is not a valid CSS selector; fix it and wait again.')


async def test_a_timeout_out_of_bounds_is_refused_before_anything_is_sent(
    page_client: Client, session: str
) -> None:
    message = error_text(
        await call(page_client, "wait_for", session_id=session, text="x", timeout_seconds=600)
    )

    assert "timeout_seconds" in message and "Nothing was sent" in message, message
