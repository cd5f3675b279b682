"""The API key never leaves the process through a tool result, a log line or an error message, not even when
the API echoes it back in an error body."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from chaser_mcp.config import Settings, SettingsError
from tests.fake_chaser import DEFAULT_KEY, FakeChaser, Status
from tests.mcp_support import Harness, Mode, error_text, stdio_params, structured

pytestmark = pytest.mark.anyio

KEY = DEFAULT_KEY


def _visible(result: CallToolResult) -> str:
    """Everything a client (and so a model) receives from one call."""
    return result.model_dump_json(by_alias=True)


def _echoing_bodies(status: int) -> dict[str, Status]:
    return {
        "json-message": Status(status, {"error": {"code": "bad_thing", "message": f"rejected key {KEY}"}}),
        "json-code": Status(status, {"error": {"code": KEY, "message": "rejected"}}),
        "flat-json": Status(status, {"code": "bad_thing", "message": f"Bearer {KEY} is wrong", "key": KEY}),
        "plain-text": Status(status, f"upstream said: Authorization: Bearer {KEY}"),
        "html": Status(status, f"<html><body><pre>{KEY}</pre></body></html>", content_type="text/html"),
    }


ECHO_STATUSES = (400, 401, 403, 404, 409, 422, 429, 500, 503)


async def _every_tool(client: Client, fake: FakeChaser) -> list[CallToolResult]:
    """Each tool in the server's inventory: on its happy path, plus the ordinary failures (404, 409,
    refused delete). The browsing tools fail before any browser use (404, not ready): the fake's
    sessions have no browser to reach."""
    results = [await client.call_tool("create_session", {"wait_until_ready": True})]
    mine = structured(results[0])["id"]
    other = fake.seed_session()
    starting = fake.seed_session(ready=False)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_sessions", {}),
        ("list_sessions", {"owned_only": True}),
        ("get_session", {"session_id": mine}),
        ("take_screenshot", {"session_id": mine}),
        ("get_preview_link", {"session_id": mine}),
        ("get_session", {"session_id": "sess_missing"}),
        ("take_screenshot", {"session_id": starting}),
        ("delete_session", {"session_id": other}),
        ("delete_session", {"session_id": mine}),
        ("delete_session", {"session_id": mine}),
        ("get_session", {"session_id": "../x"}),
        ("navigate", {"session_id": "sess_missing", "url": "https://example.com/"}),
        ("navigate", {"session_id": starting, "url": "https://example.com/"}),
        ("read_page", {"session_id": "sess_missing"}),
        ("read_page", {"session_id": starting}),
        ("snapshot", {"session_id": "sess_missing"}),
        ("find", {"session_id": starting, "query": "x"}),
        ("wait_for", {"session_id": "sess_missing", "text": "x"}),
        ("wait_for", {"session_id": starting, "text": "x"}),
        ("act", {"session_id": "sess_missing", "action": "tap", "target": "#go"}),
        ("act", {"session_id": starting, "action": "back"}),
        ("screenshot_url", {"url": "javascript:alert(1)"}),
        ("read_url", {"url": "file:///etc/passwd"}),
        ("hand_off", {"session_id": starting, "reason": "log in"}),
    ]
    inventory = {tool.name for tool in (await client.list_tools()).tools}
    assert inventory == {"create_session", *(tool for tool, _ in calls)}, "give every tool a call here"
    for tool, arguments in calls:
        results.append(await client.call_tool(tool, arguments))
    return results


async def test_the_key_appears_in_no_tool_result_and_no_debug_log_line(
    mcp_client: Client, fake_chaser: FakeChaser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    results = await _every_tool(mcp_client, fake_chaser)

    assert sum(r.is_error for r in results) == 17  # the failures above really failed
    for result in results:
        assert KEY not in _visible(result)
    assert caplog.records, "nothing was logged at DEBUG: this test would prove nothing"
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert all(r.api_key == KEY for r in fake_chaser.requests)  # the key really was in use


@pytest.mark.parametrize("status", ECHO_STATUSES)
async def test_an_error_body_that_echoes_the_key_does_not_carry_it_into_the_error_or_the_log(
    mcp_harness: Harness, mode: Mode, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = mcp_harness.fake
    session_id = fake.seed_session()

    async with mcp_harness.connect(mode) as client:
        for kind, fault in _echoing_bodies(status).items():
            fake.clear_faults()
            fake.inject(fault, times=None)
            for tool, arguments in [
                ("get_session", {"session_id": session_id}),
                ("create_session", {}),
                ("take_screenshot", {"session_id": session_id}),
            ]:
                result = await client.call_tool(tool, arguments)
                assert f"HTTP {status}" in error_text(result), (kind, tool)
                assert KEY not in _visible(result), (kind, tool)
    assert KEY not in caplog.text


async def test_the_stdio_server_never_writes_the_key_to_stderr(
    fake_chaser: FakeChaser, tmp_path: Path, mode: Mode
) -> None:
    params = stdio_params(fake_chaser.url, CHASER_LOG_LEVEL="DEBUG", CHASER_TIMEOUT="3")
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        async with Client(stdio_client(params, errlog=stderr), mode=mode) as client:
            results = await _every_tool(client, fake_chaser)
            fake_chaser.inject(_echoing_bodies(401)["json-message"], times=None)
            results.append(await client.call_tool("list_sessions", {}))

    log_text = stderr_path.read_text(encoding="utf-8")
    assert "chaser-mcp DEBUG" in log_text, "DEBUG logging was not on: this test would prove nothing"
    assert KEY not in log_text
    assert all(KEY not in _visible(r) for r in results)
    assert "HTTP 401" in error_text(results[-1])


def test_credentials_in_the_base_url_appear_in_no_settings_repr() -> None:
    settings = Settings.from_env({"CHASER_BASE_URL": "https://user:s3cr3t-pass@api.example.com"})
    assert "s3cr3t-pass" not in repr(settings)
    assert "api.example.com" in repr(settings)


def test_credentials_in_a_malformed_base_url_appear_in_no_start_up_error() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"CHASER_BASE_URL": "ftp://user:s3cr3t-pass@api.example.com"})
    assert "s3cr3t-pass" not in str(raised.value)
