"""Every tool once through the real server process (``python -m chaser_mcp`` over stdio), in both protocol
eras: configuration from the environment, JSON-RPC framing, image blocks and tool errors on the wire.

Each spawn costs about half a second, so each era gets two conversations: the happy path through all six
tools, and the ways a call fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from chaser_mcp.viewer.viewers import DEFAULT_FPS
from tests.fake_chaser import FakeChaser
from tests.mcp_support import (
    TOOL_NAMES,
    Mode,
    error_text,
    image_bytes,
    images,
    sniff_mime,
    stdio_params,
    structured,
    texts,
)

pytestmark = pytest.mark.anyio

EXPECTED_VERSION = {"legacy": "2025-11-25", "auto": "2026-07-28"}


async def test_every_tool_works_through_the_stdio_server(
    fake_chaser: FakeChaser, mode: Mode, tmp_path: Path
) -> None:
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(stdio_params(fake_chaser.url), errlog=errlog), mode=mode) as client:
            assert client.protocol_version == EXPECTED_VERSION[mode]
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert set(TOOL_NAMES) <= listed

            created = structured(await client.call_tool("create_session", {"ttl_seconds": 300}))
            session_id = created["id"]
            assert created["status"] == "ready" and created["owned"] is True

            listing = structured(await client.call_tool("list_sessions", {"limit": 5}))
            assert [(s["id"], s["owned"]) for s in listing["sessions"]] == [(session_id, True)]

            got = structured(await client.call_tool("get_session", {"session_id": session_id}))
            assert got["status"] == "ready" and got["owned"] is True

            shot = await client.call_tool("take_screenshot", {"session_id": session_id})
            (image,) = images(shot)
            assert sniff_mime(image_bytes(image)) == image.mime_type == "image/png"
            assert any(session_id in text for text in texts(shot))

            link = structured(await client.call_tool("get_preview_link", {"session_id": session_id}))
            # This server's own viewer, on the loopback port it opens over stdio (viewer/).
            assert link["url"].startswith("http://127.0.0.1:") and "/viewer/" in link["url"]
            assert link["fps"] == DEFAULT_FPS

            deleted = structured(await client.call_tool("delete_session", {"session_id": session_id}))
            assert deleted["outcome"] == "deleted"

    assert fake_chaser.deleted_ids() == [session_id]
    assert fake_chaser.open_sessions() == []


async def test_tool_errors_come_back_as_error_results_through_the_stdio_server(
    fake_chaser: FakeChaser, mode: Mode, tmp_path: Path
) -> None:
    other = fake_chaser.seed_session()
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(stdio_params(fake_chaser.url), errlog=errlog), mode=mode) as client:
            missing = error_text(await client.call_tool("get_session", {"session_id": "sess_missing"}))
            assert "HTTP 404 session_not_found" in missing and "list_sessions" in missing

            refused = error_text(await client.call_tool("delete_session", {"session_id": other}))
            assert "force=true" in refused

            invalid = error_text(await client.call_tool("take_screenshot", {"session_id": "../etc"}))
            assert "Invalid arguments for take_screenshot" in invalid

    assert fake_chaser.count("DELETE") == 0
    assert [r.path for r in fake_chaser.requests] == ["/v1/sessions/sess_missing"]


async def test_the_stdio_server_without_a_key_names_chaser_key_and_sends_nothing(
    fake_chaser: FakeChaser, tmp_path: Path
) -> None:
    params = stdio_params(fake_chaser.url, api_key=None)
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            message = error_text(await client.call_tool("create_session", {}))

    assert "CHASER_KEY" in message
    assert fake_chaser.requests == []
    assert "CHASER_KEY is not set" in (tmp_path / "stderr.log").read_text(encoding="utf-8")
