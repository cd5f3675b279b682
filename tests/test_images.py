"""fit_screenshot: real PNGs made with Pillow go in, and what comes out is decoded and checked."""

from __future__ import annotations

import random
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chaser_mcp.images import MAX_ENCODE_ATTEMPTS, FittedImage, base64_length, fit_screenshot

MOBILE = (1082, 2402)
BACKGROUND = (30, 120, 200)
MARK = (220, 20, 20)
# The marked block, in original pixels: x 200..500, y 800..1200.
MARK_BOX = (200, 800, 500, 1200)


def png_bytes(image: Image.Image, compress_level: int = 6) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def noise_png(width: int, height: int, seed: int) -> bytes:
    """Random RGB noise: the worst case for every codec, so the budget really has to be fought for."""
    raw = random.Random(seed).randbytes(width * height * 3)
    return png_bytes(Image.frombytes("RGB", (width, height), raw), compress_level=1)


def decode(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def format_by_signature(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "unknown"


def assert_consistent(result: FittedImage, budget: int) -> None:
    """Invariants every result must satisfy: MIME matches bytes, dimensions are true, budget holds."""
    assert format_by_signature(result.data) == result.mime_type
    assert decode(result.data).size == (result.width, result.height)
    assert base64_length(len(result.data)) <= budget


def colour_close(actual: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 30) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual[:3], expected, strict=True))


@pytest.fixture(scope="module")
def flat_png() -> bytes:
    return png_bytes(Image.new("RGB", MOBILE, BACKGROUND))


@pytest.fixture(scope="module")
def marked_png() -> bytes:
    image = Image.new("RGB", MOBILE, BACKGROUND)
    image.paste(MARK, MARK_BOX)
    return png_bytes(image)


@pytest.fixture(scope="module")
def noisy_png() -> bytes:
    data = noise_png(*MOBILE, seed=1)
    assert len(data) > 5_000_000  # several MB, far over the default budget
    return data


@pytest.fixture(scope="module")
def noisy_fitted(noisy_png: bytes) -> FittedImage:
    """Computed once: the oversized default-path result several tests inspect."""
    return fit_screenshot(noisy_png)


@pytest.fixture(scope="module")
def rgba_png() -> bytes:
    """Transparent everywhere except an opaque red square at x 50..150, y 50..150."""
    image = Image.new("RGBA", (300, 500), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (50, 50, 150, 150))
    return png_bytes(image)


@pytest.fixture(scope="module")
def tiny_png() -> bytes:
    return png_bytes(Image.new("RGB", (10, 10), BACKGROUND))


# --- the untouched fast path -------------------------------------------------------------------------


def test_small_png_is_returned_untouched_with_identical_bytes(flat_png: bytes) -> None:
    result = fit_screenshot(flat_png)
    assert result.data == flat_png
    assert result.changes == ()
    assert result.mime_type == "image/png"
    assert (result.width, result.height) == MOBILE
    assert (result.original_width, result.original_height, result.original_bytes) == (*MOBILE, len(flat_png))


def test_tiny_png_is_returned_untouched(tiny_png: bytes) -> None:
    result = fit_screenshot(tiny_png)
    assert result.data == tiny_png
    assert (result.width, result.height, result.changes) == (10, 10, ())


def test_explicit_png_format_that_fits_is_returned_untouched(flat_png: bytes) -> None:
    assert fit_screenshot(flat_png, image_format="png").data == flat_png


def test_max_width_not_narrower_than_the_image_keeps_it_untouched(flat_png: bytes) -> None:
    result = fit_screenshot(flat_png, max_width=MOBILE[0])
    assert result.data == flat_png
    assert result.changes == ()


def test_untouched_summary_says_unchanged(flat_png: bytes) -> None:
    summary = fit_screenshot(flat_png).summary()
    assert "PNG 1082x2402" in summary
    assert "unchanged" in summary


def test_fast_path_never_imports_pillow(tmp_path: Path, flat_png: bytes) -> None:
    sample = tmp_path / "sample.png"
    sample.write_bytes(flat_png)
    script = f"""
import sys
from pathlib import Path
import chaser_mcp.images as images
assert "PIL" not in sys.modules, "importing chaser_mcp.images loaded Pillow"
data = Path({str(sample)!r}).read_bytes()
result = images.fit_screenshot(data)
assert result.data == data and result.changes == ()
assert "PIL" not in sys.modules, "the fast path loaded Pillow"
print("ok")
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"


def test_small_png_taller_than_the_api_edge_limit_is_downscaled() -> None:
    # Small in bytes, but the Claude API rejects an edge over 8000 px, so it must not pass untouched.
    tall = png_bytes(Image.new("RGB", (600, 9000), BACKGROUND))
    result = fit_screenshot(tall)
    assert_consistent(result, 1_000_000)
    assert max(result.width, result.height) <= 1568


# --- oversized screenshots ---------------------------------------------------------------------------


def test_oversized_png_comes_back_as_jpeg_within_budget(noisy_fitted: FittedImage) -> None:
    assert noisy_fitted.mime_type == "image/jpeg"
    assert_consistent(noisy_fitted, 1_000_000)


def test_oversized_png_is_downscaled_to_the_long_edge_limit(noisy_fitted: FittedImage) -> None:
    assert max(noisy_fitted.width, noisy_fitted.height) <= 1568
    assert (noisy_fitted.original_width, noisy_fitted.original_height) == MOBILE


def test_oversized_png_changes_mention_downscale_and_reencode(noisy_fitted: FittedImage) -> None:
    assert any(c.startswith("downscaled 1082x2402 -> ") for c in noisy_fitted.changes)
    assert any(c.startswith("re-encoded as JPEG q") for c in noisy_fitted.changes)


def test_summary_mentions_the_original_size(noisy_fitted: FittedImage, noisy_png: bytes) -> None:
    summary = noisy_fitted.summary()
    assert "\n" not in summary
    assert summary.startswith(f"JPEG {noisy_fitted.width}x{noisy_fitted.height}, ")
    assert f"original PNG 1082x2402, {len(noisy_png) / 1_000_000:.2f} MB" in summary


def test_custom_budget_is_respected(noisy_png: bytes) -> None:
    result = fit_screenshot(noisy_png, max_base64_bytes=150_000)
    assert_consistent(result, 150_000)
    assert any("to fit the size budget" in c for c in result.changes)


def test_same_input_gives_identical_output() -> None:
    data = noise_png(400, 700, seed=2)
    first = fit_screenshot(data, max_base64_bytes=60_000)
    second = fit_screenshot(data, max_base64_bytes=60_000)
    assert first == second


# --- size and format controls ------------------------------------------------------------------------


def test_max_width_is_honoured_with_the_aspect_ratio_kept(flat_png: bytes) -> None:
    result = fit_screenshot(flat_png, max_width=400)
    assert_consistent(result, 1_000_000)
    assert result.width == 400
    assert abs(result.height - 2402 * 400 / 1082) <= 1
    assert "downscaled 1082x2402 -> 400x888" in result.changes


def test_webp_format_gives_webp(flat_png: bytes) -> None:
    result = fit_screenshot(flat_png, image_format="webp")
    assert result.mime_type == "image/webp"
    assert_consistent(result, 1_000_000)
    assert max(result.width, result.height) <= 1568


def test_jpeg_format_reencodes_even_an_image_that_fits(tiny_png: bytes) -> None:
    result = fit_screenshot(tiny_png, image_format="jpeg")
    assert result.mime_type == "image/jpeg"
    assert_consistent(result, 1_000_000)
    assert result.changes == ("re-encoded as JPEG q85",)


def test_small_images_are_never_upscaled(tiny_png: bytes) -> None:
    result = fit_screenshot(tiny_png, image_format="webp", max_width=5000, max_long_edge=5000)
    assert (result.width, result.height) == (10, 10)


def test_png_format_with_max_width_gives_png(flat_png: bytes) -> None:
    result = fit_screenshot(flat_png, image_format="png", max_width=300)
    assert result.mime_type == "image/png"
    assert_consistent(result, 1_000_000)
    assert result.width == 300
    assert result.changes == ("downscaled 1082x2402 -> 300x666", "re-encoded as PNG")


def test_png_format_that_cannot_fit_is_shrunk_and_says_so() -> None:
    data = noise_png(400, 800, seed=3)  # ~960 kB of incompressible pixels
    result = fit_screenshot(data, image_format="png", max_base64_bytes=200_000)
    assert result.mime_type == "image/png"
    assert_consistent(result, 200_000)
    assert abs(result.height / result.width - 2) <= 2 / result.width + 0.01
    assert any("PNG has no quality setting" in c for c in result.changes)


# --- transparency ------------------------------------------------------------------------------------


def test_jpeg_flattens_transparency_onto_white(rgba_png: bytes) -> None:
    result = fit_screenshot(rgba_png, image_format="jpeg")
    decoded = decode(result.data).convert("RGB")
    assert colour_close(decoded.getpixel((250, 400)), (255, 255, 255))  # type: ignore[arg-type]
    assert colour_close(decoded.getpixel((100, 100)), (200, 0, 0))  # type: ignore[arg-type]
    assert "flattened transparency onto white" in result.changes


def test_webp_keeps_transparency(rgba_png: bytes) -> None:
    result = fit_screenshot(rgba_png, image_format="webp")
    decoded = decode(result.data).convert("RGBA")
    assert decoded.getpixel((250, 400))[3] == 0  # type: ignore[index]
    assert decoded.getpixel((100, 100))[3] == 255  # type: ignore[index]


def test_png_keeps_transparency(rgba_png: bytes) -> None:
    result = fit_screenshot(rgba_png, image_format="png", max_width=150)
    decoded = decode(result.data).convert("RGBA")
    assert decoded.getpixel((140, 240))[3] == 0  # type: ignore[index]
    assert decoded.getpixel((50, 50)) == (200, 0, 0, 255)


def test_fully_opaque_alpha_is_not_reported_as_flattened() -> None:
    opaque = png_bytes(Image.new("RGBA", (200, 300), (*BACKGROUND, 255)))
    result = fit_screenshot(opaque, image_format="jpeg")
    assert result.changes == ("re-encoded as JPEG q85",)


# --- pixel content -----------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["jpeg", "png", "webp"])
def test_a_coloured_block_survives_downscaling_in_place(marked_png: bytes, image_format: str) -> None:
    # max_width forces the PNG case off the untouched path too; the long-edge cap is the tighter limit.
    result = fit_screenshot(marked_png, image_format=image_format, max_width=707)  # type: ignore[arg-type]
    assert max(result.width, result.height) == 1568
    decoded = decode(result.data).convert("RGB")
    scale = result.width / MOBILE[0]
    left, top, right, bottom = (round(v * scale) for v in MARK_BOX)
    centre = ((left + right) // 2, (top + bottom) // 2)
    assert colour_close(decoded.getpixel(centre), MARK)  # type: ignore[arg-type]
    # Just inside each corner of the block is still the mark; just outside is the background.
    assert colour_close(decoded.getpixel((left + 3, top + 3)), MARK)  # type: ignore[arg-type]
    assert colour_close(decoded.getpixel((right - 4, bottom - 4)), MARK)  # type: ignore[arg-type]
    assert colour_close(decoded.getpixel((left - 4, top - 4)), BACKGROUND)  # type: ignore[arg-type]
    assert colour_close(decoded.getpixel((right + 3, bottom + 3)), BACKGROUND)  # type: ignore[arg-type]


# --- budgets, generated ------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(16, 320),
    height=st.integers(16, 320),
    budget=st.integers(4_000, 150_000),
    image_format=st.sampled_from(["auto", "png", "jpeg", "webp"]),
    max_width=st.none() | st.integers(8, 400),
    seed=st.integers(0, 2**16),
)
def test_every_result_fits_its_budget_and_matches_its_mime_type(
    width: int, height: int, budget: int, image_format: str, max_width: int | None, seed: int
) -> None:
    data = noise_png(width, height, seed)
    result = fit_screenshot(
        data,
        max_base64_bytes=budget,
        max_width=max_width,
        image_format=image_format,  # type: ignore[arg-type]
        max_long_edge=256,
    )
    assert_consistent(result, budget)
    assert result.width <= width
    assert result.height <= height
    if max_width is not None:
        assert result.width <= max_width
    if result.changes:  # re-encoded, so the long-edge cap applies
        assert max(result.width, result.height) <= 256


# --- rejected input ----------------------------------------------------------------------------------


def jpeg_bytes() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (20, 20), BACKGROUND).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(jpeg_bytes(), "looks like JPEG", id="jpeg"),
        pytest.param(b"\x00garbage" * 100, "not a PNG", id="garbage"),
        pytest.param(b'{"error": "not found"}', "not a PNG", id="json"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"\x89PNG\r\n\x1a\n", "truncated", id="signature-only"),
    ],
)
def test_non_png_input_is_rejected(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_screenshot(data)


@pytest.mark.parametrize("max_width", [None, 100], ids=["fast-path", "slow-path"])
def test_truncated_png_is_rejected(marked_png: bytes, max_width: int | None) -> None:
    with pytest.raises(ValueError, match="truncated"):
        fit_screenshot(marked_png[: len(marked_png) // 2], max_width=max_width)


def test_png_with_a_corrupt_header_checksum_is_rejected(tiny_png: bytes) -> None:
    corrupt = tiny_png[:29] + bytes([tiny_png[29] ^ 0xFF]) + tiny_png[30:]
    with pytest.raises(ValueError, match="IHDR checksum"):
        fit_screenshot(corrupt)


def test_png_with_corrupt_pixel_data_is_rejected_when_it_must_be_decoded(marked_png: bytes) -> None:
    # Framing intact (signature, IHDR, IEND) but the compressed pixel data is garbage.
    middle = len(marked_png) // 2
    corrupt = (
        marked_png[:middle]
        + bytes(b ^ 0x5A for b in marked_png[middle : middle + 64])
        + marked_png[middle + 64 :]
    )
    with pytest.raises(ValueError, match="not a decodable PNG"):
        fit_screenshot(corrupt, max_width=100)


# --- budgets and arguments ---------------------------------------------------------------------------


def test_absurdly_small_budget_raises_with_the_smallest_size_reached(noisy_png: bytes) -> None:
    with pytest.raises(ValueError, match=r"too small.*smallest reached was \d+ base64 bytes") as caught:
        fit_screenshot(noisy_png, max_base64_bytes=100)
    attempts = int(str(caught.value).rsplit("after ", 1)[1].split()[0])
    assert attempts <= MAX_ENCODE_ATTEMPTS


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_base64_bytes": 0}, id="zero-budget"),
        pytest.param({"max_width": 0}, id="zero-width"),
        pytest.param({"max_long_edge": 0}, id="zero-long-edge"),
        pytest.param({"image_format": "gif"}, id="unknown-format"),
    ],
)
def test_bad_arguments_are_rejected(tiny_png: bytes, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        fit_screenshot(tiny_png, **kwargs)  # type: ignore[arg-type]
