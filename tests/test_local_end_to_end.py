"""``chaser-mcp --local`` end to end: a real MCP client, the real server process, real Chromium.

This is what a newcomer with no account gets: create a session, open a page, read it,
screenshot it, watch it live, delete it, and no browser is left behind.
"""

from __future__ import annotations

import base64
import io
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from tests.local_support import (
    BLOCK_BOX,
    BLOCK_COLOUR,
    DPR,
    LoopbackSite,
    chromium_pids_under,
    requires_chromium,
    short_temp_dir,
    wait_for_no_processes,
)
from tests.stdio_process import REPO_ROOT, StdioServer
from tests.viewer_support import next_frame, tap, viewer_socket

pytestmark = [pytest.mark.anyio, requires_chromium]

LOCAL = [sys.executable, "-m", "chaser_mcp", "--local"]


@pytest.fixture
def profiles() -> Iterator[Path]:
    """Where this test's browsers keep their profiles (TMPDIR of the server), so we can count them."""
    with short_temp_dir() as base:
        yield base


@asynccontextmanager
async def local_server(profiles: Path, mode: str, *args: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=LOCAL[0],
        args=[*LOCAL[1:], *args],
        env={"TMPDIR": str(profiles), "CHASER_JOURNAL": "off", "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
    )
    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        yield client


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def pixel(png: bytes, css_x: float, css_y: float) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = image.width / (412 * DPR)  # the capture may have been downscaled to fit the budget
    return tuple(image.getpixel((round(css_x * DPR * scale), round(css_y * DPR * scale))))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_local_session_opens_reads_screenshots_streams_and_leaves_nothing_behind(
    site: LoopbackSite, profiles: Path, mode: str
) -> None:
    with anyio.fail_after(90):
        async with local_server(profiles, mode, "--warm-browsers", "0") as client:
            session = structured(await client.call_tool("create_session", {}))
            session_id = session["id"]
            assert session["status"] == "ready" and session["cdp_url"].startswith("ws://127.0.0.1:")
            assert "Android" in session["device"]

            visit = structured(
                await client.call_tool("navigate", {"session_id": session_id, "url": site.url("/colour")})
            )
            assert (visit["status"], visit["title"]) == (200, "Colour block")

            shot = await client.call_tool("take_screenshot", {"session_id": session_id})
            image = next(block for block in shot.content if block.type == "image")
            left, top, width, height = BLOCK_BOX
            colour = pixel(base64.b64decode(image.data), left + width / 2, top + height / 2)  # type: ignore[union-attr]
            assert all(abs(a - b) <= 8 for a, b in zip(colour, BLOCK_COLOUR, strict=True)), colour

            await client.call_tool("navigate", {"session_id": session_id, "url": site.url("/text?n=400")})
            first = structured(await client.call_tool("read_page", {"session_id": session_id}))
            assert first["text"].startswith("Long read\n\nParagraph 000") and first["next_offset"] is not None
            more = structured(
                await client.call_tool(
                    "read_page", {"session_id": session_id, "offset": first["next_offset"]}
                )
            )
            assert more["offset"] == first["next_offset"] and more["text"]

            await client.call_tool("navigate", {"session_id": session_id, "url": site.url("/button")})
            link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
            assert link["input_enabled"] is True
            # The server's own viewer, on a loopback port it opened for this stdio process.
            assert link["url"].startswith("http://127.0.0.1:") and "/viewer/" in link["url"]
            async with httpx2.AsyncClient() as http:
                assert (await http.get(link["url"])).status_code == 200
            async with viewer_socket(link["url"]) as stream:
                await next_frame(stream)
                await tap(stream, 200, 350)  # the button on /button
                with anyio.fail_after(15):
                    while (  # noqa: ASYNC110 - a page offers no event to wait on
                        "clicked 1x"
                        not in structured(await client.call_tool("read_page", {"session_id": session_id}))[
                            "text"
                        ]
                    ):
                        await anyio.sleep(0.1)

            assert chromium_pids_under(profiles)
            deleted = structured(await client.call_tool("delete_session", {"session_id": session_id}))
            assert deleted["outcome"] == "deleted"
            assert await wait_for_no_processes(lambda: chromium_pids_under(profiles)) == []


async def test_killing_the_local_server_leaves_no_browser(profiles: Path) -> None:
    with anyio.fail_after(60):
        async with StdioServer(
            "http://unused.invalid", command=LOCAL, env={"TMPDIR": str(profiles)}
        ) as server:
            await server.initialize()
            await server.create_session()
            assert chromium_pids_under(profiles)
            server.send_signal(signal.SIGKILL)
            await server.wait(10)
        assert await wait_for_no_processes(lambda: chromium_pids_under(profiles), timeout=10) == []


async def test_closing_stdin_of_the_local_server_deletes_its_sessions_and_browsers(profiles: Path) -> None:
    with anyio.fail_after(60):
        async with StdioServer(
            "http://unused.invalid", command=LOCAL, env={"TMPDIR": str(profiles)}
        ) as server:
            await server.initialize()
            await server.create_session()
            await server.create_session()
            await server.close_stdin()
            assert await server.wait(20) == 0
            assert "2 deleted" in server.stderr_text()
        assert await wait_for_no_processes(lambda: chromium_pids_under(profiles)) == []


async def test_the_local_session_cap_is_a_clear_tool_error(profiles: Path) -> None:
    with anyio.fail_after(60):
        async with local_server(profiles, "legacy", "--max-sessions", "1") as client:
            structured(await client.call_tool("create_session", {}))
            refused = await client.call_tool("create_session", {})
    assert refused.is_error
    text = refused.content[0].text  # type: ignore[union-attr]
    assert "HTTP 429" in text and "session_limit_reached" in text


async def test_without_a_key_every_tool_says_to_set_one_or_use_local() -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "chaser_mcp"], env={"CHASER_JOURNAL": "off"}, cwd=REPO_ROOT
    )
    with anyio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            result = await client.call_tool("create_session", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "CHASER_KEY" in text and "--local" in text
