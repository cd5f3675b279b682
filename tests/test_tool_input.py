"""Bad input is refused with a clear tool error before any request reaches the API, and a session id can
never change the request path."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from chaser_mcp.api import SESSION_ID_PATTERN
from tests.fake_chaser import FakeChaser
from tests.mcp_support import error_text

pytestmark = pytest.mark.anyio

MALFORMED_SESSION_IDS = {
    "parent": "../x",
    "slash": "sess_a/b",
    "encoded-dots": "sess_%2e%2e",
    "query": "sess_a?b=c",
    "fragment": "sess_a#b",
    "empty": "",
    "10k-chars": "sess_" + "a" * 10_000,
    "unicode": "sess_ünï",
    "fullwidth-digits": "sess_\uff11\uff12\uff13",
    "trailing-newline": "sess_abc\n",
    "space": "sess_a b",
    "no-prefix": "019ec0d0-a88a-7000-8000-000000000000",
    "dot-dot-suffix": "sess_a..",
}

BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("create_session", {"ttl_seconds": 59}, "ttl_seconds"),
    ("create_session", {"ttl_seconds": 3601}, "ttl_seconds"),
    ("create_session", {"ttl_seconds": "abc"}, "ttl_seconds"),
    ("create_session", {"ttl_seconds": 600.5}, "ttl_seconds"),
    ("list_sessions", {"limit": 0}, "limit"),
    ("list_sessions", {"limit": 101}, "limit"),
    ("list_sessions", {"cursor": "c" * 2049}, "cursor"),
    ("take_screenshot", {"session_id": "sess_abc", "image_format": "gif"}, "image_format"),
    ("take_screenshot", {"session_id": "sess_abc", "max_width": 63}, "max_width"),
    ("take_screenshot", {"session_id": "sess_abc", "max_width": 4097}, "max_width"),
    ("take_screenshot", {"session_id": "sess_abc", "scale": "retina"}, "scale"),
    ("screenshot_url", {"url": "https://example.com/", "scale": 2}, "scale"),
]

# A valid value for each argument a session-id tool may require besides the id, so that a call
# fails on the session id alone.
VALID_ARGUMENTS: dict[str, Any] = {
    "url": "https://example.com/",
    "query": "Sign in",
    "action": "reload",
    "reason": "log in",
}


def _case_id(case: tuple[str, dict[str, Any], str]) -> str:
    tool, arguments, _ = case
    shown = {
        k: next((n for n, v in MALFORMED_SESSION_IDS.items() if v == a), a) for k, a in arguments.items()
    }
    return f"{tool}-{shown}"


@pytest.mark.parametrize(("tool", "arguments", "names"), BAD_INPUT, ids=[_case_id(c) for c in BAD_INPUT])
async def test_bad_input_is_refused_with_a_clear_error_before_any_request(
    mcp_client: Client, fake_chaser: FakeChaser, tool: str, arguments: dict[str, Any], names: str
) -> None:
    message = error_text(await mcp_client.call_tool(tool, arguments))

    assert f"Invalid arguments for {tool}" in message and names in message
    assert "Nothing was sent" in message
    assert len(message) < 600  # a 10k-character id is not echoed back whole
    assert fake_chaser.requests == []


async def session_id_tools(client: Client) -> dict[str, dict[str, Any]]:
    """Every tool in the server's own inventory that takes a session id, with valid values for its
    other required arguments: a new tool joins the sweeps below without being listed here."""
    tools: dict[str, dict[str, Any]] = {}
    for tool in (await client.list_tools()).tools:
        if "session_id" not in tool.input_schema.get("properties", {}):
            continue
        others = set(tool.input_schema.get("required", [])) - {"session_id"}
        unknown = others - VALID_ARGUMENTS.keys()
        assert not unknown, f"add a valid value for {tool.name}'s {sorted(unknown)} to VALID_ARGUMENTS"
        tools[tool.name] = {name: VALID_ARGUMENTS[name] for name in others}
    assert len(tools) >= 4, f"the inventory lists too few session-id tools: {sorted(tools)}"
    return tools


async def test_every_session_id_tool_refuses_a_missing_id_before_any_request(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    for tool, arguments in (await session_id_tools(mcp_client)).items():
        message = error_text(await mcp_client.call_tool(tool, arguments))
        assert f"Invalid arguments for {tool}" in message and "session_id is required" in message, message
        assert "Nothing was sent" in message
    assert fake_chaser.requests == []


@pytest.mark.parametrize("session_id", MALFORMED_SESSION_IDS.values(), ids=MALFORMED_SESSION_IDS.keys())
async def test_every_session_id_tool_refuses_a_malformed_id_before_any_request(
    mcp_client: Client, fake_chaser: FakeChaser, session_id: str
) -> None:
    for tool, arguments in (await session_id_tools(mcp_client)).items():
        message = error_text(await mcp_client.call_tool(tool, {**arguments, "session_id": session_id}))
        assert f"Invalid arguments for {tool}" in message and "session_id" in message, message
        assert "Nothing was sent" in message
        assert len(message) < 600  # a 10k-character id is not echoed back whole
    assert fake_chaser.requests == []


session_id_candidates = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40).map(lambda rest: "sess_" + rest),
    st.from_regex(SESSION_ID_PATTERN, fullmatch=True),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=session_id_candidates)
async def test_a_session_id_is_refused_or_becomes_exactly_one_path_segment(
    mcp_client: Client, fake_chaser: FakeChaser, session_id: str
) -> None:
    fake_chaser.reset_requests()

    result = await mcp_client.call_tool("get_session", {"session_id": session_id})

    paths = [r.path for r in fake_chaser.requests]
    if re.fullmatch(SESSION_ID_PATTERN, session_id):
        assert paths == [f"/v1/sessions/{session_id}"]
        assert "HTTP 404 session_not_found" in error_text(result)
    else:
        assert paths == []
        assert "Invalid arguments for get_session" in error_text(result)


# -- browsing tools -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "chrome://settings", "example.com", "", "http://"]
)
async def test_navigate_refuses_a_non_http_url_before_any_request(
    mcp_client: Client, fake_chaser: FakeChaser, url: str
) -> None:
    result = await mcp_client.call_tool("navigate", {"session_id": "sess_0123", "url": url})
    assert result.is_error
    assert fake_chaser.count() == 0


async def test_read_page_refuses_a_negative_offset_before_any_request(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    result = await mcp_client.call_tool("read_page", {"session_id": "sess_0123", "offset": -1})
    assert result.is_error and "offset" in error_text(result)
    assert fake_chaser.count() == 0


async def test_navigate_on_a_session_that_is_not_ready_says_to_wait(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session(ready=False)
    result = await mcp_client.call_tool("navigate", {"session_id": session_id, "url": "https://example.com/"})
    assert result.is_error and "creating" in error_text(result) and "wait a few seconds" in error_text(result)
