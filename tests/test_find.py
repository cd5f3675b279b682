"""find: the few elements matching a query, with refs, through a real MCP client in both protocol eras."""

from __future__ import annotations

import re

import pytest
from mcp import Client

from tests.local_support import requires_chromium
from tests.mcp_support import text_of
from tests.page_support import LocalHarness, PagesSite, call, open_in

pytestmark = [pytest.mark.anyio, requires_chromium]

REF = re.compile(r"\[ref=([a-z]{2}[0-9]+)\]")


async def find_in(client: Client, session_id: str, query: str, role: str | None = None) -> str:
    arguments = {"session_id": session_id, "query": query} | ({"role": role} if role else {})
    result = await client.call_tool("find", arguments)
    assert not result.is_error, text_of(result)
    return text_of(result)


def only_line(answer: str, needle: str) -> str:
    lines = [line for line in answer.splitlines() if needle in line]
    assert len(lines) == 1, f"{needle!r} is on {len(lines)} lines of:\n{answer}"
    return lines[0]


async def test_find_gives_the_ref_the_snapshot_gave_for_the_same_element(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))
    outline = text_of(await call(page_client, "snapshot", session_id=session))

    answer = await find_in(page_client, session, "GitHub")

    assert REF.findall(only_line(answer, 'link "GitHub"')) == REF.findall(only_line(outline, 'link "GitHub"'))


async def test_find_gives_the_same_ref_on_every_call_and_over_a_new_connection(
    page_client: Client, session: str, pages_site: PagesSite, local_mcp_server: LocalHarness, mode: str
) -> None:
    await open_in(page_client, session, pages_site.url("shadow.html"))
    first = await find_in(page_client, session, "Open settings")
    again = await find_in(page_client, session, "Open settings")
    async with local_mcp_server.connect("legacy" if mode == "auto" else "auto") as other:
        over_another = await find_in(other, session, "Open settings")

    assert re.fullmatch(r'1 match for "Open settings":\nbutton "Open settings" \[ref=\w+\]', first)
    assert again == first
    assert over_another == first


async def test_find_reaches_into_open_shadow_roots_and_same_origin_iframes_only(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("shadow.html"))
    in_shadow = await find_in(page_client, session, "settings", role="button")
    closed = await find_in(page_client, session, "Secret action")
    await open_in(page_client, session, pages_site.url("frames.html"))
    in_frame = await find_in(page_client, session, "pay now")

    assert re.search(r'^button "Open settings" \[ref=\w+\]$', in_shadow, re.MULTILINE)
    assert closed.startswith("Nothing on the page matches")
    assert re.search(r'^button "Pay now" \[ref=\w+\]$', in_frame, re.MULTILINE)


async def test_a_role_keeps_only_elements_of_that_role(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))

    everything = await find_in(page_client, session, "search")
    fields = await find_in(page_client, session, "search", role="textbox")

    assert "button" in everything and "searchbox" in everything
    assert fields.splitlines()[0] == '1 textbox match for "search":'
    assert re.fullmatch(
        r'searchbox "Search" placeholder="Search the docs" \[ref=\w+\]', fields.splitlines()[1]
    )


async def test_a_role_that_filters_out_every_match_says_so_and_shows_what_did_match(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("fields.html"))

    answer = await find_in(page_client, session, "Newsletter", role="button")

    assert answer.splitlines()[0] == 'No button matches "Newsletter"; other elements do:'
    assert re.fullmatch(r'checkbox "Newsletter" checked \[ref=\w+\]', answer.splitlines()[1])


async def test_a_query_nothing_matches_is_an_answer_suggesting_another_query(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))

    result = await call(page_client, "find", session_id=session, query="kumquat")

    assert not result.is_error
    assert text_of(result) == (
        'Nothing on the page matches "kumquat"; try a shorter or different word, or take a snapshot.'
    )


async def test_many_matches_are_capped_at_ten_lines_that_say_which_heading_each_is_under(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("cards.html"))

    answer = await find_in(page_client, session, "add to cart")

    lines = answer.splitlines()
    assert lines[0].startswith('30 matches for "add to cart" (first 10;')
    assert len(lines) == 11
    assert re.fullmatch(r'button "Add to cart" \[ref=\w+\] under h3 "Aurora lamp"', lines[1])
    assert len(set(REF.findall(answer))) == 10
    assert len(answer.encode()) < 1000


async def test_text_outside_controls_is_found_as_its_block_with_a_ref(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("cards.html"))

    answer = await find_in(page_client, session, "cm tall", role="paragraph")

    assert answer.startswith('30 paragraph matches for "cm tall"')
    assert re.fullmatch(r'paragraph "A \w+ lamp in \w+, \d+ cm tall\." \[ref=\w+\]', answer.splitlines()[1])


async def test_an_exact_name_ranks_before_names_that_only_contain_the_query(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))

    answer = await find_in(page_client, session, "search")

    assert REF.search(answer.splitlines()[1])
    assert answer.splitlines()[1].split(" [ref=")[0] in (
        'searchbox "Search" placeholder="Search the docs"',
        'button "Search"',
    )
    assert answer.index('button "Search"') < answer.index('search "Search the docs"')


async def test_an_option_of_a_closed_select_is_found_as_its_select(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("fields.html"))

    answer = await find_in(page_client, session, "kenya")

    assert re.search(r'^combobox "Country" .*\[ref=\w+\] has option "Kenya"$', answer, re.MULTILINE)
