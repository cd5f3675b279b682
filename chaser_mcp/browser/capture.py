"""Screenshots over CDP: the viewport, the whole scrollable page, or one element.

The browser encodes PNG, JPEG and WebP itself (``Page.captureScreenshot``), and can
scale while it renders (``clip.scale``), so every capture here comes out of the
browser in the format and size that is sent: no decode and re-encode on the server.
Fitting the client's size budget is done the same way: a PNG that fits is sent as
it is (``auto`` and ``png``); otherwise ``auto`` asks the browser for JPEG, lossy
formats step down in quality, and then every format asks for fewer pixels.

Scale. ``css`` (the default) asks for one image pixel per CSS pixel of what the screen shows (the
phone's 412-wide view): a host downscales larger images anyway and bills by pixels, so the
default costs what a model can use. ``device`` asks for the phone's real resolution. In
``auto``, a PNG is kept when it is small (``AUTO_PNG_MAX_BYTES``), else the browser's JPEG is
taken: text stays crisp on ordinary pages, and a photo-heavy one does not cost half a megabyte.

Device metrics. ``Page.captureScreenshot`` with a clip or ``captureBeyondViewport``
temporarily changes the page's device metrics through *the capturing CDP session*
and afterwards restores that session's own metrics. A session that never set any
"restores" none: the phone's emulation (set by the backend through another session)
is replaced by a desktop viewport at DPR 1 (measured on Chromium 156). So before it
clips, a capture states the page's current metrics (read from the page) on its own
session: the capture then renders at the phone's real resolution and puts the same
metrics back. Those stay on this connection, identical to what the page had; the
tools capture through the session's kept page link (``links.py``), which stays open. When
it closes, Chromium drops the page's metrics override with it: the local backend puts the
phone back (``local/runtime.py``), and a real phone's screen is its own.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal

from ._tasks import side_by_side
from .page import Page, PageError

__all__ = ["AUTO_PNG_MAX_BYTES", "Capture", "CaptureError", "ImageFormat", "Scale", "capture"]

ImageFormat = Literal["auto", "png", "jpeg", "webp"]
Scale = Literal["css", "device"]

# The Claude API refuses images with an edge over 8000 px: no capture is larger.
MAX_EDGE = 8000
# A full page is cut at this height (CSS px), so a very long page keeps at least one image
# pixel per CSS pixel instead of becoming an unreadable sliver; the summary says so.
MAX_FULL_PAGE_CSS_HEIGHT = 8000
# In ``auto``, a PNG up to this size is sent as it is; a larger one is captured again as JPEG.
AUTO_PNG_MAX_BYTES = 256 * 1024
QUALITIES = (80, 60, 45)
MAX_ATTEMPTS = 8
_SHRINK_MIN, _SHRINK_MAX = 0.3, 0.85
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ORIENTATIONS = {
    "portrait-primary": "portraitPrimary",
    "portrait-secondary": "portraitSecondary",
    "landscape-primary": "landscapePrimary",
    "landscape-secondary": "landscapeSecondary",
}


class CaptureError(PageError):
    """The capture could not be made within the limits (the message says why and what to try)."""


@dataclass(frozen=True)
class _Region:
    """What to capture, in top-document CSS px."""

    label: str  # "the screen", "the whole page", 'button "Buy" [ref=ab3]'
    x: float
    y: float
    width: float
    height: float
    beyond_viewport: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Capture:
    """An image straight from the browser: ``data`` is ``mime_type`` bytes of ``width``x``height`` px,
    showing ``label`` (``css_width``x``css_height`` CSS px); ``notes`` say what was given up."""

    data: bytes
    mime_type: str
    width: int
    height: int
    label: str
    css_width: int
    css_height: int
    device_scale: float  # the page's devicePixelRatio
    scale: Scale
    quality: int | None
    notes: tuple[str, ...] = ()


async def capture(
    page: Page,
    *,
    full_page: bool = False,
    target: str | None = None,
    image_format: ImageFormat = "auto",
    scale: Scale = "css",
    max_width: int | None = None,
    max_bytes: int = 750_000,
    timeout: float = 30.0,
) -> Capture:
    """Capture the screen, the whole page (``full_page``) or one element (``target``: ref or selector),
    at ``scale``.

    Raises AgentError for a target that does not resolve (stale ref, bad selector, …),
    CaptureError when the budget cannot be met, and CDP errors when the page is unreachable.
    """
    metrics, layout = await _read_metrics(page, timeout)
    await _state_metrics(page, metrics, timeout)
    viewport = layout["cssVisualViewport"]
    if target is not None:
        region = await _element_region(page, target, timeout)
    elif full_page:
        region = _page_region(layout["cssContentSize"], viewport)
    else:
        region = _Region(
            "the screen",
            viewport["pageX"],
            viewport["pageY"],
            viewport["clientWidth"],
            viewport["clientHeight"],
            beyond_viewport=False,
        )
    # Image pixels per CSS pixel at the page's current (pinch) zoom: what the phone's screen shows
    # in device pixels, or in the screen's own CSS pixels.
    dpr = float(metrics["dpr"])
    natural = (dpr if scale == "device" else 1.0) * float(viewport.get("scale") or 1)
    fit = _Fit(image_format, scale, max_width, max_bytes, timeout)
    return await _fit(page, region, natural, dpr, fit)


async def _read_metrics(page: Page, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's own metrics and its layout, asked side by side.

    Stating the metrics after the layout was read changes nothing: they are the ones the page had.
    """
    return await side_by_side(
        lambda: page.call_agent("screenMetrics", timeout=timeout),
        lambda: page.send("Page.getLayoutMetrics", timeout=timeout),
    )


async def _state_metrics(page: Page, metrics: dict[str, Any], timeout: float) -> None:
    """Set the page's own device metrics on this session (see the module docstring for why)."""
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": int(metrics["width"]),
            "height": int(metrics["height"]),
            "deviceScaleFactor": float(metrics["dpr"]),
            "mobile": bool(metrics["mobile"]),
            "screenWidth": int(metrics["screenWidth"]),
            "screenHeight": int(metrics["screenHeight"]),
            "screenOrientation": {
                "type": _ORIENTATIONS.get(str(metrics["orientation"]), "portraitPrimary"),
                "angle": int(metrics["angle"]),
            },
        },
        timeout=timeout,
    )


async def _element_region(page: Page, target: str, timeout: float) -> _Region:
    box = await page.call_agent("captureBox", target, timeout=timeout)
    return _Region(
        str(box["label"]),
        float(box["x"]),
        float(box["y"]),
        float(box["width"]),
        float(box["height"]),
        beyond_viewport=True,
    )


def _page_region(content: dict[str, Any], viewport: dict[str, Any]) -> _Region:
    width = max(float(content["width"]), float(viewport["clientWidth"]))
    height = max(float(content["height"]), float(viewport["clientHeight"]))
    notes: tuple[str, ...] = ()
    if height > MAX_FULL_PAGE_CSS_HEIGHT:
        notes = (
            f"cut at {MAX_FULL_PAGE_CSS_HEIGHT} of {height:.0f} CSS px; "
            "capture a lower part by target or scroll and take the screen",
        )
        height = MAX_FULL_PAGE_CSS_HEIGHT
    return _Region("the whole page", 0, 0, width, height, beyond_viewport=True, notes=notes)


@dataclass(frozen=True)
class _Fit:
    """What the caller asked of the image."""

    image_format: ImageFormat
    scale: Scale
    max_width: int | None
    max_bytes: int
    timeout: float


async def _fit(page: Page, region: _Region, natural: float, dpr: float, fit: _Fit) -> Capture:
    """Capture ``region`` at the largest scale the limits allow, then smaller until it fits the budget."""
    # Image pixels per CSS pixel: never more than asked, nor past the edge limits.
    px = min(natural, MAX_EDGE / max(region.width, region.height))
    if fit.max_width is not None:
        px = min(px, fit.max_width / region.width)
    first_px = px
    auto = fit.image_format == "auto"
    codec = "png" if fit.image_format in ("auto", "png") else fit.image_format
    qualities: tuple[int | None, ...] = (None,) if codec == "png" else QUALITIES
    step = 0
    smallest: int | None = None
    png_size = 0  # the PNG auto set aside, to say why
    max_bytes = fit.max_bytes
    # auto keeps a PNG only while it is small; png keeps it up to the budget.
    png_limit = min(max_bytes, AUTO_PNG_MAX_BYTES) if auto else max_bytes
    for _attempt in range(MAX_ATTEMPTS):
        quality = qualities[min(step, len(qualities) - 1)]
        data = await _shoot(page, region, px / dpr, codec, quality, fit.timeout)
        size = len(data)
        if size <= (png_limit if codec == "png" else max_bytes):
            notes = list(region.notes)
            if png_size:
                notes.append(f"JPEG as the PNG was {_kib(png_size)}, over {_kib(png_limit)}")
            if px < first_px or step > 0:
                notes.append("made smaller to fit the size budget")
            return _capture(data, codec, quality, region, dpr, fit.scale, tuple(notes))
        smallest = size if smallest is None else min(smallest, size)
        if codec == "png" and auto:
            # A PNG too large for auto: the browser's JPEG is the next thing to try, at full size.
            codec, qualities, step, png_size = "jpeg", QUALITIES, 0, size
            continue
        step += 1
        if step < len(qualities):
            continue  # lower quality first, at the same size
        # Encoded size grows about with pixel count: shrink each edge by sqrt(overshoot).
        px *= min(_SHRINK_MAX, max(_SHRINK_MIN, math.sqrt(max_bytes / size) * 0.95))
    raise CaptureError(
        f"{region.label} could not be captured within the size budget ({max_bytes} bytes, the smallest "
        f"try was {smallest}); ask for a smaller max_width, or capture one element by target."
    )


def _kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB"


async def _shoot(
    page: Page, region: _Region, clip_scale: float, codec: str, quality: int | None, timeout: float
) -> bytes:
    params: dict[str, Any] = {
        "format": codec,
        "clip": {
            "x": region.x,
            "y": region.y,
            "width": region.width,
            "height": region.height,
            "scale": clip_scale,
        },
        "captureBeyondViewport": region.beyond_viewport,
    }
    if quality is not None:
        params["quality"] = quality
    answer = await page.send("Page.captureScreenshot", params, timeout=timeout)
    return base64.b64decode(answer.get("data", ""))


def _capture(
    data: bytes,
    codec: str,
    quality: int | None,
    region: _Region,
    dpr: float,
    scale: Scale,
    notes: tuple[str, ...],
) -> Capture:
    from PIL import Image  # reads the header only: the browser's own size, not an estimate

    with Image.open(BytesIO(data)) as image:
        width, height = image.size
    return Capture(
        data=data,
        mime_type=_MIME[codec],
        width=width,
        height=height,
        label=region.label,
        css_width=round(region.width),
        css_height=round(region.height),
        device_scale=dpr,
        scale=scale,
        quality=quality,
        notes=notes,
    )
