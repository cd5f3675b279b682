"""Fit a PNG screenshot into an MCP client's image budget.

Claude Desktop rejects a tool result over 1 MB, and one bad image breaks every later turn of the
conversation, so a screenshot must leave this module small enough, in a format whose MIME type matches
its bytes. The common case (a screenshot that already fits) costs a header read and nothing else:
Pillow is imported only when pixels really have to change.

`fit_screenshot` is pure and synchronous (no I/O, no MCP); the tool calls it in a worker thread.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # Pillow is imported lazily, in the slow path only
    from PIL import Image

__all__ = [
    "DEFAULT_MAX_BASE64_BYTES",
    "DEFAULT_MAX_LONG_EDGE",
    "FittedImage",
    "ImageFormat",
    "base64_length",
    "fit_screenshot",
    "human_bytes",
]

ImageFormat = Literal["auto", "png", "jpeg", "webp"]

DEFAULT_MAX_BASE64_BYTES = 1_000_000
# Anthropic's guidance: images with a long edge over 1568 px are downscaled server-side anyway.
DEFAULT_MAX_LONG_EDGE = 1568

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A PNG always ends with this exact chunk (empty IEND and its fixed CRC): a cheap truncation check.
_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Valid bit depths per PNG colour type (PNG spec, table 11.1).
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}

# Lossy qualities tried in order at the first size; later, smaller sizes use the last one.
QUALITY_LADDER = (85, 75, 60, 45)
# Hard cap on encodes per call, so a hostile budget cannot make one screenshot cost seconds of CPU.
MAX_ENCODE_ATTEMPTS = 16
# Each extra downscale step shrinks the scale by a factor in this range (estimated from the overshoot).
_SHRINK_MIN, _SHRINK_MAX = 0.3, 0.85
# Refuse to decode more pixels than this (about 256 MB as RGBA); a 1082 px wide full page is ~59k px tall.
MAX_DECODE_PIXELS = 64_000_000
# The Claude API rejects images with an edge over 8000 px, so such an image is never passed through
# untouched even when it is small in bytes, and is never produced either.
HARD_MAX_EDGE = 8000

_Codec = Literal["PNG", "JPEG", "WEBP"]
_CODEC_FOR_FORMAT: dict[str, _Codec] = {"auto": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_LABEL = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
_CODEC_MAX_EDGE = {"PNG": HARD_MAX_EDGE, "JPEG": HARD_MAX_EDGE, "WEBP": min(HARD_MAX_EDGE, 16383)}


@dataclass(frozen=True)
class FittedImage:
    """A screenshot ready for an MCP image block: `data` is raw bytes of type `mime_type`."""

    data: bytes
    mime_type: str
    width: int
    height: int
    original_width: int
    original_height: int
    original_bytes: int
    changes: tuple[str, ...]

    def summary(self) -> str:
        """One short line for the text block next to the image: what the model is looking at."""
        fmt = _LABEL.get(self.mime_type.removeprefix("image/").upper(), self.mime_type)
        head = f"{fmt} {self.width}x{self.height}, {human_bytes(len(self.data))}"
        if not self.changes:
            return f"{head}, original screenshot unchanged"
        original = f"original PNG {self.original_width}x{self.original_height}, "
        return f"{head}; {', '.join(self.changes)}; {original}{human_bytes(self.original_bytes)}"


def base64_length(n: int) -> int:
    """Length of the padded base64 encoding of `n` bytes."""
    return 4 * ((n + 2) // 3)


def fit_screenshot(
    png: bytes,
    *,
    max_base64_bytes: int = DEFAULT_MAX_BASE64_BYTES,
    max_width: int | None = None,
    image_format: ImageFormat = "auto",
    max_long_edge: int = DEFAULT_MAX_LONG_EDGE,
) -> FittedImage:
    """Return `png` as an image whose base64 is at most `max_base64_bytes`.

    If nothing asks for a change (format "auto"/"png", no narrower `max_width`, fits the budget), the
    original bytes come back untouched without loading Pillow. Otherwise the image is downscaled to
    `max_width` and `max_long_edge` (never upscaled) and re-encoded ("auto" means JPEG), lowering quality
    and then size until it fits. Raises ValueError for input that is not a PNG, for bad arguments, and
    when the budget is too small for even the smallest image reachable.
    """
    _check_arguments(max_base64_bytes, max_width, image_format, max_long_edge)
    width, height = _png_dimensions(png)
    data = png if type(png) is bytes else bytes(png)

    untouched = (
        image_format in ("auto", "png")
        and (max_width is None or max_width >= width)
        and max(width, height) <= HARD_MAX_EDGE
        and base64_length(len(data)) <= max_base64_bytes
    )
    if untouched:
        return FittedImage(data, "image/png", width, height, width, height, len(data), ())
    return _reencode(
        data,
        width,
        height,
        max_base64_bytes=max_base64_bytes,
        max_width=max_width,
        codec=_CODEC_FOR_FORMAT[image_format],
        max_long_edge=max_long_edge,
    )


def _check_arguments(
    max_base64_bytes: int, max_width: int | None, image_format: str, max_long_edge: int
) -> None:
    if max_base64_bytes < 1:
        raise ValueError(f"max_base64_bytes must be positive, got {max_base64_bytes}")
    if max_width is not None and max_width < 1:
        raise ValueError(f"max_width must be at least 1, got {max_width}")
    if max_long_edge < 1:
        raise ValueError(f"max_long_edge must be at least 1, got {max_long_edge}")
    if image_format not in get_args(ImageFormat):
        allowed = ", ".join(get_args(ImageFormat))
        raise ValueError(f"image_format must be one of {allowed}; got {image_format!r}")


def _png_dimensions(png: bytes) -> tuple[int, int]:
    """Validate the PNG framing (signature, IHDR, final IEND) and return (width, height) from IHDR."""
    if not png:
        raise ValueError("screenshot is empty; expected PNG bytes")
    if png[:8] != PNG_SIGNATURE:
        raise ValueError(f"screenshot is not a PNG (bad signature; it looks like {_sniff(png)})")
    # Signature, then the IHDR chunk: length (13), type, 13 data bytes, CRC over type + data.
    if len(png) < 8 + 25 + len(_IEND_CHUNK):
        raise ValueError(f"screenshot is a truncated PNG ({len(png)} bytes)")
    length, chunk_type = struct.unpack(">I4s", png[8:16])
    if length != 13 or chunk_type != b"IHDR":
        raise ValueError("screenshot is not a valid PNG (the first chunk is not a 13-byte IHDR)")
    ihdr = png[16:29]
    (crc,) = struct.unpack(">I", png[29:33])
    if zlib.crc32(b"IHDR" + ihdr) != crc:
        raise ValueError("screenshot is not a valid PNG (IHDR checksum mismatch)")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", ihdr[:10])
    if not (1 <= width < 2**31 and 1 <= height < 2**31):
        raise ValueError(f"screenshot is not a valid PNG (dimensions {width}x{height})")
    if bit_depth not in _BIT_DEPTHS.get(colour_type, ()):
        raise ValueError(f"screenshot is not a valid PNG (colour type {colour_type}, bit depth {bit_depth})")
    if not png.endswith(_IEND_CHUNK):
        raise ValueError(f"screenshot is a truncated PNG (no IEND chunk at the end of {len(png)} bytes)")
    return width, height


def _sniff(data: bytes) -> str:
    """Name the format of non-PNG bytes, so the error says what was actually received."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.lstrip()[:1] in (b"{", b"<"):
        return "text (JSON or HTML?)"
    return "unknown data"


def _reencode(
    png: bytes,
    width: int,
    height: int,
    *,
    max_base64_bytes: int,
    max_width: int | None,
    codec: _Codec,
    max_long_edge: int,
) -> FittedImage:
    """The slow path: decode, downscale, then encode down a quality ladder and smaller sizes."""
    from PIL import Image

    if width * height > MAX_DECODE_PIXELS:
        raise ValueError(
            f"screenshot is {width}x{height} ({width * height:,} pixels), over the {MAX_DECODE_PIXELS:,} "
            "pixel limit for resizing"
        )
    image = _decode(png)
    changes: list[str] = []
    image, flattened = _normalise_mode(image, codec)

    long_edge_limit = min(max_long_edge, _CODEC_MAX_EDGE[codec])
    scale = min(1.0, long_edge_limit / max(width, height))
    if max_width is not None:
        scale = min(scale, max_width / width)
    size = _scaled_size(width, height, scale)

    qualities: tuple[int | None, ...] = (None,) if codec == "PNG" else QUALITY_LADDER
    attempts = 0
    shrunk_for_budget = False
    smallest: tuple[int, tuple[int, int]] | None = None  # (base64 length, size) of the best miss
    while True:
        resized = image if size == (width, height) else image.resize(size, Image.Resampling.LANCZOS)
        # The full ladder only at the first size; the shrink estimate below assumes the lowest quality.
        for quality in qualities if not shrunk_for_budget else qualities[-1:]:
            if attempts >= MAX_ENCODE_ATTEMPTS:
                break
            encoded = _encode(resized, codec, quality)
            attempts += 1
            b64_len = base64_length(len(encoded))
            if b64_len <= max_base64_bytes:
                if size != (width, height):
                    changes.insert(0, _downscale_note(width, height, size, codec, shrunk_for_budget))
                if flattened:
                    changes.append("flattened transparency onto white")
                label = _LABEL[codec] if quality is None else f"{_LABEL[codec]} q{quality}"
                changes.append(f"re-encoded as {label}")
                return FittedImage(
                    encoded, _MIME[codec], size[0], size[1], width, height, len(png), tuple(changes)
                )
            if smallest is None or b64_len < smallest[0]:
                smallest = (b64_len, size)
        assert smallest is not None  # at least one encode ran: the cap is never hit at the first size
        next_size = None
        if attempts < MAX_ENCODE_ATTEMPTS:
            # Encoded size grows roughly with pixel count, so shrink each edge by sqrt(overshoot).
            factor = math.sqrt(max_base64_bytes / smallest[0]) * 0.95
            factor = min(_SHRINK_MAX, max(_SHRINK_MIN, factor))
            while next_size is None and size != (1, 1):
                scale *= factor
                candidate = _scaled_size(width, height, scale)
                if candidate != size:
                    next_size = candidate
        if next_size is None:
            b64_len, (w, h) = smallest
            raise ValueError(
                f"max_base64_bytes={max_base64_bytes} is too small for this screenshot: the smallest "
                f"reached was {b64_len} base64 bytes ({_LABEL[codec]} {w}x{h}) after {attempts} attempts"
            )
        size = next_size
        shrunk_for_budget = True


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Both edges scaled from the original (not step by step), so the aspect ratio stays within 1 px."""
    return max(1, min(width, round(width * scale))), max(1, min(height, round(height * scale)))


def _downscale_note(width: int, height: int, size: tuple[int, int], codec: _Codec, for_budget: bool) -> str:
    note = f"downscaled {width}x{height} -> {size[0]}x{size[1]}"
    if not for_budget:
        return note
    if codec == "PNG":
        return f"{note} to fit the size budget (PNG has no quality setting)"
    return f"{note} to fit the size budget"


def _decode(png: bytes) -> Image.Image:
    from PIL import Image

    try:
        image = Image.open(BytesIO(png), formats=["PNG"])
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        # SyntaxError is how Pillow reports a broken PNG chunk (bad CRC, bad length).
        raise ValueError(f"screenshot is not a decodable PNG: {exc}") from exc
    return image


def _normalise_mode(image: Image.Image, codec: _Codec) -> tuple[Image.Image, bool]:
    """Convert to a mode every codec takes (L, RGB or RGBA); for JPEG flatten real transparency on white.

    Returns the image and whether transparent pixels were flattened (worth telling the caller).
    """
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grey: Pillow's convert("L") clips at 255, so scale the range down first.
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    if image.mode == "1":
        image = image.convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return (image if image.mode in ("L", "RGB") else image.convert("RGB")), False
    rgba = image.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 255:  # an alpha channel that is fully opaque carries nothing
        return rgba.convert("RGB"), False
    if codec != "JPEG":
        return rgba, False
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=alpha)
    return flat, True


def _encode(image: Image.Image, codec: _Codec, quality: int | None) -> bytes:
    buffer = BytesIO()
    if codec == "JPEG":
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
    elif codec == "WEBP":
        image.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def human_bytes(n: int) -> str:
    """Decimal units, matching how the 1 MB client limit is stated."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.2f} MB"
