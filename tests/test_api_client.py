"""ChaserClient against the loopback fake over real sockets: every endpoint, error shape and fault."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from io import BytesIO
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chaser_mcp.api import (
    APIStatusError,
    AuthenticationError,
    ChaserClient,
    InvalidResponse,
    RateLimited,
    RequestTimeout,
    ServerError,
    SessionNotFound,
    SessionNotOpen,
    TransportError,
    check_session_id,
    redact_url,
)
from chaser_mcp.tools.errors import explain
from tests.fake_chaser import DEFAULT_KEY, Delay, Drop, FakeChaser, Hang, Status

pytestmark = pytest.mark.anyio

OTHER_KEY = "ck_test_fake_second_workspace_99"
CREATE = r"/v1/sessions"
ONE = r"/v1/sessions/[^/]+"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, "retry_after_cap": 0.2}


@asynccontextmanager
async def client_for(
    fake: FakeChaser, key: str | None = DEFAULT_KEY, **options: Any
) -> AsyncIterator[ChaserClient]:
    """A client on ``fake`` with the fixture's fast backoffs, overridable per test."""
    async with ChaserClient(key, base_url=fake.url, **{"timeout": 2.0, **FAST, **options}) as client:
        yield client


def full_session(session_id: str = "sess_0123abcd", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": session_id,
        "object": "session",
        "status": "ready",
        "device": "Android 10 - Chrome 137 (Mobile)",
        "cdp_url": f"wss://cdp.chaser.sh/sessions/{session_id}",
        "bytes_up": 22500,
        "bytes_down": 25503,
        "proxy_ip": "203.0.113.9",
        "proxy_region": "us-east",
        "created_at": "2026-06-13T11:49:20.651182Z",
        "ready_at": "2026-06-13T11:49:38.102017Z",
        "expires_at": "2026-06-13T11:59:20.650185Z",
        "ended_at": None,
        "ended_reason": None,
    }
    body.update(changes)
    return body


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# -- happy paths and parsing ----------------------------------------------------------------------


async def test_create_session_returns_a_creating_session_with_its_cdp_url(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session(ttl_seconds=600)

    assert session.status == "creating"
    assert session.is_open
    assert session.cdp_url == f"wss://cdp.chaser.sh/sessions/{session.id}"
    assert session.created_at is not None and session.expires_at is not None
    assert session.expires_at - session.created_at == timedelta(seconds=600)
    assert session.created_at.tzinfo is not None
    assert [s["id"] for s in fake_chaser.open_sessions()] == [session.id]


async def test_create_session_sends_ttl_and_profile_in_the_json_body(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    await chaser_client.create_session(ttl_seconds=120, profile="qa")

    (request,) = fake_chaser.requests
    assert (request.method, request.path) == ("POST", "/v1/sessions")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"ttl_seconds": 120, "profile": "qa"}


async def test_create_session_without_options_sends_an_empty_object(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    await chaser_client.create_session()

    assert fake_chaser.requests[0].json() == {}


async def test_create_session_with_a_ttl_the_api_refuses_raises_a_400_status_error(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    with pytest.raises(APIStatusError) as caught:
        await chaser_client.create_session(ttl_seconds=59)

    assert type(caught.value) is APIStatusError
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert "ttl_seconds" in caught.value.message
    assert fake_chaser.sessions == []


async def test_get_session_parses_every_field_of_a_ready_session(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    session = await chaser_client.get_session(session_id)

    assert (session.id, session.status, session.device) == (
        session_id,
        "ready",
        "Android 10 - Chrome 137 (Mobile)",
    )
    assert session.proxy_ip is not None and session.proxy_region == "us-east"
    assert session.bytes_up is not None and session.bytes_down is not None
    assert session.ready_at is not None and session.created_at is not None
    assert session.ready_at >= session.created_at
    assert (session.ended_at, session.ended_reason) == (None, None)


async def test_get_session_of_an_expired_session_reads_closed_ttl_expired(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session(ttl_seconds=60)
    fake_chaser.advance_clock(61)

    seen = await chaser_client.get_session(session.id)

    assert (seen.status, seen.ended_reason, seen.is_open) == ("closed", "ttl_expired", False)
    assert seen.ended_at == seen.expires_at


async def test_get_session_of_a_crashed_session_reads_error_with_its_reason(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.fail_next_creates(1, reason="browser_crashed")
    session = await chaser_client.create_session()
    fake_chaser.advance_clock(1)

    seen = await chaser_client.get_session(session.id)

    assert (seen.status, seen.ended_reason, seen.is_open) == ("error", "browser_crashed", False)


async def test_get_session_ignores_fields_it_does_not_know(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(
        Status(200, full_session(gpu="adreno", labels={"a": 1}, object="session_v2")), method="GET"
    )

    session = await chaser_client.get_session("sess_0123abcd")

    assert (session.id, session.status, session.bytes_down) == ("sess_0123abcd", "ready", 25503)


async def test_get_session_accepts_a_body_with_only_id_and_status(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(200, {"id": "sess_0123abcd", "status": "creating"}), method="GET")

    session = await chaser_client.get_session("sess_0123abcd")

    assert session.status == "creating"
    assert (session.cdp_url, session.device, session.bytes_up, session.ready_at, session.expires_at) == (
        None,
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"status": "ready"},
        {"id": 5, "status": "ready"},
        {"id": "sess_0123abcd", "status": "ready", "created_at": "yesterday"},
        {"id": "sess_0123abcd", "status": "ready", "bytes_up": "lots"},
        [full_session()],
        "<html>maintenance</html>",
        b"",
    ],
    ids=["no-id", "id-not-text", "bad-date", "bad-int", "a-list", "html", "empty"],
)
async def test_a_2xx_body_that_is_not_a_session_raises_invalid_response(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, body: Any
) -> None:
    fake_chaser.inject(Status(200, body, content_type="application/json"), method="GET")

    with pytest.raises(InvalidResponse, match="not a valid Session"):
        await chaser_client.get_session("sess_0123abcd")

    assert fake_chaser.count("GET") == 1  # a body we cannot read is not retried


async def test_list_sessions_pages_newest_first_until_has_more_is_false(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    created = [(await chaser_client.create_session()).id for _ in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await chaser_client.list_sessions(limit=2, cursor=cursor)
        seen += [s.id for s in page.data]
        cursor = page.next_cursor
        if not page.has_more:
            break

    assert seen == created[::-1]
    assert cursor is None


async def test_list_sessions_sends_limit_and_cursor_as_query_parameters(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    for _ in range(3):
        fake_chaser.seed_session()
    first = await chaser_client.list_sessions(limit=1)
    assert first.next_cursor is not None

    await chaser_client.list_sessions(limit=1, cursor=first.next_cursor)

    assert fake_chaser.requests[0].query == {"limit": ["1"]}
    assert fake_chaser.requests[1].query == {"limit": ["1"], "cursor": [first.next_cursor]}


async def test_list_sessions_without_arguments_sends_no_query(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    page = await chaser_client.list_sessions()

    assert (page.data, page.next_cursor, page.has_more) == ([], None, False)
    assert fake_chaser.requests[0].raw_query == ""


async def test_list_sessions_with_a_malformed_item_raises_invalid_response(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(200, {"object": "list", "data": [{"status": "ready"}], "has_more": False}))

    with pytest.raises(InvalidResponse, match="SessionPage"):
        await chaser_client.list_sessions()


async def test_list_sessions_with_a_bad_cursor_raises_a_400_status_error(chaser_client: ChaserClient) -> None:
    with pytest.raises(APIStatusError) as caught:
        await chaser_client.list_sessions(cursor="not-a-cursor")

    assert (caught.value.status, caught.value.code) == (400, "invalid_request")


async def test_delete_session_returns_true_and_the_session_reads_closed_by_client_delete(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session()

    assert await chaser_client.delete_session(session.id) is True

    seen = await chaser_client.get_session(session.id)
    assert (seen.status, seen.ended_reason) == ("closed", "client_delete")
    assert fake_chaser.deleted_ids() == [session.id]


async def test_delete_session_returns_false_when_the_session_is_already_closed(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session()
    await chaser_client.delete_session(session.id)

    assert await chaser_client.delete_session(session.id) is False
    assert fake_chaser.count("DELETE") == 2


async def test_delete_session_returns_false_for_a_session_that_expired(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session(ttl_seconds=60)
    fake_chaser.advance_clock(120)

    assert await chaser_client.delete_session(session.id) is False
    assert fake_chaser.deleted_ids() == []


async def test_a_delete_whose_answer_was_lost_is_retried_and_reports_already_closed(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    # The first DELETE stopped the session but its 204 never arrived; the retry meets a 409. The
    # caller learns "closed" either way, never an error, and the API saw exactly one real delete.
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Drop(after_effect=True), method="DELETE")

    assert await chaser_client.delete_session(session_id) is False

    assert fake_chaser.count("DELETE") == 2
    assert fake_chaser.deleted_ids() == [session_id]
    assert fake_chaser.open_sessions() == []


async def test_delete_of_an_unknown_session_raises_session_not_found(chaser_client: ChaserClient) -> None:
    with pytest.raises(SessionNotFound) as caught:
        await chaser_client.delete_session("sess_00000000-0000-7000-8000-000000000000")

    assert (caught.value.status, caught.value.code) == (404, "session_not_found")


async def test_screenshot_returns_the_png_bytes_the_api_sent(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    png = await chaser_client.screenshot(session_id)

    assert png.startswith(PNG_SIGNATURE)
    with Image.open(BytesIO(png)) as image:
        assert image.size == (412, 915)
    assert fake_chaser.requests[0].method == "POST"
    assert fake_chaser.requests[0].path == f"/v1/sessions/{session_id}/screenshot"


async def test_screenshot_of_a_large_incompressible_frame_arrives_whole() -> None:
    with FakeChaser(screenshot_size=(1082, 2402), screenshot_noise=True) as fake:
        session_id = fake.seed_session()
        async with client_for(fake, timeout=20.0) as client:
            png = await client.screenshot(session_id)

    assert len(png) > 3_000_000
    with Image.open(BytesIO(png)) as image:
        assert image.size == (1082, 2402)
        image.load()  # decodes every row: a truncated body would fail here


async def test_screenshot_of_a_creating_session_raises_session_not_open(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session()

    with pytest.raises(SessionNotOpen) as caught:
        await chaser_client.screenshot(session.id)

    assert (caught.value.status, caught.value.code) == (409, "session_not_open")
    assert fake_chaser.count("POST", ONE + "/screenshot") == 1  # a 409 is an answer, not retried


async def test_screenshot_with_an_empty_200_body_raises_invalid_response(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(200, b"", content_type="image/png"), path=ONE + "/screenshot")

    with pytest.raises(InvalidResponse, match="empty body"):
        await chaser_client.screenshot(session_id)


async def test_preview_token_parses_url_expiry_input_and_fps(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    token = await chaser_client.preview_token(session_id)

    assert token.url.startswith(f"wss://stream.chaser.sh/sessions/{session_id}/preview?token=")
    assert (token.input_enabled, token.fps) == (True, 5)
    assert token.expires_at is not None and token.expires_at > datetime.now(UTC)
    assert fake_chaser.requests[0].json() == {}


async def test_preview_token_with_only_a_url_is_fine(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(200, {"url": "wss://example.invalid/p", "quality": "hd"}))

    token = await chaser_client.preview_token("sess_0123abcd")

    assert (token.url, token.expires_at, token.input_enabled, token.fps) == (
        "wss://example.invalid/p",
        None,
        False,
        None,
    )


async def test_preview_token_of_a_creating_session_raises_session_not_open(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session(ready=False)

    with pytest.raises(SessionNotOpen):
        await chaser_client.preview_token(session_id)


async def test_concurrent_creates_over_one_pool_all_land_once(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    ids: list[str] = []

    async def create() -> None:
        ids.append((await chaser_client.create_session()).id)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(create)

    assert len(set(ids)) == 20
    assert sorted(s["id"] for s in fake_chaser.open_sessions()) == sorted(ids)
    assert fake_chaser.count("POST") == 20


# -- error bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_request", APIStatusError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", AuthenticationError),
        (404, "session_not_found", SessionNotFound),
        (409, "session_not_open", SessionNotOpen),
        (429, "rate_limited", RateLimited),
        (500, "internal_error", ServerError),
        (503, "unavailable", ServerError),
    ],
)
async def test_a_nested_error_body_gives_status_code_message_and_the_right_class(
    fake_chaser: FakeChaser, status: int, code: str, kind: type[APIStatusError]
) -> None:
    fake_chaser.inject(Status(status, error_body(code, "it went wrong")), times=None)

    async with client_for(fake_chaser, max_retries=0) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.get_session("sess_0123abcd")

    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code, caught.value.message) == (status, code, "it went wrong")
    assert (caught.value.method, caught.value.path) == ("GET", "/v1/sessions/sess_0123abcd")
    assert str(caught.value) == f"GET /v1/sessions/sess_0123abcd -> HTTP {status} {code}: it went wrong"


async def test_a_flat_error_body_gives_code_and_message(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(404, {"code": "session_not_found", "message": "gone"}))

    with pytest.raises(SessionNotFound) as caught:
        await chaser_client.get_session("sess_0123abcd")

    assert (caught.value.code, caught.value.message) == ("session_not_found", "gone")


async def test_an_error_given_as_a_string_becomes_the_message(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(409, {"error": "session is closing"}))

    with pytest.raises(SessionNotOpen) as caught:
        await chaser_client.get_session("sess_0123abcd")

    assert (caught.value.code, caught.value.message) == (None, "session is closing")


async def test_an_html_error_page_becomes_a_codeless_error_with_its_text(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    page = "<html>\n  <body>\n    <h1>502 Bad Gateway</h1>\n  </body>\n</html>"
    fake_chaser.inject(Status(502, page, content_type="text/html"), times=None)

    with pytest.raises(ServerError) as caught:
        await chaser_client.list_sessions()

    assert (caught.value.status, caught.value.code) == (502, None)
    assert caught.value.message == "<html> <body> <h1>502 Bad Gateway</h1> </body> </html>"


async def test_a_long_text_error_body_is_cut_to_200_characters(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(400, "x" * 5000))

    with pytest.raises(APIStatusError) as caught:
        await chaser_client.list_sessions()

    assert caught.value.message == "x" * 200


async def test_an_empty_error_body_falls_back_to_the_reason_phrase(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(500))

    with pytest.raises(ServerError) as caught:
        await chaser_client.list_sessions()

    assert (caught.value.code, caught.value.message) == (None, "Internal Server Error")


async def test_a_json_body_without_code_or_message_is_shown_as_text(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(400, {"detail": "nope"}))

    with pytest.raises(APIStatusError) as caught:
        await chaser_client.list_sessions()

    assert (caught.value.code, caught.value.message) == (None, '{"detail": "nope"}')


async def test_a_404_with_another_code_is_not_taken_for_a_missing_session(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    # A wrong base URL answers not_found for every path; that must not read as "the session is gone".
    fake_chaser.inject(Status(404, error_body("not_found", "no route")))

    with pytest.raises(APIStatusError) as caught:
        await chaser_client.get_session("sess_0123abcd")

    assert not isinstance(caught.value, SessionNotFound)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_a_wrong_key_raises_authentication_error_from_the_api(fake_chaser: FakeChaser) -> None:
    async with client_for(fake_chaser, key="ck_not_a_real_key") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_sessions()

    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert fake_chaser.count() == 1  # a refused key is not retried


async def test_no_key_raises_authentication_error_without_sending_anything(fake_chaser: FakeChaser) -> None:
    async with client_for(fake_chaser, key=None) as client:
        assert client.api_key is None
        with pytest.raises(AuthenticationError) as caught:
            await client.create_session()

    assert caught.value.code == "missing_api_key"
    assert fake_chaser.count() == 0


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_get_is_retried_after_a_transient_gateway_error(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, status: int
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(status), method="GET", times=2)

    session = await chaser_client.get_session(session_id)

    assert session.id == session_id
    assert fake_chaser.count("GET") == 3


async def test_a_500_is_not_retried(chaser_client: ChaserClient, fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Status(500), times=None)

    with pytest.raises(ServerError):
        await chaser_client.list_sessions()

    assert fake_chaser.count() == 1


async def test_a_delete_is_retried_after_a_500(chaser_client: ChaserClient, fake_chaser: FakeChaser) -> None:
    """DELETE is idempotent: giving up on a 500 is how a paid session outlives its conversation."""
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(500, error_body("internal", "boom")), method="DELETE", times=2)

    assert await chaser_client.delete_session(session_id) is True
    assert fake_chaser.count("DELETE") == 3
    assert fake_chaser.open_sessions() == []


async def test_a_delete_whose_connection_is_reset_is_retried(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Drop(), method="DELETE", times=2)

    assert await chaser_client.delete_session(session_id) is True
    assert fake_chaser.count("DELETE") == 3


async def test_a_create_is_still_not_retried_after_a_500(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(500), method="POST", path=CREATE, times=None)

    with pytest.raises(ServerError):
        await chaser_client.create_session()

    assert fake_chaser.count("POST", CREATE) == 1


MALFORMED_GZIP = Status(200, body=b"not gzip", headers={"Content-Encoding": "gzip"})


async def test_an_answer_that_cannot_be_decoded_raises_transport_error_not_an_httpx2_error(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(MALFORMED_GZIP, times=None)

    with pytest.raises(TransportError, match="could not be decoded"):
        await chaser_client.list_sessions()

    assert fake_chaser.count("GET") == 4  # a GET is repeatable, so it was retried first


async def test_a_delete_whose_answer_cannot_be_decoded_is_retried(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(MALFORMED_GZIP, method="DELETE", times=2)

    assert await chaser_client.delete_session(session_id) is True
    assert fake_chaser.count("DELETE") == 3


async def test_a_create_whose_answer_cannot_be_decoded_is_not_retried(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(MALFORMED_GZIP, method="POST", path=CREATE, times=None)

    with pytest.raises(TransportError):
        await chaser_client.create_session()

    assert fake_chaser.count("POST", CREATE) == 1


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_retries_are_bounded_by_max_retries(fake_chaser: FakeChaser, max_retries: int) -> None:
    fake_chaser.inject(Status(503, error_body("unavailable", "down")), times=None)

    async with client_for(fake_chaser, max_retries=max_retries) as client:
        with pytest.raises(ServerError) as caught:
            await client.list_sessions()

    assert caught.value.status == 503
    assert fake_chaser.count("GET") == max_retries + 1


async def test_each_retry_is_logged_once_numbered_from_the_first_attempt(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Status(503, error_body("unavailable", "down")), method="GET", times=2)

    with caplog.at_level(logging.WARNING, logger="chaser_mcp.api"):
        await chaser_client.get_session(session_id)

    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying after")]
    assert [m.split("(attempt ")[1].split(",")[0] for m in retries] == ["1", "2"]
    assert all("HTTP 503 unavailable" in m for m in retries)
    assert fake_chaser.count("GET") == 3


async def test_delete_screenshot_and_preview_are_retried_after_a_503(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()
    for path in (ONE + "/screenshot", ONE + "/preview-token", ONE):
        fake_chaser.inject(Status(503), path=path)

    png = await chaser_client.screenshot(session_id)
    token = await chaser_client.preview_token(session_id)
    deleted = await chaser_client.delete_session(session_id)

    assert png.startswith(PNG_SIGNATURE) and token.fps == 5 and deleted is True
    assert fake_chaser.count() == 6


async def test_a_429_is_retried_after_the_seconds_retry_after_asks_for(fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Status(429, error_body("rate_limited", "slow down"), headers={"Retry-After": "1"}))

    async with client_for(fake_chaser, retry_after_cap=5.0) as client:
        with anyio.fail_after(10):
            await client.list_sessions()

    first, second = fake_chaser.requests
    # The fast backoff alone would wait at most 0.05 s; only Retry-After explains a second's wait.
    assert second.received_at - first.received_at >= 0.95


async def test_a_huge_retry_after_is_capped_by_retry_after_cap(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(429, error_body("rate_limited", "go away"), headers={"Retry-After": "3600"}))

    with anyio.fail_after(10):
        await chaser_client.list_sessions()

    first, second = fake_chaser.requests
    assert second.received_at - first.received_at >= 0.19  # the cap (0.2 s) was waited, not the backoff


async def test_a_retry_after_given_as_an_http_date_is_honoured(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_chaser.inject(Status(429, headers={"Retry-After": when}))

    with anyio.fail_after(10):
        await chaser_client.list_sessions()

    first, second = fake_chaser.requests
    assert second.received_at - first.received_at >= 0.19  # ~30 s asked, capped at 0.2 s


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("soon", None), (None, None)],
    ids=["seconds", "zero", "garbage", "absent"],
)
async def test_rate_limited_carries_the_retry_after_the_api_asked_for(
    fake_chaser: FakeChaser, header: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    fake_chaser.inject(Status(429, error_body("rate_limited", "slow"), headers=headers))

    async with client_for(fake_chaser, max_retries=0) as client:
        with pytest.raises(RateLimited) as caught:
            await client.list_sessions()

    assert caught.value.retry_after == expected


async def test_a_past_http_date_retry_after_means_no_wait(fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Status(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    async with client_for(fake_chaser, max_retries=0) as client:
        with pytest.raises(RateLimited) as caught:
            await client.list_sessions()

    assert caught.value.retry_after == 0.0


async def test_a_get_whose_connection_drops_is_retried(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Drop(), method="GET")

    page = await chaser_client.list_sessions()

    assert page.data == []
    assert fake_chaser.count("GET") == 2


async def test_a_hung_get_times_out_within_the_timeout_and_is_retried(fake_chaser: FakeChaser) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Hang(), method="GET")

    async with client_for(fake_chaser, timeout=0.3) as client:
        with anyio.fail_after(5):
            session = await client.get_session(session_id)

    assert session.id == session_id
    assert fake_chaser.count("GET") == 2


async def test_a_get_that_keeps_hanging_raises_request_timeout(fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Hang(), method="GET", times=None)

    async with client_for(fake_chaser, timeout=0.2, max_retries=1) as client:
        with anyio.fail_after(5), pytest.raises(RequestTimeout) as caught:
            await client.list_sessions()

    assert "GET /v1/sessions got no answer within 0.2 s" in str(caught.value)
    assert isinstance(caught.value, TransportError)
    assert fake_chaser.count("GET") == 2


@pytest.mark.parametrize(
    ("wait", "header"), [(0.25, "wait=1"), (1.0, "wait=1"), (2.0, "wait=2"), (2.1, "wait=3")]
)
async def test_get_session_with_wait_sends_prefer_wait_in_whole_seconds_rounded_up(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, wait: float, header: str
) -> None:
    session_id = fake_chaser.seed_session()

    await chaser_client.get_session(session_id, wait=wait)

    assert fake_chaser.requests[-1].headers.get("prefer") == header


async def test_get_session_without_wait_sends_no_prefer(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    await chaser_client.get_session(session_id)

    assert "prefer" not in fake_chaser.requests[-1].headers


async def test_a_get_that_prefers_to_wait_gets_the_wait_on_top_of_its_timeout(
    fake_chaser: FakeChaser,
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(Delay(0.8), method="GET")  # a hold longer than the timeout, within the wait

    async with client_for(fake_chaser, timeout=0.3, max_retries=0) as client:
        session = await client.get_session(session_id, wait=1)

    assert session.id == session_id
    assert fake_chaser.count("GET") == 1


async def test_a_slow_answer_within_the_timeout_is_simply_waited_for(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Delay(0.3), method="POST")

    session = await chaser_client.create_session()

    assert fake_chaser.count("POST") == 1
    assert [s["id"] for s in fake_chaser.open_sessions()] == [session.id]


# -- POST /v1/sessions is never repeated once it may have landed ---------------------------------


async def test_create_is_not_retried_after_a_503(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(503), method="POST", path=CREATE, times=None)

    with pytest.raises(ServerError):
        await chaser_client.create_session()

    assert fake_chaser.count("POST", CREATE) == 1


async def test_create_is_not_retried_after_a_429(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(429, headers={"Retry-After": "0"}), method="POST", path=CREATE, times=None)

    with pytest.raises(RateLimited):
        await chaser_client.create_session()

    assert fake_chaser.count("POST", CREATE) == 1


async def test_create_is_not_retried_when_the_answer_is_dropped_after_the_session_was_made(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Drop(after_effect=True), method="POST", path=CREATE)

    with pytest.raises(TransportError) as caught:
        await chaser_client.create_session()

    assert not isinstance(caught.value, RequestTimeout)
    assert fake_chaser.count("POST", CREATE) == 1
    assert len(fake_chaser.open_sessions()) == 1


async def test_create_is_not_retried_when_it_hangs_after_the_session_was_made(
    fake_chaser: FakeChaser,
) -> None:
    fake_chaser.inject(Hang(after_effect=True), method="POST", path=CREATE)

    async with client_for(fake_chaser, timeout=0.3) as client:
        with anyio.fail_after(5), pytest.raises(RequestTimeout):
            await client.create_session()

    assert fake_chaser.count("POST", CREATE) == 1
    assert len(fake_chaser.open_sessions()) == 1


class _OnRetry(logging.Handler):
    """Runs ``action`` when the client logs that it is about to retry (before it sleeps)."""

    def __init__(self, action: Any) -> None:
        super().__init__(logging.WARNING)
        self.action = action
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying after"):
            self.retries += 1
            if self.retries == 1:
                self.action()


@contextmanager
def on_retry(action: Any) -> Iterator[_OnRetry]:
    logger = logging.getLogger("chaser_mcp.api")
    handler, level = _OnRetry(action), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_create_is_retried_when_the_connection_could_not_be_made_at_all() -> None:
    # The port is bound but not listening, so the first connect is refused; the fake starts serving
    # on that very socket when the client announces its retry, so the second attempt connects.
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    fake = FakeChaser(bound_socket=held)
    base_url = f"http://127.0.0.1:{held.getsockname()[1]}"
    try:
        with on_retry(fake.start) as retries:
            async with ChaserClient(DEFAULT_KEY, base_url=base_url, timeout=2.0, **FAST) as client:
                with anyio.fail_after(10):
                    session = await client.create_session()

        assert retries.retries == 1
        assert fake.count("POST", CREATE) == 1  # the refused attempt never reached any server
        assert [s["id"] for s in fake.open_sessions()] == [session.id]
    finally:
        fake.stop()
        held.close()


async def test_a_refused_connection_raises_transport_error_once_retries_run_out() -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    try:
        base_url = f"http://127.0.0.1:{held.getsockname()[1]}"
        with on_retry(lambda: None) as retries:
            async with ChaserClient(DEFAULT_KEY, base_url=base_url, max_retries=2, **FAST) as client:
                with anyio.fail_after(10), pytest.raises(TransportError) as caught:
                    await client.create_session()
    finally:
        held.close()

    assert "ConnectError" in str(caught.value)
    assert retries.retries == 2


async def test_credentials_in_the_base_url_appear_in_no_error_repr_or_base_url() -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    try:
        base_url = f"http://admin:pw-s3cret%40x@127.0.0.1:{port}/api"
        async with ChaserClient(DEFAULT_KEY, base_url=base_url, max_retries=0, **FAST) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as caught:
                await client.list_sessions()
            shown = [
                str(caught.value),
                repr(client),
                client.base_url,
                explain(caught.value, base_url=base_url),
            ]
    finally:
        held.close()

    for text in shown:
        assert "s3cret" not in text and "admin" not in text, text
    assert client.base_url == f"http://***@127.0.0.1:{port}/api/"


async def test_a_base_url_with_a_path_puts_that_path_before_every_request(fake_chaser: FakeChaser) -> None:
    session_id = fake_chaser.seed_session()
    async with ChaserClient(DEFAULT_KEY, base_url=f"{fake_chaser.url}/api", max_retries=0) as client:
        for call in (client.list_sessions(), client.get_session(session_id), client.get_session(session_id)):
            with pytest.raises(APIStatusError, match="HTTP 404 not_found"):  # the fake serves no /api
                await call
        with pytest.raises(APIStatusError, match="HTTP 404 not_found"):
            await client.for_key(DEFAULT_KEY).delete_session(session_id)

    assert [(r.method, r.path) for r in fake_chaser.requests] == [
        ("GET", "/api/v1/sessions"),
        ("GET", f"/api/v1/sessions/{session_id}"),
        ("GET", f"/api/v1/sessions/{session_id}"),
        ("DELETE", f"/api/v1/sessions/{session_id}"),
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@api.example.com", "https://***@api.example.com"),
        ("https://user:p@ss/word@api.example.com/v", "https://***@api.example.com/v"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
    ],
)
def test_redact_url_drops_every_credential(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- headers, keys and ids ------------------------------------------------------------------------


async def test_every_request_carries_the_bearer_key_and_the_user_agent(
    chaser_client: ChaserClient, fake_chaser: FakeChaser
) -> None:
    session = await chaser_client.create_session()
    await chaser_client.get_session(session.id)
    await chaser_client.list_sessions()
    await chaser_client.delete_session(session.id)

    assert len(fake_chaser.requests) == 4
    for request in fake_chaser.requests:
        assert request.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
        assert request.headers["user-agent"] == "chaser-mcp"
        assert request.headers["accept"] == "application/json"


async def test_a_custom_user_agent_is_sent(fake_chaser: FakeChaser) -> None:
    async with client_for(fake_chaser, user_agent="chaser-mcp/9.9 (tests)") as client:
        await client.list_sessions()

    assert fake_chaser.requests[0].headers["user-agent"] == "chaser-mcp/9.9 (tests)"


async def test_for_key_sends_the_other_key_over_the_same_pool_and_sees_the_other_workspace() -> None:
    with FakeChaser(api_keys=[DEFAULT_KEY, OTHER_KEY]) as fake:
        async with client_for(fake) as client:
            mine = await client.create_session()
            other = client.for_key(OTHER_KEY)

            assert (await other.list_sessions()).data == []
            with pytest.raises(SessionNotFound):
                await other.get_session(mine.id)
            theirs = await other.create_session()
            await other.aclose()  # a view does not own the pool: closing it must not close it
            assert [s.id for s in (await client.list_sessions()).data] == [mine.id]

        keys = [r.api_key for r in fake.requests]
        assert keys == [DEFAULT_KEY, OTHER_KEY, OTHER_KEY, OTHER_KEY, DEFAULT_KEY]
        assert len({r.conn_id for r in fake.requests}) == 1  # one keep-alive connection carried both keys
        assert [s["id"] for s in fake.open_sessions(OTHER_KEY)] == [theirs.id]


async def test_a_view_made_before_any_request_shares_the_pool_built_later() -> None:
    """The pool is built on first use (cheaper start-up); a view may be the first user."""
    with FakeChaser(api_keys=[DEFAULT_KEY, OTHER_KEY]) as fake:
        async with client_for(fake) as client:
            other = client.for_key(OTHER_KEY)
            await other.list_sessions()
            await client.list_sessions()

        assert [r.api_key for r in fake.requests] == [OTHER_KEY, DEFAULT_KEY]
        assert len({r.conn_id for r in fake.requests}) == 1


MALFORMED_IDS = [
    "../x",
    "sess_a/b",
    "sess_%2e%2e",
    "",
    "sess_" + "a" * 200,
    "sess_",
    "sess_a?b=c",
    "sess_a#b",
]


@pytest.mark.parametrize("session_id", MALFORMED_IDS)
@pytest.mark.parametrize("call", ["get_session", "delete_session", "screenshot", "preview_token"])
async def test_a_malformed_session_id_is_refused_before_any_request(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, call: str, session_id: str
) -> None:
    with pytest.raises(ValueError, match="is not a session id"):
        await getattr(chaser_client, call)(session_id)

    assert fake_chaser.count() == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=150))
def test_check_session_id_only_lets_through_text_that_cannot_change_a_path(candidate: str) -> None:
    try:
        accepted = check_session_id(candidate)
    except ValueError:
        return
    assert accepted == candidate
    assert candidate.startswith("sess_") and len(candidate) <= 133
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in candidate)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(["sess_", "sess_a", ""]),
    poison=st.sampled_from(["/", "..", "%2e", "%2F", "?", "#", " ", "\n", "\\", "\x00", "é", ";"]),
    suffix=st.text(alphabet="abc-_/.%", max_size=10),
)
async def test_no_id_with_a_path_character_ever_reaches_the_api(
    chaser_client: ChaserClient, fake_chaser: FakeChaser, prefix: str, poison: str, suffix: str
) -> None:
    with pytest.raises(ValueError):
        await chaser_client.get_session(prefix + poison + suffix)

    assert fake_chaser.count() == 0


# -- the key never leaks --------------------------------------------------------------------------


def _leak_free(error: BaseException) -> None:
    for text in (str(error), repr(error), *(str(arg) for arg in error.args)):
        assert DEFAULT_KEY not in text


@pytest.mark.parametrize(
    "fault",
    [
        Status(401, error_body("unauthorized", f"key {DEFAULT_KEY} was revoked")),
        Status(401, {"code": "unauthorized", "message": f"bad key: {DEFAULT_KEY}"}),
        Status(403, {"error": f"Bearer {DEFAULT_KEY} may not do this"}),
        Status(400, f"<html>Authorization: Bearer {DEFAULT_KEY}</html>", content_type="text/html"),
        Status(404, error_body("session_not_found", f"not in workspace of {DEFAULT_KEY}")),
        Status(429, {"error": {"code": "rate_limited", "message": {"key": DEFAULT_KEY}}}),
        Status(400, error_body(f"invalid_key:{DEFAULT_KEY}", "refused")),
        Status(503, {"code": DEFAULT_KEY}),
    ],
    ids=["nested", "flat", "error-string", "html", "404", "message-object", "in-code", "code-only"],
)
async def test_the_api_key_never_appears_in_an_error_even_when_the_body_echoes_it(
    fake_chaser: FakeChaser, fault: Status
) -> None:
    fake_chaser.inject(fault, times=None)

    async with client_for(fake_chaser, max_retries=0) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.get_session("sess_0123abcd")

    _leak_free(caught.value)
    assert DEFAULT_KEY not in caught.value.message
    assert DEFAULT_KEY not in (caught.value.code or "")


async def test_the_api_key_never_appears_in_a_transport_or_parse_error(fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Drop(), method="GET", path=r"/v1/sessions")
    fake_chaser.inject(Status(200, {"id": DEFAULT_KEY, "status": ["ready", DEFAULT_KEY]}), method="GET")

    async with client_for(fake_chaser, max_retries=0) as client:
        with pytest.raises(TransportError) as dropped:
            await client.list_sessions()
        with pytest.raises(InvalidResponse) as unreadable:
            await client.get_session("sess_0123abcd")

    _leak_free(dropped.value)
    _leak_free(unreadable.value)


async def test_prepare_and_a_racing_request_build_one_http_client_between_them(
    fake_chaser: FakeChaser, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = 0
    building = threading.Event()
    original_init = httpx2.AsyncClient.__init__

    def slow_counting_init(self: httpx2.AsyncClient, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        building.set()
        time.sleep(0.2)  # a slow trust store: the window in which a request asks too
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx2.AsyncClient, "__init__", slow_counting_init)
    async with client_for(fake_chaser) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.prepare)
            await anyio.to_thread.run_sync(building.wait)
            await client.list_sessions()  # while the worker thread is still building
        await client.prepare()
        await client.list_sessions()

    assert built == 1
