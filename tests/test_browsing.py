"""navigate() and page_text() over a local session's cdp_url, against pages served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chaser_mcp.api import ChaserClient, Session
from chaser_mcp.browser.browsing import (
    InvalidURL,
    NavigationFailed,
    NavigationTimeout,
    collapse_whitespace,
    navigate,
    slice_text,
)
from chaser_mcp.browser.page import open_page
from chaser_mcp.local import running_local_api
from tests.local_support import (
    LoopbackSite,
    navigate_to,
    page_text,
    refused_url,
    requires_chromium,
    short_temp_dir,
    wait_until_ready,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def cdp_url() -> AsyncIterator[str]:
    """One ready local session for the whole module: these tests only navigate and read."""
    with short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base) as server,
            ChaserClient("sk-local", base_url=server.base_url) as client,
        ):
            session = await _ready(client)
            assert session.cdp_url is not None
            yield session.cdp_url


async def _ready(client: ChaserClient) -> Session:
    created = await client.create_session(ttl_seconds=600)
    return await wait_until_ready(client, created.id)


# -- navigate ------------------------------------------------------------------------------------


@requires_chromium
async def test_navigate_reports_the_final_url_title_and_http_status(cdp_url: str, site: LoopbackSite) -> None:
    result = await navigate_to(cdp_url, site.url("/colour"), timeout=20)
    assert result.url == site.url("/colour")
    assert result.title == "Colour block"
    assert result.status == 200


@requires_chromium
async def test_navigate_follows_redirects_and_reports_where_it_landed(
    cdp_url: str, site: LoopbackSite
) -> None:
    result = await navigate_to(cdp_url, site.url("/redirect"), timeout=20)
    assert result.url == site.url("/colour")
    assert result.status == 200


@requires_chromium
async def test_navigate_reports_an_error_status_of_a_page_that_loaded(
    cdp_url: str, site: LoopbackSite
) -> None:
    result = await navigate_to(cdp_url, site.url("/missing"), timeout=20)
    assert result.status == 404
    assert result.title == "Not here"


@requires_chromium
async def test_navigate_to_a_refused_port_raises_navigation_failed_with_chromiums_reason(
    cdp_url: str,
) -> None:
    url = refused_url()
    with pytest.raises(NavigationFailed) as caught:
        await navigate_to(cdp_url, url, timeout=20)
    assert caught.value.error_text == "net::ERR_CONNECTION_REFUSED"
    assert url in str(caught.value) and "nothing is listening" in str(caught.value)


@requires_chromium
async def test_navigate_gives_up_on_a_page_that_never_finishes_loading(
    cdp_url: str, site: LoopbackSite
) -> None:
    with pytest.raises(NavigationTimeout):
        await navigate_to(cdp_url, site.url("/hang"), timeout=1)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "javascript:alert(1)", "chrome://settings", "example.com/page", "http://", ""],
)
@requires_chromium
async def test_navigate_refuses_anything_but_http_urls_and_the_page_stays(cdp_url: str, url: str) -> None:
    async with open_page(cdp_url) as page:
        before = await page.evaluate("location.href")
        with pytest.raises(InvalidURL):
            await navigate(page, url)
        assert await page.evaluate("location.href") == before


# -- read_page -----------------------------------------------------------------------------------


@requires_chromium
async def test_read_page_returns_the_visible_text_with_whitespace_squeezed(
    cdp_url: str, site: LoopbackSite
) -> None:
    await navigate_to(cdp_url, site.url("/text?n=3"), timeout=20)
    page = await page_text(cdp_url)
    assert page.url == site.url("/text?n=3")
    assert page.title == "Long read"
    assert page.text.splitlines()[0] == "Long read"
    assert "Paragraph 001: the quick brown fox jumps over the lazy dog." in page.text
    assert "not visible text" not in page.text
    assert (page.offset, page.total_chars, page.next_offset) == (0, len(page.text), None)


@requires_chromium
async def test_read_page_pages_through_long_text_with_next_offset(cdp_url: str, site: LoopbackSite) -> None:
    await navigate_to(cdp_url, site.url("/text?n=300"), timeout=20)
    whole = await page_text(cdp_url, max_chars=1_000_000)
    assert whole.next_offset is None and whole.total_chars > 10_000
    chunks: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await page_text(cdp_url, offset=offset, max_chars=4000)
        assert page.offset == offset and page.total_chars == whole.total_chars
        assert 0 < len(page.text) <= 4000
        chunks.append(page.text)
        offset = page.next_offset
    assert "".join(chunks) == whole.text
    assert len(chunks) > 1


@requires_chromium
async def test_read_page_past_the_end_returns_empty_text_and_no_next_offset(
    cdp_url: str, site: LoopbackSite
) -> None:
    await navigate_to(cdp_url, site.url("/text?n=3"), timeout=20)
    page = await page_text(cdp_url, offset=1_000_000)
    assert (page.text, page.next_offset) == ("", None)
    assert page.offset == page.total_chars


def test_whitespace_is_squeezed_inside_lines_and_blank_runs_become_one_empty_line() -> None:
    raw = "  Title \t here \n\n\n\n  first\u00a0 line  \r\nsecond   line\n\n\n"
    assert collapse_whitespace(raw) == "Title here\n\nfirst line\nsecond line"


def test_a_slice_ends_at_a_word_boundary_when_one_is_near_the_budget() -> None:
    text = "alpha beta gamma delta epsilon"
    chunk, next_offset = slice_text(text, 0, 12)
    assert chunk == "alpha beta "
    assert next_offset == len(chunk)
    rest, end = slice_text(text, next_offset, 100)
    assert chunk + rest == text and end is None


def test_a_slice_without_a_nearby_boundary_cuts_at_the_budget() -> None:
    chunk, next_offset = slice_text("x" * 50, 0, 20)
    assert (chunk, next_offset) == ("x" * 20, 20)
