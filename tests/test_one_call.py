"""screenshot_url and read_url: one call creates a session, opens the page, captures or reads it and
deletes the session, which is gone when the answer arrives, also when the page fails, when the client
cancels mid-call, and (through the pending deletes) when the delete itself fails. A URL that is not
http(s) creates nothing.
"""

from __future__ import annotations

import uuid
from io import BytesIO

import anyio
import pytest
from mcp import Client
from PIL import Image

from chaser_mcp.local import LocalBackend
from tests.fake_chaser import FakeChaser, Status
from tests.local_support import refused_url, wait_until
from tests.mcp_support import Harness, error_text, image_bytes, images, text_of
from tests.page_support import LocalHarness, PagesSite, call

pytestmark = pytest.mark.anyio

DPR = 2.625


@pytest.fixture
def backend(local_mcp_server: LocalHarness) -> LocalBackend:
    """The local API's sessions, to see what the tools leave behind."""
    return local_mcp_server.api.backend


def every_session(backend: LocalBackend) -> int:
    return len(backend.list(limit=1000, cursor=None)[0])


async def test_screenshot_url_answers_with_the_page_and_leaves_no_session_open(
    page_client: Client, pages_site: PagesSite, backend: LocalBackend
) -> None:
    before = every_session(backend)

    result = await call(page_client, "screenshot_url", url=pages_site.url("long.html"))

    assert not result.is_error, text_of(result)
    (block,) = images(result)
    image = Image.open(BytesIO(image_bytes(block))).convert("RGB")
    assert (block.mime_type, image.size) == ("image/png", (412, 915)), "CSS pixels by default"
    assert image.getpixel((100, 90)) == (255, 0, 0)  # the red block, top left
    assert text_of(result).startswith(
        f'{pages_site.url("long.html")} ("Long page"), the screen (412x915 CSS px)'
    )
    assert "the session was deleted" in text_of(result)
    assert every_session(backend) == before + 1, "one session was made"
    assert backend.open_sessions() == [], "and it is gone by the time the answer arrives"


async def test_screenshot_url_at_scale_device_is_the_phones_own_pixels(
    page_client: Client, pages_site: PagesSite
) -> None:
    result = await call(page_client, "screenshot_url", url=pages_site.url("long.html"), scale="device")

    (block,) = images(result)
    image = Image.open(BytesIO(image_bytes(block))).convert("RGB")
    assert image.size == (round(412 * DPR), round(915 * DPR))
    assert image.getpixel((int(100 * DPR), int(90 * DPR))) == (255, 0, 0)
    assert "scale device" in text_of(result)


async def test_screenshot_url_full_page_in_jpeg_is_the_whole_page_from_the_browser(
    page_client: Client, pages_site: PagesSite, backend: LocalBackend
) -> None:
    result = await call(
        page_client, "screenshot_url", url=pages_site.url("long.html"), full_page=True, image_format="jpeg"
    )

    assert not result.is_error, text_of(result)
    (block,) = images(result)
    image = Image.open(BytesIO(image_bytes(block)))
    assert block.mime_type == "image/jpeg" and image.format == "JPEG"
    assert abs(image.height / image.width - 4000 / 412) < 0.01
    assert backend.open_sessions() == []


async def test_read_url_answers_with_the_text_and_leaves_no_session_open(
    page_client: Client, pages_site: PagesSite, backend: LocalBackend
) -> None:
    result = await call(page_client, "read_url", url=pages_site.url("hello.html"))

    assert not result.is_error, text_of(result)
    answer = text_of(result)
    assert answer.startswith(f'"Hello" at {pages_site.url("hello.html")}, HTTP 200, characters 0-'), answer
    assert answer.endswith("(the end):\nHello\n\nA page to check that the page harness works.\n\nagain")
    assert result.structured_content is None, "the text once, not twice"
    assert backend.open_sessions() == []


async def test_read_url_reads_on_from_an_offset(page_client: Client, pages_site: PagesSite) -> None:
    answer = text_of(await call(page_client, "read_url", url=pages_site.url("hello.html"), offset=6))

    assert "characters 6-58 of 58" in answer, answer
    assert answer.endswith(":\n\nA page to check that the page harness works.\n\nagain")


@pytest.mark.parametrize("tool", ["screenshot_url", "read_url"])
async def test_a_url_that_is_not_http_creates_nothing(
    page_client: Client, backend: LocalBackend, tool: str
) -> None:
    before = every_session(backend)

    message = error_text(await call(page_client, tool, url="file:///etc/passwd"))

    assert "is not an http(s) URL" in message and "Nothing was created" in message, message
    assert every_session(backend) == before


async def test_a_page_that_fails_to_load_is_an_error_and_its_session_is_gone(
    page_client: Client, backend: LocalBackend
) -> None:
    message = error_text(await call(page_client, "screenshot_url", url=refused_url()))

    assert "ERR_CONNECTION_REFUSED" in message, message
    assert backend.open_sessions() == []


@pytest.mark.parametrize("tool", ["screenshot_url", "read_url"])
async def test_cancelling_mid_call_still_deletes_the_session(
    page_client: Client, pages_site: PagesSite, backend: LocalBackend, tool: str
) -> None:
    path = f"/slow?s=20&id={uuid.uuid4().hex}"  # its own, so an earlier test's request does not count
    slow = pages_site.url(path)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:

            async def the_call() -> None:
                await call(page_client, tool, url=slow)

            tg.start_soon(the_call)
            # The session is made and the browser is waiting for the page: the client gives up now.
            await wait_until(lambda: path in pages_site.requests, timeout=25)
            assert len(backend.open_sessions()) == 1
            tg.cancel_scope.cancel()

        await wait_until(lambda: backend.open_sessions() == [], timeout=15)


async def test_a_one_call_session_whose_delete_fails_becomes_a_pending_delete(
    mcp_harness: Harness, mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    # The fake API's sessions have no browser behind them: the call fails, then so does every DELETE.
    fake_chaser.inject(Status(500), method="DELETE", path=r"/v1/sessions/[^/]+", times=None)

    message = error_text(await call(mcp_client, "read_url", url="https://example.com/"))

    assert "Could not reach the browser" in message, message
    (session,) = fake_chaser.sessions
    assert fake_chaser.count("DELETE") >= 1
    assert mcp_harness.state.conversations.pending.ids() == [session["id"]]
