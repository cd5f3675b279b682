"""take_screenshot's browser captures: the whole page (full_page) and one element (target), straight
from the browser in PNG, JPEG or WebP, fitted to the size budget, pixel-checked on tests/pages/long.html.

long.html is 4000 CSS px tall on the emulated Pixel 7 (412 CSS px wide, DPR 2.625); its blocks sit at
fixed CSS places (kept in step with the page):
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult
from PIL import Image

from chaser_mcp.browser.page import open_page
from chaser_mcp.conversations import Conversations
from chaser_mcp.server import ServerState, build_server
from tests.mcp_support import Mode, error_text, image_bytes, images, structured, text_of
from tests.page_support import LocalHarness, PagesSite, call, new_session, open_in

pytestmark = pytest.mark.anyio

DPR = 2.625
PAGE = (412, 4000)  # CSS px
RED = (255, 0, 0)
GREEN = (0, 160, 0)
BLUE = (0, 0, 255)
ORANGE = (255, 140, 0)
MAGENTA = (255, 0, 255)
WHITE = (255, 255, 255)
# (left, top, width, height) in CSS px
BLUE_BOX = (60, 3600, 280, 200)
GREEN_BOX = (100, 1500, 160, 120)
ORANGE_SIZE = (120, 80)


def picture(result: CallToolResult) -> tuple[Image.Image, str, str]:
    """The answer's image (decoded), its MIME type and the text line next to it."""
    assert not result.is_error, text_of(result)
    (block,) = images(result)
    data = image_bytes(block)
    image = Image.open(BytesIO(data))
    return image, block.mime_type, text_of(result)


def only(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    """The image is one flat block of ``colour``: inside exactly, and its one-pixel rim a blend of it
    with the white page (at DPR 2.625 a CSS edge can fall mid-pixel, which the browser anti-aliases)."""
    rgb = image.convert("RGB")
    inside = rgb.crop((1, 1, rgb.width - 1, rgb.height - 1)).getcolors()
    if inside != [((rgb.width - 2) * (rgb.height - 2), colour)]:
        return False
    rim = [rgb.getpixel((x, y)) for x in range(rgb.width) for y in (0, rgb.height - 1)]
    rim += [rgb.getpixel((x, y)) for y in range(rgb.height) for x in (0, rgb.width - 1)]
    return all(_blend_of_white(pixel, colour) for pixel in rim)  # type: ignore[arg-type]


def _blend_of_white(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    """``pixel`` lies on the line from ``colour`` to white (within rounding)."""
    weights = [(255 - p) / (255 - c) for p, c in zip(pixel, colour, strict=True) if c != 255]
    return max(weights) - min(weights) < 0.03 and all(p >= c - 1 for p, c in zip(pixel, colour, strict=True))


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 0) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


async def screenshot(client: Client, session_id: str, **arguments: object) -> CallToolResult:
    return await call(client, "take_screenshot", session_id=session_id, **arguments)


async def test_a_full_page_capture_covers_the_whole_height_with_each_block_in_its_place(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, mime, caption = picture(await screenshot(page_client, session, full_page=True))

    assert mime == "image/png" and image.format == "PNG"
    scale = image.width / PAGE[0]
    assert image.height == round(PAGE[1] * scale), "the whole 4000 CSS px, in proportion"
    assert image.height <= 8000, "no edge over the API's limit"
    rgb = image.convert("RGB")

    def at(x: float, y: float) -> tuple[int, ...]:
        return rgb.getpixel((int(x * scale), int(y * scale)))  # type: ignore[return-value]

    left, top, width, height = BLUE_BOX  # below the fold: 3600 CSS px down a 915 px screen
    assert near(at(left + width / 2, top + height / 2), BLUE)
    assert near(at(left + 3, top + 3), BLUE) and near(at(left - 3, top + 3), WHITE)
    assert near(at(left + width - 3, top + height - 3), BLUE) and near(
        at(left + width / 2, top + height + 3), WHITE
    )
    assert near(at(30, 50), RED) and near(at(150, 1560), GREEN)
    assert near(at(200, 3990), MAGENTA), "the last rows of the page are there"
    assert caption.startswith(f"Screenshot of {session}, the whole page (412x4000 CSS px): PNG ")
    assert f"{image.width}x{image.height}" in caption and "(device 2.625)" in caption


async def test_an_element_by_selector_is_exactly_that_element_at_device_resolution(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, _, caption = picture(await screenshot(page_client, session, target="#green"))

    _, _, width, height = GREEN_BOX
    assert abs(image.width - width * DPR) <= 1 and abs(image.height - height * DPR) <= 1, image.size
    assert only(image, GREEN), "nothing but the block"
    assert re.search(r"\[ref=[a-z]{2}\d+\] \(160x120 CSS px\): PNG", caption), caption


async def test_an_element_by_ref_below_the_fold_is_exactly_that_element(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))
    found = text_of(
        await call(page_client, "wait_for", session_id=session, selector="#blue", timeout_seconds=5)
    )
    ref = re.search(r"\[ref=([a-z]{2}\d+)\]", found)
    assert ref, found

    image, _, _ = picture(await screenshot(page_client, session, target=ref.group(1)))

    _, _, width, height = BLUE_BOX
    assert abs(image.width - width * DPR) <= 1 and abs(image.height - height * DPR) <= 1, image.size
    assert only(image, BLUE)


async def test_an_element_inside_a_same_origin_iframe_is_found_and_offset_by_its_frame(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, _, _ = picture(await screenshot(page_client, session, target="#orange"))

    width, height = ORANGE_SIZE
    assert abs(image.width - width * DPR) <= 1 and abs(image.height - height * DPR) <= 1, image.size
    assert only(image, ORANGE)


@pytest.mark.parametrize(
    ("image_format", "mime", "magic"),
    [("jpeg", "image/jpeg", b"\xff\xd8\xff"), ("webp", "image/webp", b"RIFF")],
)
async def test_jpeg_and_webp_come_straight_from_the_browser_with_their_mime_type(
    page_client: Client, session: str, pages_site: PagesSite, image_format: str, mime: str, magic: bytes
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    result = await screenshot(page_client, session, full_page=True, image_format=image_format)

    (block,) = images(result)
    assert block.mime_type == mime and image_bytes(block).startswith(magic)
    image, _, caption = picture(result)
    assert image.height == round(PAGE[1] * image.width / PAGE[0])
    assert near(
        image.convert("RGB").getpixel((int(200 * image.width / 412), int(3700 * image.width / 412))), BLUE, 16
    )
    assert f"{image_format.upper() if image_format == 'jpeg' else 'WebP'} q80 " in caption, caption
    assert "re-encoded" not in caption


async def test_max_width_asks_the_browser_for_fewer_pixels(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, mime, _ = picture(await screenshot(page_client, session, full_page=True, max_width=206))

    assert (image.width, image.height, mime) == (206, 2000, "image/png")
    assert near(image.convert("RGB").getpixel((100, 1850)), BLUE)


async def test_a_full_page_leaves_the_page_showing_the_phone_afterwards(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))
    picture(await screenshot(page_client, session, full_page=True))
    cdp_url = structured(await call(page_client, "get_session", session_id=session))["cdp_url"]

    # A clipped capture sets metrics through its own CDP session; after it leaves, the phone is back.
    async with open_page(cdp_url) as page:
        with anyio.fail_after(10):
            while await page.evaluate("[devicePixelRatio, innerWidth, innerHeight]") != [DPR, 412, 915]:  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_a_target_that_matches_nothing_is_a_one_sentence_error(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    message = error_text(await screenshot(page_client, session, target="#nowhere"))

    assert 'Nothing on the page matches the selector "#nowhere"; check it with find or snapshot.' in message


async def test_a_hidden_target_has_no_box_and_says_so(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("late.html"))

    message = error_text(await screenshot(page_client, session, target="#hidden"))

    assert "has no size on screen (it is hidden or empty)" in message, message


async def test_full_page_and_target_together_are_refused(page_client: Client, session: str) -> None:
    message = error_text(await screenshot(page_client, session, full_page=True, target="#red"))

    assert "Pass full_page or target, not both" in message


@asynccontextmanager
async def small_budget_client(harness: LocalHarness, mode: Mode, budget: int) -> AsyncIterator[Client]:
    """A second server on the same local API whose screenshots must fit ``budget`` base64 bytes."""
    settings = harness.state.settings.with_(screenshot_max_bytes=budget)
    conversations = Conversations(cleanup_timeout=settings.cleanup_timeout)
    server = build_server(ServerState(settings, harness.state.client, conversations))
    try:
        async with Client(server, mode=mode) as client:
            yield client
    finally:
        with anyio.CancelScope(shield=True):
            await conversations.end_all("test finished")


async def test_a_full_page_over_the_budget_becomes_a_smaller_browser_jpeg_of_the_whole_page(
    local_mcp_server: LocalHarness, mode: Mode, pages_site: PagesSite
) -> None:
    budget = 20_000
    async with small_budget_client(local_mcp_server, mode, budget) as client:
        session_id = await new_session(client)
        await open_in(client, session_id, pages_site.url("long.html"))

        result = await screenshot(client, session_id, full_page=True)

    (block,) = images(result)
    assert len(block.data) <= budget
    image, mime, caption = picture(result)
    assert mime == "image/jpeg" and image.format == "JPEG"
    # Chromium rounds each edge on its own: the ratio holds to a few pixels in thousands.
    assert abs(image.height / image.width - PAGE[1] / PAGE[0]) < 0.01, "still the whole page"
    assert "made smaller to fit the size budget" in caption, caption
