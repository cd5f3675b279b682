"""The six session tools through a real MCP client, in both protocol eras, against the fake Chaser API."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import anyio
import pytest
from mcp import Client
from PIL import Image

from tests.fake_chaser import FakeChaser, Status
from tests.mcp_support import (
    SESSION_ID_TOOLS,
    Harness,
    Mode,
    error_text,
    image_bytes,
    images,
    running_server,
    session_ids,
    sniff_mime,
    structured,
    text_of,
    texts,
    wait_until,
)

pytestmark = pytest.mark.anyio

SESSION_PATH = r"/v1/sessions/[^/]+"


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- create_session -------------------------------------------------------------------------------


async def test_create_session_waits_until_ready_and_returns_the_owned_session_as_structured_content(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session = structured(await mcp_client.call_tool("create_session", {}))

    assert session["status"] == "ready"
    assert session["owned"] is True and session["persist"] is False
    assert session["id"] == fake_chaser.sessions[0]["id"]
    assert session["cdp_url"] == fake_chaser.sessions[0]["cdp_url"]
    assert session["device"] and session["ready_at"] and session["expires_at"]
    assert fake_chaser.count("POST", "/v1/sessions") == 1


async def test_create_session_reports_progress_with_the_status_while_it_waits(
    mcp_client: Client, mcp_harness: Harness
) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    session = structured(await mcp_client.call_tool("create_session", {}, progress_callback=on_progress))

    messages = [message or "" for _, _, message in reports]
    assert any("creating" in m for m in messages[:-1]), messages
    assert session["id"] in messages[-1] and "ready" in messages[-1]
    values = [value for value, _, _ in reports]
    assert values == sorted(values)
    assert {total for _, total, _ in reports} == {mcp_harness.settings.ready_timeout}


async def test_create_session_without_waiting_returns_creating_with_a_note(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))

    assert session["status"] == "creating" and session["owned"] is True
    assert "get_session" in session["note"]
    assert fake_chaser.count("GET") == 0  # it did not poll


async def test_create_session_that_outlasts_the_ready_timeout_returns_creating_with_a_note_on_how_to_check(
    fake_chaser: FakeChaser, mode: Mode
) -> None:
    fake_chaser.ready_delay = 30
    async with running_server(fake_chaser, ready_timeout=0.6) as harness, harness.connect(mode) as client:
        session = structured(await client.call_tool("create_session", {}))

        assert session["status"] == "creating" and session["owned"] is True
        assert "get_session" in session["note"] and "0.6 s" in session["note"]
        assert fake_chaser.deleted_ids() == []  # still wanted: it is only slow


async def test_create_session_that_turns_to_error_reports_its_ended_reason_and_deletes_it(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.fail_next_creates(1, reason="browser_crashed")

    message = error_text(await mcp_client.call_tool("create_session", {}))

    session_id = fake_chaser.sessions[0]["id"]
    assert session_id in message and "browser_crashed" in message and "create_session" in message
    assert fake_chaser.count("DELETE", f"/v1/sessions/{session_id}") == 1


async def test_cancelling_create_session_while_it_waits_deletes_the_session(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.ready_delay = 30
    with anyio.fail_after(10):
        with anyio.CancelScope() as waiting:

            async def cancel_on_first_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                waiting.cancel()  # the session exists and the tool is polling it: give up now

            await mcp_client.call_tool("create_session", {}, progress_callback=cancel_on_first_progress)
        assert waiting.cancelled_caught

        session_id = fake_chaser.sessions[0]["id"]
        await wait_until(lambda: session_id in fake_chaser.deleted_ids(), what=f"DELETE of {session_id}")
    assert fake_chaser.open_sessions() == []


async def test_create_session_sends_ttl_seconds(mcp_client: Client, fake_chaser: FakeChaser) -> None:
    session = structured(
        await mcp_client.call_tool("create_session", {"ttl_seconds": 120, "wait_until_ready": False})
    )

    (create,) = [r for r in fake_chaser.requests if r.method == "POST"]
    assert create.json()["ttl_seconds"] == 120
    assert (_when(session["expires_at"]) - _when(session["created_at"])).total_seconds() == 120


async def test_persisted_sessions_survive_the_end_of_the_conversation_and_others_do_not(
    mcp_client: Client, mcp_harness: Harness, fake_chaser: FakeChaser
) -> None:
    kept = structured(
        await mcp_client.call_tool("create_session", {"persist": True, "wait_until_ready": False})
    )
    dropped = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))
    assert kept["persist"] is True and dropped["persist"] is False

    await mcp_harness.state.conversations.end_all("client went away")

    assert fake_chaser.count("DELETE") == 1
    assert fake_chaser.deleted_ids() == [dropped["id"]]
    assert [s["id"] for s in fake_chaser.open_sessions()] == [kept["id"]]


# -- list_sessions --------------------------------------------------------------------------------


async def test_list_sessions_marks_owned_and_unowned_sessions(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    other = fake_chaser.seed_session()
    mine = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]

    listing = structured(await mcp_client.call_tool("list_sessions", {}))

    owned = {s["id"]: s["owned"] for s in listing["sessions"]}
    assert owned == {mine: True, other: False}
    assert listing["has_more"] is False and listing["next_cursor"] is None


async def test_list_sessions_pages_with_cursor_next_cursor_and_has_more(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    for _ in range(5):
        fake_chaser.seed_session()
    pages: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"limit": 2}
    while True:
        page = structured(await mcp_client.call_tool("list_sessions", arguments))
        pages.append(page)
        if not page["has_more"]:
            break
        arguments = {"limit": 2, "cursor": page["next_cursor"]}

    assert [len(p["sessions"]) for p in pages] == [2, 2, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[-1]["next_cursor"] is None
    seen = [sid for p in pages for sid in session_ids(p)]
    assert seen == [s["id"] for s in fake_chaser.sessions]  # every session once, newest first


async def test_list_sessions_owned_only_lists_only_this_conversations_sessions(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.seed_session()
    first = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]
    fake_chaser.seed_session()
    second = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]

    listing = structured(await mcp_client.call_tool("list_sessions", {"owned_only": True}))

    assert session_ids(listing) == [second, first]
    assert all(s["owned"] for s in listing["sessions"])
    assert listing["has_more"] is False


# -- get_session ----------------------------------------------------------------------------------


async def test_get_session_marks_a_session_this_conversation_created_as_owned(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    mine = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]

    session = structured(await mcp_client.call_tool("get_session", {"session_id": mine}))

    assert session["id"] == mine and session["owned"] is True


async def test_get_session_marks_a_session_created_elsewhere_as_not_owned(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    other = fake_chaser.seed_session()

    session = structured(await mcp_client.call_tool("get_session", {"session_id": other}))

    assert session["id"] == other and session["status"] == "ready" and session["owned"] is False


async def test_get_session_of_an_unknown_id_reports_404_session_not_found_and_what_to_do(
    mcp_client: Client,
) -> None:
    message = error_text(await mcp_client.call_tool("get_session", {"session_id": "sess_unknown"}))

    assert "sess_unknown" in message and "HTTP 404 session_not_found" in message
    assert "list_sessions" in message


# -- delete_session -------------------------------------------------------------------------------


async def test_delete_session_deletes_an_owned_session(mcp_client: Client, fake_chaser: FakeChaser) -> None:
    mine = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]

    result = structured(await mcp_client.call_tool("delete_session", {"session_id": mine}))

    assert result == {"session_id": mine, "outcome": "deleted", "owned": True}
    assert fake_chaser.deleted_ids() == [mine]


async def test_deleting_an_owned_session_twice_reports_already_closed_without_asking_for_force(
    mcp_client: Client,
) -> None:
    mine = structured(await mcp_client.call_tool("create_session", {"wait_until_ready": False}))["id"]
    structured(await mcp_client.call_tool("delete_session", {"session_id": mine}))

    again = structured(await mcp_client.call_tool("delete_session", {"session_id": mine}))

    assert again == {"session_id": mine, "outcome": "already_closed", "owned": True}


async def test_delete_session_refuses_a_session_it_does_not_own_without_sending_a_delete(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    other = fake_chaser.seed_session()

    message = error_text(await mcp_client.call_tool("delete_session", {"session_id": other}))

    assert other in message and "force=true" in message
    assert fake_chaser.count("DELETE") == 0
    assert fake_chaser.session(other)["status"] == "ready"  # type: ignore[index]


async def test_delete_session_with_force_deletes_a_session_it_does_not_own(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    other = fake_chaser.seed_session()

    result = structured(await mcp_client.call_tool("delete_session", {"session_id": other, "force": True}))

    assert result == {"session_id": other, "outcome": "deleted", "owned": False}
    assert fake_chaser.deleted_ids() == [other]


async def test_a_409_session_not_open_on_delete_counts_as_already_closed(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    mine = structured(
        await mcp_client.call_tool("create_session", {"ttl_seconds": 60, "wait_until_ready": False})
    )["id"]
    fake_chaser.advance_clock(61)  # its TTL ran out: the API answers the DELETE with 409

    result = structured(await mcp_client.call_tool("delete_session", {"session_id": mine}))

    assert result["outcome"] == "already_closed"
    assert fake_chaser.count("DELETE", f"/v1/sessions/{mine}") == 1 and fake_chaser.deleted_ids() == []


# -- take_screenshot ------------------------------------------------------------------------------


async def test_take_screenshot_returns_an_image_block_whose_mime_type_matches_its_bytes_and_a_text_block(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    result = await mcp_client.call_tool("take_screenshot", {"session_id": session_id})

    assert not result.is_error, text_of(result)
    (image,) = images(result)
    (text,) = texts(result)
    assert sniff_mime(image_bytes(image)) == image.mime_type == "image/png"
    assert session_id in text and "412x915" in text
    assert image.data not in text and len(text) < 300  # never base64 inside text


async def test_a_screen_whose_browser_cannot_be_reached_comes_from_the_api_and_says_so(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    # The fake cloud has no browsers: its sessions' cdp_url cannot be reached from here.
    session_id = fake_chaser.seed_session()

    result = await mcp_client.call_tool("take_screenshot", {"session_id": session_id, "scale": "css"})

    assert fake_chaser.count("POST", r"/v1/sessions/[^/]+/screenshot") == 1
    assert "device pixels from the session API's screenshot endpoint" in text_of(result)
    assert "could not be reached over CDP" in text_of(result)


async def test_a_full_page_needs_the_browser_and_says_so_when_it_cannot_be_reached(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    message = error_text(
        await mcp_client.call_tool("take_screenshot", {"session_id": session_id, "full_page": True})
    )

    assert "Could not reach the browser" in message, message
    assert fake_chaser.count("POST", r"/v1/sessions/[^/]+/screenshot") == 0, "no screen instead of a page"


async def test_a_large_noisy_screenshot_is_downscaled_and_reencoded_within_the_size_budget(
    fake_chaser: FakeChaser, mode: Mode
) -> None:
    fake_chaser.screenshot_size, fake_chaser.screenshot_noise = (1082, 2402), True
    session_id = fake_chaser.seed_session()
    async with (
        running_server(fake_chaser, screenshot_max_bytes=300_000) as harness,
        harness.connect(mode) as client,
    ):
        result = await client.call_tool("take_screenshot", {"session_id": session_id})

    (image,) = images(result)
    data = image_bytes(image)
    assert len(image.data) <= 300_000
    assert sniff_mime(data) == image.mime_type and image.mime_type != "image/png"
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.width < 1082 and decoded.height < 2402
        assert f"{decoded.width}x{decoded.height}" in text_of(result)
    text = text_of(result)
    assert "downscaled" in text and "re-encoded" in text
    assert "original PNG 1082x2402" in text and "MB" in text


async def test_take_screenshot_honours_max_width(mcp_client: Client, fake_chaser: FakeChaser) -> None:
    session_id = fake_chaser.seed_session()

    result = await mcp_client.call_tool("take_screenshot", {"session_id": session_id, "max_width": 200})

    (image,) = images(result)
    with Image.open(io.BytesIO(image_bytes(image))) as decoded:
        assert decoded.width == 200
        assert abs(decoded.height - 915 * 200 / 412) <= 1  # aspect ratio kept


@pytest.mark.parametrize(
    ("image_format", "mime_type"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
async def test_take_screenshot_honours_image_format(
    mcp_client: Client, fake_chaser: FakeChaser, image_format: str, mime_type: str
) -> None:
    session_id = fake_chaser.seed_session()

    result = await mcp_client.call_tool(
        "take_screenshot", {"session_id": session_id, "image_format": image_format}
    )

    (image,) = images(result)
    assert image.mime_type == mime_type == sniff_mime(image_bytes(image))


async def test_a_screenshot_of_a_session_still_creating_says_it_is_still_starting_and_to_wait(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session(ready=False)

    message = error_text(await mcp_client.call_tool("take_screenshot", {"session_id": session_id}))

    assert "still starting" in message and "status 'creating'" in message
    assert "wait a few seconds" in message


async def test_a_screenshot_of_a_closed_session_says_it_has_ended_and_to_create_a_new_one(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session(ttl_seconds=60)
    fake_chaser.advance_clock(61)

    message = error_text(await mcp_client.call_tool("take_screenshot", {"session_id": session_id}))

    assert "has ended" in message and "status 'closed'" in message
    assert "ttl_expired" in message and "create_session" in message


# -- get_preview_link -----------------------------------------------------------------------------


async def test_get_preview_link_returns_a_viewer_url_expiry_input_flag_and_fps(
    mcp_harness: Harness, mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    link = structured(await mcp_client.call_tool("get_preview_link", {"session_id": session_id}))

    assert link["session_id"] == session_id
    assert (
        link["url"].startswith(f"{mcp_harness.state.viewers.origin}/viewer/")
        and session_id not in link["url"]
    )
    assert _when(link["expires_at"]) > fake_chaser.now()
    assert link["input_enabled"] is True and link["fps"] == mcp_harness.state.viewers.fps


# -- configuration and API failures ---------------------------------------------------------------


async def test_every_tool_without_an_api_key_answers_with_an_error_naming_chaser_key_and_sends_nothing(
    fake_chaser: FakeChaser, mode: Mode
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("create_session", {}),
        ("list_sessions", {}),
        ("list_sessions", {"owned_only": True, "limit": 5}),
        *((tool, {"session_id": "sess_abc", **extra}) for tool, extra in SESSION_ID_TOOLS.items()),
    ]
    async with running_server(fake_chaser, api_key=None) as harness, harness.connect(mode) as client:
        for tool, arguments in calls:
            assert "CHASER_KEY" in error_text(await client.call_tool(tool, arguments)), (tool, arguments)

    assert fake_chaser.requests == []


async def test_a_persistent_503_is_reported_after_retries_with_the_status_code_and_next_step(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(
        Status(503, {"error": {"code": "service_unavailable", "message": "maintenance"}}), times=None
    )

    message = error_text(await mcp_client.call_tool("get_session", {"session_id": "sess_abc"}))

    assert "HTTP 503 service_unavailable" in message and "after retries" in message
    assert "Try again" in message and "\n" not in message
    assert fake_chaser.count("GET", SESSION_PATH) == 4  # the first try and three retries


async def test_a_429_is_reported_with_its_retry_after_wait(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(
        Status(
            429, {"error": {"code": "rate_limited", "message": "slow down"}}, headers={"Retry-After": "7"}
        ),
        times=None,
    )

    message = error_text(await mcp_client.call_tool("list_sessions", {}))

    assert "HTTP 429 rate_limited" in message and "wait 7 s, then try again" in message
    assert "\n" not in message


async def test_a_401_says_to_check_chaser_key(fake_chaser: FakeChaser, mode: Mode) -> None:
    async with (
        running_server(fake_chaser, api_key="ck_revoked_key") as harness,
        harness.connect(mode) as client,
    ):
        message = error_text(await client.call_tool("get_session", {"session_id": "sess_abc"}))

    assert "HTTP 401 unauthorized" in message and "CHASER_KEY" in message
    assert "ck_revoked_key" not in message and "\n" not in message
    assert fake_chaser.count() == 1  # an auth failure is not retried


async def test_a_failed_create_says_a_session_may_exist_and_to_list_before_retrying(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(500, {"error": {"code": "internal", "message": "boom"}}), method="POST")

    message = error_text(await mcp_client.call_tool("create_session", {}))

    assert "HTTP 500 internal" in message and "list_sessions" in message
    assert fake_chaser.count("POST") == 1  # a create is never blindly retried
