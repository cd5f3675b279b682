"""take_screenshot's browser captures: the screen, the whole page (full_page) and one element (target),
at CSS pixels by default or device pixels (scale="device"), straight from the browser in PNG, JPEG or
WebP, fitted to the size budget, pixel-checked on tests/pages/long.html (and noise.html for sizes).

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
from tests.fake_chaser import FakeChaser
from tests.mcp_support import (
    Mode,
    error_text,
    image_bytes,
    images,
    read_blob,
    running_server,
    structured,
    text_of,
)
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
RED_BOX = (20, 40, 200, 100)
BLUE_BOX = (60, 3600, 280, 200)
GREEN_BOX = (100, 1500, 160, 120)
ORANGE_SIZE = (120, 80)
SCREEN = (412, 915)  # CSS px
DEVICE_SCREEN = (round(412 * DPR), round(915 * DPR))  # 1082x2402
AUTO_PNG_LIMIT = 256 * 1024  # what auto sends as PNG at most


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
    assert (image.width, image.height) == PAGE, "one pixel per CSS pixel by default"
    assert f"PNG {image.width}x{image.height}" in caption
    assert 'scale css (1 px per CSS px; scale="device" gives 2.625)' in caption, caption


async def test_the_default_screenshot_is_the_screen_at_css_pixels_from_the_browser(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, mime, caption = picture(await screenshot(page_client, session))

    assert (image.size, mime, image.format) == (SCREEN, "image/png", "PNG")
    left, top, width, height = RED_BOX
    assert only(image.crop((left, top, left + width, top + height)), RED), "the block, pixel for pixel"
    assert near(image.convert("RGB").getpixel((left - 2, top + 2)), WHITE)
    assert caption.startswith(f"Screenshot of {session}, the screen (412x915 CSS px): PNG 412x915, ")
    assert 'scale css (1 px per CSS px; scale="device" gives 2.625)' in caption, caption


async def test_scale_device_is_the_screen_at_the_phones_own_pixels(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, mime, caption = picture(await screenshot(page_client, session, scale="device"))

    assert (image.size, mime) == (DEVICE_SCREEN, "image/png")
    left, top, width, height = RED_BOX
    inner = (round((left + 1) * DPR), round((top + 1) * DPR), round((left + width - 1) * DPR))
    assert only(image.crop((*inner[:2], inner[2], round((top + height - 1) * DPR))), RED)
    assert near(image.convert("RGB").getpixel((round((left - 1) * DPR), round((top + 2) * DPR))), WHITE)
    assert "PNG 1082x2402" in caption and "scale device (2.63 px per CSS px)" in caption, caption


async def test_a_cloud_session_is_captured_by_its_browser_at_both_scales_like_a_local_one(
    page_client: Client, session: str, pages_site: PagesSite, mode: Mode
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))
    cdp_url = structured(await call(page_client, "get_session", session_id=session))["cdp_url"]
    left, top, width, height = RED_BOX

    with FakeChaser() as cloud:  # a cloud session whose cdp_url is a real browser
        cloud_session = cloud.seed_session(cdp_url=cdp_url)
        async with running_server(cloud) as harness, harness.connect(mode) as client:
            css, css_mime, _ = picture(await screenshot(client, cloud_session))
            device, _, caption = picture(await screenshot(client, cloud_session, scale="device"))
        assert cloud.count("POST", r"/v1/sessions/[^/]+/screenshot") == 0, "the browser, not the API"

    assert (css.size, css_mime) == (SCREEN, "image/png")
    assert only(css.crop((left, top, left + width, top + height)), RED)
    assert device.size == DEVICE_SCREEN and "scale device" in caption
    assert near(device.convert("RGB").getpixel((round(100 * DPR), round(90 * DPR))), RED)


async def test_the_screenshot_resource_is_the_default_capture(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    data, mime = await read_blob(page_client, f"chaser://sessions/{session}/screenshot")

    image = Image.open(BytesIO(data))
    assert (image.size, mime) == (SCREEN, "image/png")
    assert near(image.convert("RGB").getpixel((120, 90)), RED)


async def test_auto_takes_the_browsers_jpeg_when_the_screens_png_is_not_small(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("noise.html"))

    image, mime, caption = picture(await screenshot(page_client, session))

    assert (image.size, mime, image.format) == (SCREEN, "image/jpeg", "JPEG")
    assert re.search(r"JPEG as the PNG was \d+ KiB, over 256 KiB", caption), caption
    assert near(image.convert("RGB").getpixel((200, 700)), WHITE, 8), "below the noise, the page"


async def test_png_asked_for_is_the_browsers_png_even_past_what_auto_sends(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("noise.html"))

    result = await screenshot(page_client, session, image_format="png")

    (block,) = images(result)
    image, mime, caption = picture(result)
    assert (image.size, mime) == (SCREEN, "image/png")
    assert len(image_bytes(block)) > AUTO_PNG_LIMIT, "not traded for a JPEG"
    assert "JPEG" not in caption and "smaller" not in caption, caption


async def test_an_element_by_selector_is_exactly_that_element_at_css_pixels(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, _, caption = picture(await screenshot(page_client, session, target="#green"))

    _, _, width, height = GREEN_BOX
    assert image.size == (width, height)
    assert only(image, GREEN), "nothing but the block"
    assert re.search(r"\[ref=[a-z]{2}\d+\] \(160x120 CSS px\): PNG 160x120", caption), caption


async def test_an_element_at_scale_device_is_exactly_that_element_at_device_resolution(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, _, caption = picture(await screenshot(page_client, session, target="#green", scale="device"))

    _, _, width, height = GREEN_BOX
    assert abs(image.width - width * DPR) <= 1 and abs(image.height - height * DPR) <= 1, image.size
    assert only(image, GREEN), "nothing but the block"
    assert "scale device" in caption, caption


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
    assert image.size == (width, height)
    assert only(image, BLUE)


async def test_an_element_inside_a_same_origin_iframe_is_found_and_offset_by_its_frame(
    page_client: Client, session: str, pages_site: PagesSite
) -> None:
    await open_in(page_client, session, pages_site.url("long.html"))

    image, _, _ = picture(await screenshot(page_client, session, target="#orange", scale="device"))

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
