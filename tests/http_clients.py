"""Raw HTTP clients of a chaser-mcp server, for the tests that need to send what the SDK's client never
would: another caller's Mcp-Session-Id, an odd spelling of an SSE stream id, half a request body."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2

PROTOCOL = "2025-11-25"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def initialize_request(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"},
        },
    }


def tool_call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def rpc_message(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message in a streamable-HTTP answer, sent as JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        message: dict[str, Any] = json.loads(data[-1])
        return message
    parsed: dict[str, Any] = response.json()
    return parsed


async def open_mcp_session(http: httpx2.AsyncClient, url: str, token: str | None = None) -> str:
    """A handshake-era MCP session (initialize + initialized); its Mcp-Session-Id."""
    response = await http.post(url, json=initialize_request(), headers={**ACCEPT, **bearer(token)})
    response.raise_for_status()
    session_id = response.headers["mcp-session-id"]
    headers = session_headers(session_id, token)
    (await http.post(url, json=INITIALIZED, headers=headers)).raise_for_status()
    return session_id


def session_headers(session_id: str, token: str | None = None) -> dict[str, str]:
    return {**ACCEPT, **bearer(token), "Mcp-Session-Id": session_id, "MCP-Protocol-Version": PROTOCOL}


async def call_in_session(
    http: httpx2.AsyncClient,
    url: str,
    session_id: str,
    name: str,
    arguments: dict[str, Any],
    token: str | None = None,
) -> httpx2.Response:
    message = tool_call(7, name, arguments)
    return await http.post(url, json=message, headers=session_headers(session_id, token))


class SseStream:
    """One raw ``GET /sse`` stream: its announced endpoint, and the JSON-RPC answers it carries."""

    def __init__(self, http: httpx2.AsyncClient, base: str, response: httpx2.Response, token: str | None):
        self._http = http
        self._base = base
        self._lines = response.aiter_lines()
        self._token = token
        self.endpoint = ""
        self.stream_id = ""

    async def _event(self) -> tuple[str, str]:
        event, data = "message", []
        async for line in self._lines:
            if not line:
                if data:
                    return event, "\n".join(data)
                continue
            name, _, value = line.partition(":")
            if name == "event":
                event = value.strip()
            elif name == "data":
                data.append(value.removeprefix(" "))
        raise EOFError("the SSE stream ended")

    async def read_endpoint(self) -> None:
        event, data = await self._event()
        assert event == "endpoint", (event, data)
        self.endpoint = data
        self.stream_id = data.partition("session_id=")[2]

    async def post(
        self, message: dict[str, Any], *, stream_id: str | None = None, token: str | None = None
    ) -> httpx2.Response:
        """POST a message to this stream's endpoint, optionally naming the stream another way."""
        params = {"session_id": self.stream_id if stream_id is None else stream_id}
        return await self._http.post(
            f"{self._base}/messages/",
            params=params,
            json=message,
            headers={**bearer(self._token if token is None else token), "Content-Type": "application/json"},
        )

    async def answer(self, request_id: int) -> dict[str, Any]:
        """The next JSON-RPC answer to ``request_id`` on the stream."""
        while True:
            event, data = await self._event()
            if event == "message":
                message: dict[str, Any] = json.loads(data)
                if message.get("id") == request_id:
                    return message

    async def initialize(self) -> None:
        assert (await self.post(initialize_request(1))).status_code == 202
        await self.answer(1)
        assert (await self.post(INITIALIZED)).status_code == 202


@asynccontextmanager
async def sse_stream(base: str, token: str | None = None) -> AsyncIterator[SseStream]:
    """An open SSE stream whose endpoint event has been read; closed on exit."""
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{base}/sse", headers=bearer(token)) as response,
    ):
        response.raise_for_status()
        stream = SseStream(http, base, response, token)
        await stream.read_endpoint()
        yield stream


def send_half_a_body(port: int, path: str, headers: dict[str, str] | None = None) -> None:
    """POST that announces 1000 body bytes, sends 11, and hangs up."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\n{extra}Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + b'{"jsonrpc":')
        time.sleep(0.2)  # let the server start reading before the connection goes
