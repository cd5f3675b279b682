"""snapshot: the page as a compact outline with refs, through a real MCP client in both protocol eras,
on a real local backend and the pages of tests/pages/."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from mcp import Client

from chaser_mcp.browser.page import open_page
from chaser_mcp.browser.snapshot import SNAPSHOT_BUDGET, snapshot
from tests.local_support import requires_chromium
from tests.mcp_support import error_text, structured, text_of
from tests.page_support import PAGES, PagesSite, call, open_in

pytestmark = [pytest.mark.anyio, requires_chromium]

REF = re.compile(r"\[ref=([a-z]{2}[0-9]+)\]")
NEXT = re.compile(r"^next_cursor: (\S+) ", re.MULTILINE)


async def outline_of(client: Client, session_id: str, **arguments: str) -> str:
    result = await call(client, "snapshot", session_id=session_id, **arguments)
    assert not result.is_error, text_of(result)
    return text_of(result)


async def snapshot_of(client: Client, session_id: str, site: PagesSite, page: str, **arguments: str) -> str:
    await open_in(client, session_id, site.url(page))
    return await outline_of(client, session_id, **arguments)


def line_with(outline: str, needle: str) -> str:
    lines = [line for line in outline.splitlines() if needle in line]
    assert len(lines) == 1, f"{needle!r} is on {len(lines)} lines of:\n{outline}"
    return lines[0]


def body_lines(page: str) -> list[str]:
    """A page of the outline without its header line and its next_cursor line."""
    return [line for line in page.splitlines()[1:] if not line.startswith("next_cursor: ")]


class _Controls(HTMLParser):
    """Counts what a person can act on in static HTML: links with an href, fields, buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        link = tag == "a" and "href" in names
        field = tag == "input" and names.get("type") != "hidden"
        if link or field or tag in ("button", "select", "textarea"):
            self.count += 1


async def test_every_link_field_and_button_of_the_docs_page_carries_a_ref_of_its_own(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    controls = _Controls()
    controls.feed((PAGES / "docs.html").read_text(encoding="utf-8"))

    outline = await snapshot_of(page_client, session, pages_site, "docs.html")

    refs = REF.findall(outline)
    assert controls.count > 200
    assert len(refs) == controls.count
    assert len(set(refs)) == len(refs)


async def test_the_outline_opens_with_the_page_and_shows_landmarks_headings_and_short_link_urls(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "docs.html")

    lines = outline.splitlines()
    assert lines[0] == f'page "Widgets docs" {pages_site.url("docs.html")}'
    assert 'navigation "Docs"' in lines
    assert 'h1 "Widgets documentation"' in line_with(outline, "Widgets documentation")
    # Same-origin links are shortened to their path; others keep their whole URL.
    assert re.fullmatch(
        r' link "Installation" /docs/guides/installation \[ref=\w+\]',
        line_with(outline, "/guides/installation"),
    )
    assert "https://github.com/example/widgets" in line_with(outline, '"GitHub"')
    # What is inside a landmark is indented under it.
    assert line_with(outline, '"Privacy"').startswith(" link")


async def test_fields_show_their_type_value_and_state_and_a_password_is_masked(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "fields.html")

    assert re.search(r'textbox "Email" type=email value="ada@example.com" required \[ref=', outline)
    password = line_with(outline, '"Password"')
    assert "type=password" in password and "hunter22" not in outline
    assert re.search(r'checkbox "Newsletter" checked \[ref=', outline)
    assert re.search(r'checkbox "Beta features" disabled \[ref=', outline)
    assert re.search(r'radio "Pro" checked \[ref=', outline) and "checked" not in line_with(outline, '"Free"')
    assert re.search(r'button "More options" collapsed \[ref=', outline)
    select = line_with(outline, '"Country"')
    assert 'value="Chile"' in select and '"Austria"' in select and "…+3" in select and "Kenya" not in select


async def test_hidden_elements_are_left_out_and_a_visible_child_of_a_hidden_box_is_kept(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "fields.html")

    for hidden in (
        "Hidden by display",
        "Hidden by visibility",
        "Hidden from assistive tech",
        "Inside closed",
    ):
        assert hidden not in outline
    assert "Shown inside a hidden box" in outline
    assert 'alert "Saved 2 minutes ago."' in outline


async def test_a_button_in_an_open_shadow_root_is_listed_with_a_ref_and_one_in_a_closed_root_is_not(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "shadow.html")

    assert re.search(r'^button "Open settings" \[ref=\w+\]$', outline, re.MULTILINE)
    # The light-DOM link slotted into the shadow root shows where the slot is.
    assert outline.index('"Open settings"') < outline.index('link "Help with settings" #help')
    assert "Secret action" not in outline


async def test_a_same_origin_iframe_is_inlined_with_refs_and_a_cross_origin_one_is_one_line(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "frames.html")

    assert 'iframe "Payment form"' in outline.splitlines()
    assert re.search(r'^ button "Pay now" \[ref=\w+\]$', outline, re.MULTILINE)
    assert re.search(
        r'^ textbox "Card number" placeholder="1234 5678 9012 3456" \[ref=\w+\]$', outline, re.MULTILINE
    )
    partner = line_with(outline, '"Partner widget"')
    assert "cannot be reached" in partner and "[ref=" not in partner


async def test_a_ref_from_the_snapshot_names_its_element_over_a_new_connection(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    outline = await snapshot_of(page_client, session, pages_site, "frames.html")
    ref = REF.findall(line_with(outline, '"Pay now"'))[0]
    cdp_url = structured(await call(page_client, "get_session", session_id=session))["cdp_url"]

    async with open_page(cdp_url, timeout=30) as page:
        located = await page.call_agent("locate", ref, timeout=30)

    assert located == {"ref": ref, "description": 'button "Pay now"'}


async def test_scope_all_adds_the_text_and_the_interactive_outline_is_a_fraction_of_it(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    interactive = await snapshot_of(page_client, session, pages_site, "cards.html")
    everything = await outline_of(page_client, session, scope="all")

    assert "A warm lamp" not in interactive and "€" not in interactive
    assert re.search(r"^ A \w+ lamp in \w+, \d+ cm tall\.$", everything, re.MULTILINE)
    assert re.search(r"^ €\d+\.\d\d$", everything, re.MULTILINE)
    assert 'img "Aurora lamp photo"' in everything
    # The same refs: an element keeps its ref whatever the scope.
    assert REF.findall(interactive) == REF.findall(everything)
    assert len(interactive.encode()) < 0.6 * len(everything.encode())


async def test_scope_all_writes_tables_as_rows_lists_as_items_and_code_between_fences(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))
    first = await outline_of(page_client, session, scope="all")

    assert ' table "Getting started options"\n  | Option | Type | Default | Description |\n' in first
    assert re.search(r"^ - \w.*\.$", first, re.MULTILINE)
    assert (
        ' ```\n import { Widget } from "widgets";\n const w = new Widget({\n   name: "getting-started",\n'
        in first
    )


async def test_a_long_outline_pages_by_cursor_and_the_pages_join_into_the_whole_outline(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("docs.html"))
    cdp_url = structured(await call(page_client, "get_session", session_id=session))["cdp_url"]
    async with open_page(cdp_url, timeout=30) as page:
        whole = await snapshot(page, scope="all", budget=10**7, timeout=30)
    assert whole.next_cursor is None

    pages = [await outline_of(page_client, session, scope="all")]
    while cursor := NEXT.findall(pages[-1]):
        assert len(pages) < 10
        pages.append(await outline_of(page_client, session, cursor=cursor[0]))

    assert len(pages) >= 2
    assert all(len(page) <= SNAPSHOT_BUDGET for page in pages)
    assert pages[1].splitlines()[0].endswith(" (continued)")
    joined = [line for page in pages for line in body_lines(page)]
    # The refs of the first snapshot are the ones of the later; only the lines matter.
    assert joined == body_lines(whole.text)


async def test_a_cursor_from_before_a_navigation_is_an_error_saying_to_take_a_new_snapshot(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    first = await snapshot_of(page_client, session, pages_site, "docs.html", scope="all")
    cursor = NEXT.findall(first)[0]
    await open_in(page_client, session, pages_site.url("docs.html"))

    message = error_text(await call(page_client, "snapshot", session_id=session, cursor=cursor))

    assert "take a new snapshot" in message
    assert message.count(". ") == 0 and message.endswith(".")


async def test_a_malformed_cursor_is_refused_in_one_sentence(page_client: Client, session: str) -> None:
    message = error_text(await call(page_client, "snapshot", session_id=session, cursor="page-2"))

    assert "not a cursor from snapshot" in message
    assert message.count(". ") == 0 and message.endswith(".")


async def test_the_interactive_outline_of_the_docs_page_is_well_under_half_of_all_its_text(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    interactive = await snapshot_of(page_client, session, pages_site, "docs.html")
    pages = [await outline_of(page_client, session, scope="all")]
    while cursor := NEXT.findall(pages[-1]):
        pages.append(await outline_of(page_client, session, cursor=cursor[0]))

    everything = "\n".join(line for page in pages for line in body_lines(page))
    assert NEXT.findall(interactive) == []
    assert len(interactive.encode()) < 0.5 * len(everything.encode())
