"""What every screenshot tool shares: its parameters, and a browser capture turned into the answer.

``take_screenshot`` (``sessions.py``) and ``screenshot_url`` (``one_call.py``) take the same
size, scale and format controls, and answer the same way: an image block whose MIME type
matches its bytes, and one short text line saying what it shows, at what scale, and how it
was made. By default the browser captures at CSS pixels (``capture.py`` says why).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent
from pydantic import Field

from ..config import Settings
from ._params import OptionalText

if TYPE_CHECKING:
    from ..browser.capture import Capture
    from ..browser.page import Page

__all__ = [
    "FullPage",
    "ImageFormatParam",
    "MaxWidth",
    "ScaleParam",
    "ScreenshotBlocks",
    "Shot",
    "Target",
    "browser_capture",
    "describe",
    "image_answer",
]

ScreenshotBlocks = list[TextContent | ImageContent]

MaxWidth = Annotated[
    int | None, Field(ge=64, le=4096, description="Downscale to at most this many pixels wide")
]
ImageFormatParam = Annotated[
    Literal["auto", "png", "jpeg", "webp"],
    Field(description="auto: PNG if small, else JPEG"),
]
ScaleParam = Annotated[
    Literal["css", "device"],
    Field(description="css: 1 px per CSS px; device: full resolution"),
]
FullPage = bool  # the name says it all: no description to pay for
Target = Annotated[OptionalText, Field(description="Element ref or CSS selector")]


@dataclass(frozen=True)
class Shot:
    """An image and the line that says what it is (the tools' text block, a resource's blob)."""

    caption: str
    data: bytes
    mime_type: str

    def blocks(self) -> ScreenshotBlocks:
        return image_answer(self.caption, self.data, self.mime_type)


def image_answer(caption: str, data: bytes, mime_type: str) -> ScreenshotBlocks:
    """The text line, then the image (raw bytes base64-encoded for the protocol, never in the text)."""
    return [
        TextContent(type="text", text=caption),
        ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime_type),
    ]


def describe(shot: Capture) -> str:
    """What the image shows and how it was made, e.g. ``the screen (412x915 CSS px): PNG 412x915,
    91.2 kB, scale css (1 px per CSS px; scale="device" gives 2.625)``."""
    from ..images import human_bytes  # on use, like the capture itself

    fmt = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}[shot.mime_type]
    quality = f" q{shot.quality}" if shot.quality else ""
    px = shot.width / shot.css_width if shot.css_width else 0.0
    # Saying what the other scale would give lets a model decide whether to ask for it.
    other = f'; scale="device" gives {shot.device_scale:g}' if shot.scale == "css" else ""
    text = (
        f"{shot.label} ({shot.css_width}x{shot.css_height} CSS px): {fmt}{quality} "
        f"{shot.width}x{shot.height}, {human_bytes(len(shot.data))}, "
        f"scale {shot.scale} ({px:.3g} px per CSS px{other})"
    )
    return text + "".join(f"; {note}" for note in shot.notes)


async def browser_capture(
    page: Page,
    settings: Settings,
    *,
    where: str,
    full_page: bool = False,
    target: str | None = None,
    image_format: Literal["auto", "png", "jpeg", "webp"] = "auto",
    scale: Literal["css", "device"] = "css",
    max_width: int | None = None,
) -> Capture:
    """``capture.capture`` within the server's size budget, its failures as the one sentence a model
    reads (``where`` names the page in it)."""
    from ..browser.agent import AgentError
    from ..browser.capture import capture
    from ..browser.cdp import CDPException
    from ..browser.page import PageError

    try:
        return await capture(
            page,
            full_page=full_page,
            target=target,
            image_format=image_format,
            scale=scale,
            max_width=max_width,
            # The budget is on the base64 text; 3 raw bytes per 4 characters, whole groups only.
            max_bytes=3 * (settings.screenshot_max_bytes // 4),
            timeout=settings.timeout,
        )
    except AgentError as exc:  # the target: stale ref, bad selector, no match, no size
        raise ToolError(exc.message) from exc
    except (PageError, CDPException) as exc:
        raise ToolError(f"Could not capture {where}: {exc}") from exc
