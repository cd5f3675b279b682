"""Multi-tenant: each caller's bearer is its own Chaser key, and callers cannot reach each other.

Every MCP session and SSE stream belongs to the key that opened it (anyone else gets 404), each key may
hold a bounded number of them, and keys are checked upstream once, in bounded caches. Real server
processes on loopback against the fake Chaser API, except the cache-bound test, which drives the
KeyVerifier directly against the fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from chaser_mcp.api import ChaserClient
from chaser_mcp.conversations import Conversations
from chaser_mcp.transports.auth import KeyVerifier
from tests.fake_chaser import DEFAULT_KEY, Delay, FakeChaser
from tests.http_clients import (
    ACCEPT,
    bearer,
    call_in_session,
    initialize_request,
    open_mcp_session,
    rpc_message,
    session_headers,
    sse_stream,
    tool_call,
)
from tests.http_server import HttpServer, served
from tests.mcp_support import ManualClock, wait_until

pytestmark = pytest.mark.anyio

ALICE = DEFAULT_KEY
BOB = "ck_test_fake_bob_0123456789abcdef"
CAROL = "ck_test_fake_carol_0123456789abcd"
CAP = 3


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    with FakeChaser(api_keys=(ALICE, BOB, CAROL), ready_delay=0.05) as fake:
        yield fake


def tenant_server(fake: FakeChaser, tmp_path: Path, transport: str) -> HttpServer:
    env = {"CHASER_MAX_CONNECTIONS_PER_CALLER": str(CAP)}
    return HttpServer(fake.url, transport=transport, env=env, args=("--multi-tenant",)).start(tmp_path)


@pytest.fixture
def server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = tenant_server(fake, tmp_path, "http")
    yield running
    running.stop()


@pytest.fixture
def sse_server(fake: FakeChaser, tmp_path: Path) -> Iterator[HttpServer]:
    running = tenant_server(fake, tmp_path, "sse")
    yield running
    running.stop()


async def create_in_session(http: httpx2.AsyncClient, url: str, session_id: str, key: str) -> str:
    response = await call_in_session(http, url, session_id, "create_session", {}, token=key)
    assert response.status_code == 200, response.text
    return str(rpc_message(response)["result"]["structuredContent"]["id"])


# -- each MCP session and SSE stream belongs to the key that opened it -----------------------------


async def test_another_tenant_cannot_delete_an_mcp_session(fake: FakeChaser, server: HttpServer) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        alices = await open_mcp_session(http, server.mcp_url, ALICE)
        session = await create_in_session(http, server.mcp_url, alices, ALICE)

        by_bob = await http.delete(server.mcp_url, headers=session_headers(alices, BOB))
        still_hers = await call_in_session(http, server.mcp_url, alices, "list_sessions", {}, token=ALICE)
        by_alice = await http.delete(server.mcp_url, headers=session_headers(alices, ALICE))

    assert by_bob.status_code == 404
    assert still_hers.status_code == 200
    assert [s["id"] for s in rpc_message(still_hers)["result"]["structuredContent"]["sessions"]] == [session]
    assert by_alice.status_code == 200
    await wait_until(lambda: session in fake.deleted_ids(), timeout=10, what="Alice's own DELETE")


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_another_tenant_cannot_use_an_mcp_session_id(
    fake: FakeChaser, server: HttpServer, method: str
) -> None:
    with anyio.fail_after(30):  # a GET let through would be an SSE stream that never ends
        async with httpx2.AsyncClient(timeout=30) as http:
            alices = await open_mcp_session(http, server.mcp_url, ALICE)
            headers = session_headers(alices, BOB)
            if method == "POST":
                call = tool_call(3, "create_session", {})
                response = await http.post(server.mcp_url, json=call, headers=headers)
            else:
                stream = {**headers, "Accept": "text/event-stream"}
                response = await http.get(server.mcp_url, headers=stream)
    assert response.status_code == 404
    assert fake.open_sessions() == []


async def test_another_tenant_cannot_post_into_an_sse_stream(
    fake: FakeChaser, sse_server: HttpServer
) -> None:
    with anyio.fail_after(30):
        async with sse_stream(sse_server.base, ALICE) as alices:
            await alices.initialize()
            by_bob = await alices.post(tool_call(2, "create_session", {}), token=BOB)
            by_alice = await alices.post(tool_call(3, "list_sessions", {}))
            answer = await alices.answer(3)
    assert by_bob.status_code == 404
    assert by_alice.status_code == 202
    assert answer["result"]["structuredContent"]["sessions"] == []
    assert fake.count("POST", "/v1/sessions") == 0


# -- a bounded number of connections per key -------------------------------------------------------


async def test_a_key_over_its_mcp_session_cap_is_told_what_to_do(server: HttpServer) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        alices = [await open_mcp_session(http, server.mcp_url, ALICE) for _ in range(CAP)]
        refused = await http.post(
            server.mcp_url, json=initialize_request(), headers={**ACCEPT, **bearer(ALICE)}
        )
        bobs = await open_mcp_session(http, server.mcp_url, BOB)
        closed = await http.delete(server.mcp_url, headers=session_headers(alices[0], ALICE))
        again = await open_mcp_session(http, server.mcp_url, ALICE)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert f"{CAP} open MCP sessions and SSE streams" in message
    assert "CHASER_MAX_CONNECTIONS_PER_CALLER" in message and "DELETE /mcp" in message
    assert bobs and closed.status_code == 200 and again


async def test_an_mcp_session_idle_past_the_timeout_frees_its_callers_slot(fake: FakeChaser) -> None:
    clock = ManualClock()
    conversations = Conversations(cleanup_timeout=3, sweep_interval=3600, clock=clock)
    changes = {"api_key": None, "multi_tenant": True, "max_connections_per_caller": 1}
    async with (
        served(fake, conversations, session_idle_timeout=60.0, **changes) as target,
        httpx2.AsyncClient(timeout=30) as http,
    ):
        assert await open_mcp_session(http, target.mcp_url, ALICE)
        clock.advance(59)
        refused = await http.post(
            target.mcp_url, json=initialize_request(), headers={**ACCEPT, **bearer(ALICE)}
        )
        clock.advance(2)
        again = await open_mcp_session(http, target.mcp_url, ALICE)
    assert refused.status_code == 429
    assert again


async def test_a_key_over_its_sse_stream_cap_is_refused_until_one_closes(sse_server: HttpServer) -> None:
    with anyio.fail_after(30):
        async with (
            sse_stream(sse_server.base, ALICE),
            sse_stream(sse_server.base, ALICE),
            httpx2.AsyncClient(timeout=30) as http,
        ):
            async with sse_stream(sse_server.base, ALICE):
                refused = await http.get(f"{sse_server.base}/sse", headers=bearer(ALICE))
                async with sse_stream(sse_server.base, BOB) as bobs:
                    assert bobs.stream_id
            async with sse_stream(sse_server.base, ALICE) as reopened:
                assert reopened.stream_id
    assert refused.status_code == 429
    assert "too_many_connections" in refused.text


# -- the bearer and the key check --------------------------------------------------------------------


def test_a_non_ascii_bearer_is_refused_with_401(server: HttpServer) -> None:
    response = httpx2.post(server.mcp_url, headers=[(b"Authorization", "Bearer clé-été".encode())], json={})
    assert response.status_code == 401
    assert "printable ASCII" in response.json()["error"]["message"]
    assert "Traceback" not in server.stderr()


async def test_concurrent_requests_with_a_new_key_check_it_upstream_once(
    fake: FakeChaser, server: HttpServer
) -> None:
    # Every key check takes a while, so all 40 requests arrive while the first is still out.
    fake.inject(Delay(0.5), method="GET", path="/v1/sessions", times=None)
    statuses: list[int] = []

    async def one(http: httpx2.AsyncClient) -> None:
        response = await http.post(server.mcp_url, headers={**ACCEPT, **bearer(CAROL)}, json={})
        statuses.append(response.status_code)

    async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=50)) as http:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one, http)
    checks = [r for r in fake.requests if r.path == "/v1/sessions" and r.api_key == CAROL]
    assert len(statuses) == 40 and 401 not in statuses
    assert len(checks) == 1


async def test_thousands_of_bogus_keys_stay_within_the_cache_bound_and_evict_no_good_key(
    fake: FakeChaser,
) -> None:
    async with ChaserClient(DEFAULT_KEY, base_url=fake.url, timeout=5) as client:
        verifier = KeyVerifier(client, maxsize=100, negative_maxsize=50)
        assert await verifier.is_valid(ALICE)
        limiter = anyio.CapacityLimiter(16)
        refused = 0

        async def bogus(index: int) -> None:
            nonlocal refused
            async with limiter:
                if not await verifier.is_valid(f"ck_test_bogus_{index:06d}"):
                    refused += 1

        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                for index in range(3000):
                    tg.start_soon(bogus, index)
        before = len(fake.requests)
        still_valid = await verifier.is_valid(ALICE)
    assert refused == 3000
    assert len(verifier) <= 150
    assert still_valid and len(fake.requests) == before  # answered from the cache
