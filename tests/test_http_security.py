"""The HTTP gate against odd and hostile requests: SSE stream ids in every spelling the SDK accepts,
2026-07-28 requests carrying an Mcp-Session-Id, half-sent bodies, Host/Origin allow-lists, the token file.

Each test runs a real ``chaser-mcp`` server process on loopback against the fake Chaser API.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote
from uuid import UUID

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from chaser_mcp.config import Settings, SettingsError
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.http_clients import send_half_a_body, sse_stream, tool_call
from tests.http_server import ROOT, HttpServer
from tests.mcp_support import wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(ready_delay=0.05) as fake:
        yield fake


def start(fake: FakeChaser, tmp_path: Path, transport: str = "http", *args: str, **env: str) -> HttpServer:
    return HttpServer(fake.url, transport=transport, env={"CHASER_KEY": DEFAULT_KEY, **env}, args=args).start(
        tmp_path
    )


@pytest.fixture
def sse_server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = start(fake, tmp_path, "sse")
    yield running
    running.stop()


@pytest.fixture
def http_server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = start(fake, tmp_path)
    yield running
    running.stop()


# -- SSE: the stream id as the SDK parses it -------------------------------------------------------

SPELLINGS: dict[str, Callable[[str], str]] = {
    "braces": lambda hex_: "{" + hex_ + "}",
    "urn": lambda hex_: f"urn:uuid:{hex_}",
    "uuid-prefix": lambda hex_: f"uuid:{hex_}",
    "upper-case": lambda hex_: hex_.upper(),
    "dashed": lambda hex_: str(UUID(hex=hex_)),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_a_session_created_through_any_spelling_of_the_stream_id_ends_with_the_stream(
    fake: FakeChaser, sse_server: HttpServer, spelling: str
) -> None:
    with anyio.fail_after(30):
        async with sse_stream(sse_server.base) as stream:
            await stream.initialize()
            other_spelling = SPELLINGS[spelling](stream.stream_id)
            posted = await stream.post(tool_call(2, "create_session", {}), stream_id=other_spelling)
            assert posted.status_code == 202
            answer = await stream.answer(2)
            session_id = answer["result"]["structuredContent"]["id"]
            assert [s["id"] for s in fake.open_sessions()] == [session_id]
        await wait_until(lambda: session_id in fake.deleted_ids(), timeout=10, what="the DELETE at close")


async def test_an_unparseable_stream_id_is_refused_without_forging_a_log_line(sse_server: HttpServer) -> None:
    forged = "0" * 31 + "\nchaser-mcp CRITICAL forged: the server was breached"
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{sse_server.base}/messages/?session_id={quote(forged)}",
            json=tool_call(1, "create_session", {}),
        )
    assert response.status_code == 400
    assert "connect to /sse" in response.text
    lines = sse_server.stderr().splitlines()
    assert not [line for line in lines if line.startswith("chaser-mcp CRITICAL forged")]


async def test_posting_to_a_stream_that_does_not_exist_opens_no_conversation(
    fake: FakeChaser, sse_server: HttpServer
) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{sse_server.base}/messages/?session_id={'ab' * 16}", json=tool_call(1, "create_session", {})
        )
        health = (await http.get(f"{sse_server.base}/healthz")).json()
    assert response.status_code == 404
    assert health["conversations"] == 0 and fake.count("POST") == 0


# -- 2026-07-28: an Mcp-Session-Id header means nothing -------------------------------------------


async def test_a_2026_request_carrying_an_mcp_session_id_acts_in_the_callers_lease(
    fake: FakeChaser, http_server: HttpServer
) -> None:
    stray = httpx2.AsyncClient(headers={"Mcp-Session-Id": "f" * 32}, timeout=30)
    with anyio.fail_after(30):
        transport = streamable_http_client(http_server.mcp_url, http_client=stray)
        async with Client(transport, mode="auto") as client:
            assert client.protocol_version == "2026-07-28"
            created = await client.call_tool("create_session", {})
            assert created.structured_content is not None
            session_id = created.structured_content["id"]
        async with Client(http_server.mcp_url, mode="auto") as plain:
            listed = await plain.call_tool("list_sessions", {"owned_only": True})
            deleted = await plain.call_tool("delete_session", {"session_id": session_id})
    assert listed.structured_content is not None
    assert [s["id"] for s in listed.structured_content["sessions"]] == [session_id]
    assert deleted.structured_content is not None and deleted.structured_content["outcome"] == "deleted"


# -- a client that hangs up mid-body ---------------------------------------------------------------


def test_a_client_hanging_up_mid_body_is_one_log_line_not_a_traceback(http_server: HttpServer) -> None:
    send_half_a_body(http_server.port, "/mcp")
    assert wait_until_logged(http_server, "disconnected before sending its whole request body")
    log = http_server.stderr()
    assert "Traceback" not in log and " ERROR " not in log
    assert log.count("disconnected before sending") == 1


async def test_a_client_hanging_up_mid_body_on_an_sse_stream_is_one_log_line(sse_server: HttpServer) -> None:
    async with sse_stream(sse_server.base) as stream:
        await anyio.to_thread.run_sync(
            send_half_a_body, sse_server.port, f"/messages/?session_id={stream.stream_id}"
        )
        assert await anyio.to_thread.run_sync(
            wait_until_logged, sse_server, "disconnected before sending its whole request body"
        )
    log = sse_server.stderr()
    assert "Traceback" not in log and " ERROR " not in log


def wait_until_logged(server: HttpServer, text: str) -> bool:
    from tests.http_server import wait_until as poll

    return poll(lambda: text in server.stderr(), timeout=10)


# -- Host and Origin are checked independently -----------------------------------------------------


def test_any_host_still_refuses_a_foreign_origin(fake: FakeChaser, tmp_path: Path) -> None:
    server = start(fake, tmp_path, "http", "--allowed-host", "*")
    try:
        foreign_host = httpx2.post(server.mcp_url, headers={"Host": "mcp.example.com"}, json={})
        foreign_origin = httpx2.post(server.mcp_url, headers={"Origin": "http://evil.example"}, json={})
        listed_origin = httpx2.post(server.mcp_url, headers={"Origin": "http://localhost:3000"}, json={})
    finally:
        server.stop()
    assert foreign_host.status_code not in (421, 403)
    assert foreign_origin.status_code == 403
    assert listed_origin.status_code not in (421, 403)


# -- the inbound token from a file -----------------------------------------------------------------


def test_the_auth_token_help_warns_that_the_flag_is_visible_to_local_users() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chaser_mcp", "--help"], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    help_text = " ".join(result.stdout.split())
    assert "/proc/<pid>/cmdline" in help_text and "prefer CHASER_AUTH_TOKEN or --auth-token-file" in help_text
    assert "--auth-token-file PATH" in help_text


async def test_a_token_file_is_read_once_at_start(fake: FakeChaser, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  from-a-file-0123456789\n")
    server = start(fake, tmp_path, "http", "--auth-token-file", str(token_file))
    try:
        token_file.write_text("changed-after-start")
        async with httpx2.AsyncClient() as raw:
            refused = await raw.post(
                server.mcp_url, json={}, headers={"Authorization": "Bearer changed-after-start"}
            )
        http = httpx2.AsyncClient(headers={"Authorization": "Bearer from-a-file-0123456789"}, timeout=30)
        with anyio.fail_after(30):
            async with Client(streamable_http_client(server.mcp_url, http_client=http), mode="legacy") as c:
                assert (await c.list_tools()).tools
    finally:
        server.stop()
    assert refused.status_code == 401
    assert "from-a-file" not in server.stderr()


def test_the_token_file_can_come_from_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("env-file-token\n")
    settings = Settings.from_env({"CHASER_AUTH_TOKEN_FILE": str(token_file)})
    assert settings.auth_token == "env-file-token"


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read the auth token file"), ("  \n", "is empty"), ("tök\n", "printable ASCII")],
)
def test_an_unusable_token_file_stops_the_start_naming_it(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({}, auth_token_file=str(token_file))
    assert problem in str(caught.value) and str(token_file) in str(caught.value)


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("one")
    with pytest.raises(SettingsError, match="keep only one"):
        Settings.from_env({"CHASER_AUTH_TOKEN": "two", "CHASER_AUTH_TOKEN_FILE": str(token_file)})


def test_a_token_file_flag_replaces_a_token_in_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-flag-file")
    settings = Settings.from_env({"CHASER_AUTH_TOKEN": "from-env"}, auth_token_file=str(token_file))
    assert settings.auth_token == "from-flag-file"


def test_an_unusable_token_file_makes_the_command_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = subprocess.run(
        [sys.executable, "-m", "chaser_mcp", "--transport", "http", "--auth-token-file", str(missing)],
        env={"CHASER_KEY": DEFAULT_KEY, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "cannot read the auth token file" in result.stderr and "No such file" in result.stderr
