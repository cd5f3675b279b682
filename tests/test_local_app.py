"""The local API through the real ChaserClient, over real sockets, each session a real Chromium."""

from __future__ import annotations

import io
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from PIL import Image

from chaser_mcp.api import APIStatusError, ChaserClient, RateLimited, Session, SessionNotFound, SessionNotOpen
from chaser_mcp.browser.cdp import CDPConnection
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.local.chromium import PROFILE_PREFIX, BrowserProcess, group_pids
from tests.local_support import (
    BLOCK_BOX,
    BLOCK_COLOUR,
    DPR,
    LoopbackSite,
    browsers_under,
    chromium_pids_under,
    entries,
    navigate_to,
    requires_chromium,
    short_temp_dir,
    wait_for_no_processes,
    wait_for_status,
    wait_until,
    wait_until_ready,
)

pytestmark = [pytest.mark.anyio, requires_chromium]

KEY = "sk-local-test"


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    with short_temp_dir() as path:
        yield path


@pytest.fixture(scope="module")
async def local_api(base_dir: Path) -> AsyncIterator[LocalAPIServer]:
    """One server for the module; TTLs may be as short as 1 s here (never through the API's own rules)."""
    async with running_local_api(base_dir=base_dir, min_ttl_seconds=1, max_sessions=3) as server:
        yield server


@pytest.fixture
async def client(local_api: LocalAPIServer) -> AsyncIterator[ChaserClient]:
    async with ChaserClient(KEY, base_url=local_api.base_url, timeout=30, max_retries=0) as api:
        yield api


@pytest.fixture
async def session(client: ChaserClient) -> AsyncIterator[Session]:
    created = await client.create_session(ttl_seconds=300)
    ready = await wait_until_ready(client, created.id)
    try:
        yield ready
    finally:
        await client.delete_session(created.id)


def browser_of(server: LocalAPIServer, session_id: str) -> BrowserProcess:
    browser = server.backend.get(session_id).browser
    assert browser is not None
    return browser.process


def browser_pid(server: LocalAPIServer, session_id: str) -> int:
    return browser_of(server, session_id).pid


async def evaluate_on_page(cdp_url: str, expression: str) -> object:
    async with CDPConnection.connect(cdp_url) as cdp:
        targets = await cdp.send("Target.getTargets")
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached = await cdp.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})
        result = await cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session_id=attached["sessionId"],
        )
    return result["result"]["value"]


async def navigate_page(cdp_url: str, url: str) -> None:
    await navigate_to(cdp_url, url, timeout=20)


# -- create, get, list ---------------------------------------------------------------------------


async def test_create_answers_creating_at_once_then_the_session_turns_ready(
    client: ChaserClient, local_api: LocalAPIServer
) -> None:
    created = await client.create_session(ttl_seconds=120)
    try:
        assert created.status == "creating"
        assert created.id.startswith("sess_")
        assert created.expires_at is not None and created.created_at is not None
        assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(120, abs=1)
        ready = await wait_until_ready(client, created.id)
        assert ready.status == "ready"
        assert ready.ready_at is not None and ready.ready_at >= created.created_at
        assert ready.cdp_url is not None
        port = re.escape(str(local_api.port))
        pattern = rf"ws://127\.0\.0\.1:{port}/v1/sessions/{created.id}/cdp\?token=[A-Za-z0-9_-]{{43}}"
        assert re.fullmatch(pattern, ready.cdp_url)
    finally:
        await client.delete_session(created.id)


async def test_the_device_string_names_the_real_chrome_version(session: Session) -> None:
    assert session.cdp_url is not None
    async with CDPConnection.connect(session.cdp_url) as cdp:
        product = (await cdp.send("Browser.getVersion"))["product"]
    major = product.split("/")[1].split(".")[0]
    assert session.device == f"Android 14 - Chrome {major} (Mobile)"


async def test_the_page_a_client_finds_at_cdp_url_is_the_emulated_phone(
    session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None and session.device is not None
    major = session.device.split("Chrome ")[1].split(" ")[0]
    await navigate_page(session.cdp_url, site.url("/colour"))
    seen = await evaluate_on_page(
        session.cdp_url,
        """(async () => ({
            ua: navigator.userAgent, width: innerWidth, height: innerHeight, dpr: devicePixelRatio,
            touch: navigator.maxTouchPoints, coarse: matchMedia('(pointer: coarse)').matches,
            platform: navigator.platform, mobile: navigator.userAgentData.mobile,
            webdriver: navigator.webdriver,
            hints: await navigator.userAgentData.getHighEntropyValues(['model', 'platformVersion']),
        }))()""",
    )
    assert isinstance(seen, dict)
    assert "Android 14; Pixel 7" in seen["ua"] and f"Chrome/{major}.0.0.0 Mobile" in seen["ua"]
    assert "Headless" not in seen["ua"]
    assert (seen["width"], seen["height"], seen["dpr"]) == (412, 915, DPR)
    assert seen["touch"] == 5 and seen["coarse"] is True
    assert seen["platform"] == "Linux armv81"
    assert seen["mobile"] is True and seen["webdriver"] is False
    assert seen["hints"]["model"] == "Pixel 7" and seen["hints"]["platformVersion"].startswith("14")


async def test_a_client_that_set_its_own_metrics_and_left_leaves_the_phone_behind(
    session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None
    await navigate_page(session.cdp_url, site.url("/colour"))
    async with CDPConnection.connect(session.cdp_url) as cdp:  # Playwright setting a viewport does this
        targets = await cdp.send("Target.getTargets")
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached = await cdp.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})
        desktop = {"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": False}
        await cdp.send("Emulation.setDeviceMetricsOverride", desktop, session_id=attached["sessionId"])

    # Chromium drops the page's metrics altogether when that client leaves; the phone comes back.
    with anyio.fail_after(10):
        while await evaluate_on_page(session.cdp_url, "[innerWidth, innerHeight, devicePixelRatio]") != [  # noqa: ASYNC110
            412,
            915,
            DPR,
        ]:
            await anyio.sleep(0.05)


async def test_get_of_an_unknown_session_is_404_session_not_found(client: ChaserClient) -> None:
    with pytest.raises(SessionNotFound) as caught:
        await client.get_session("sess_00000000-0000-7000-8000-000000000000")
    assert caught.value.status == 404 and caught.value.code == "session_not_found"


async def test_listing_is_newest_first_and_cursor_paging_visits_every_session_once(
    client: ChaserClient,
) -> None:
    # Deleting while still creating cancels the launch, so these cost no browser time.
    mine = []
    for _ in range(3):
        created = await client.create_session(ttl_seconds=60)
        await client.delete_session(created.id)
        mine.append(created.id)
    seen: list[Session] = []
    cursor = None
    while True:
        page = await client.list_sessions(limit=2, cursor=cursor)
        assert len(page.data) <= 2
        seen.extend(page.data)
        assert page.has_more == (page.next_cursor is not None)
        if not page.has_more:
            break
        cursor = page.next_cursor
    ids = [s.id for s in seen]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in mine] == list(reversed(mine))
    created_times = [s.created_at for s in seen if s.created_at is not None]
    assert len(created_times) == len(seen)
    assert created_times == sorted(created_times, reverse=True)


async def test_a_cursor_the_server_never_gave_is_400(local_api: LocalAPIServer) -> None:
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.get(
            "/v1/sessions", params={"cursor": "bm90LWEtY3Vyc29y"}, headers={"Authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


# -- authentication and validation -----------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Token sk-x", "sk-no-scheme"])
async def test_a_request_without_a_bearer_key_is_401(local_api: LocalAPIServer, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.get("/v1/sessions", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_with_a_configured_key_only_that_key_is_accepted(base_dir: Path) -> None:
    async with running_local_api(base_dir=base_dir, api_key="sk-right") as server:
        async with ChaserClient("sk-wrong", base_url=server.base_url, max_retries=0) as wrong:
            with pytest.raises(APIStatusError) as caught:
                await wrong.list_sessions()
        async with ChaserClient("sk-right", base_url=server.base_url, max_retries=0) as right:
            assert (await right.list_sessions()).data == []
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert "sk-right" not in str(caught.value) and "sk-wrong" not in str(caught.value)


@pytest.mark.parametrize("ttl", [59, 3601])
async def test_a_ttl_outside_the_documented_range_is_400(base_dir: Path, ttl: int) -> None:
    async with (
        running_local_api(base_dir=base_dir) as server,
        ChaserClient(KEY, base_url=server.base_url, max_retries=0) as api,
    ):
        with pytest.raises(APIStatusError) as caught:
            await api.create_session(ttl_seconds=ttl)
    assert caught.value.status == 400 and caught.value.code == "invalid_request"
    assert "60" in caught.value.message and "3600" in caught.value.message


@pytest.mark.parametrize("body", [b"[1]", b"{not json", b'{"ttl_seconds": "600"}', b'{"profile": 3}'])
async def test_a_malformed_create_body_is_400_and_starts_nothing(
    local_api: LocalAPIServer, body: bytes
) -> None:
    known = len(local_api.backend.list(limit=100, cursor=None)[0])
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.post(
            "/v1/sessions",
            content=body,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert len(local_api.backend.list(limit=100, cursor=None)[0]) == known


async def test_an_unknown_path_answers_with_a_json_error(local_api: LocalAPIServer) -> None:
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.get("/v2/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# -- screenshots ---------------------------------------------------------------------------------


async def test_a_screenshot_is_a_png_of_the_page_at_device_resolution(
    client: ChaserClient, session: Session, site: LoopbackSite
) -> None:
    assert session.cdp_url is not None
    await navigate_page(session.cdp_url, site.url("/colour"))
    png = await client.screenshot(session.id)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (round(412 * DPR), round(915 * DPR))
    left, top, width, height = BLOCK_BOX
    inside = (int((left + width / 2) * DPR), int((top + height / 2) * DPR))
    outside = (int((left + width + 40) * DPR), int((top + height / 2) * DPR))
    assert _close_to(image.getpixel(inside), BLOCK_COLOUR)
    assert _close_to(image.getpixel(outside), (255, 255, 255))
    # The block's edges sit where the page put them, scaled by the device pixel ratio.
    assert _close_to(image.getpixel((int(left * DPR) + 2, int(top * DPR) + 2)), BLOCK_COLOUR)
    assert _close_to(image.getpixel((int(left * DPR) - 3, int(top * DPR) + 2)), (255, 255, 255))


def _close_to(pixel: object, colour: tuple[int, int, int], tolerance: int = 4) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


async def test_a_screenshot_of_a_session_that_is_not_ready_is_409(client: ChaserClient) -> None:
    created = await client.create_session(ttl_seconds=60)
    await client.delete_session(created.id)
    with pytest.raises(SessionNotOpen) as caught:
        await client.screenshot(created.id)
    assert caught.value.status == 409 and caught.value.code == "session_not_open"


# -- ending sessions -----------------------------------------------------------------------------


async def test_delete_answers_204_stops_every_browser_process_then_answers_409(
    client: ChaserClient, local_api: LocalAPIServer
) -> None:
    created = await client.create_session(ttl_seconds=300)
    await wait_until_ready(client, created.id)
    pid, profile = browser_pid(local_api, created.id), browser_of(local_api, created.id).profile_dir
    assert group_pids(pid)
    assert await client.delete_session(created.id) is True
    assert group_pids(pid) == []
    await wait_until(lambda: not profile.exists())  # files go right after the answer
    ended = await client.get_session(created.id)
    assert (ended.status, ended.ended_reason) == ("closed", "client_delete")
    assert ended.ended_at is not None
    assert await client.delete_session(created.id) is False  # 409 session_not_open


async def test_deleting_a_session_while_it_is_still_creating_starts_no_lasting_browser(
    client: ChaserClient, base_dir: Path
) -> None:
    before = set(browsers_under(base_dir))
    created = await client.create_session(ttl_seconds=300)
    assert await client.delete_session(created.id) is True
    assert set(browsers_under(base_dir)) - before == set()
    assert (await client.get_session(created.id)).ended_reason == "client_delete"


async def test_ttl_expiry_closes_the_browser_and_says_so(
    client: ChaserClient, local_api: LocalAPIServer
) -> None:
    created = await client.create_session(ttl_seconds=2)
    await wait_until_ready(client, created.id)
    pid = browser_pid(local_api, created.id)
    ended = await wait_for_status(client, created.id, "closed", timeout=15)
    assert ended.ended_reason == "ttl_expired"
    assert await wait_for_no_processes(lambda: group_pids(pid)) == []
    with pytest.raises(SessionNotOpen):
        await client.screenshot(created.id)


async def test_a_browser_that_dies_turns_its_session_to_error(
    client: ChaserClient, local_api: LocalAPIServer
) -> None:
    created = await client.create_session(ttl_seconds=300)
    await wait_until_ready(client, created.id)
    pid = browser_pid(local_api, created.id)
    os.killpg(pid, signal.SIGKILL)
    ended = await wait_for_status(client, created.id, "error")
    assert ended.ended_reason == "browser_exited"
    assert ended.ended_at is not None
    assert await client.delete_session(created.id) is False


async def test_beyond_the_cap_create_is_429_and_deleting_one_makes_room(base_dir: Path) -> None:
    async with (
        running_local_api(base_dir=base_dir, max_sessions=1) as server,
        ChaserClient(KEY, base_url=server.base_url, max_retries=0) as api,
    ):
        first = await api.create_session(ttl_seconds=60)
        with pytest.raises(RateLimited) as caught:
            await api.create_session(ttl_seconds=60)
        await api.delete_session(first.id)
        second = await api.create_session(ttl_seconds=60)
        await api.delete_session(second.id)
    assert caught.value.status == 429 and caught.value.code == "session_limit_reached"
    assert "1 sessions are open" in caught.value.message and "delete" in caught.value.message


async def test_shutdown_closes_every_browser_and_startup_sweeps_stale_profiles(tmp_path: Path) -> None:
    with short_temp_dir() as base:
        dead_owner = base / f"{PROFILE_PREFIX}999999999-0a1b2c"  # no pid is that large
        (dead_owner / "Default").mkdir(parents=True)
        async with (
            running_local_api(base_dir=base) as server,
            ChaserClient(KEY, base_url=server.base_url, max_retries=0) as api,
        ):
            assert not dead_owner.exists()
            created = await api.create_session(ttl_seconds=300)
            await wait_until_ready(api, created.id)
            session = server.backend.get(created.id)
            assert chromium_pids_under(base)
        assert chromium_pids_under(base) == []
        assert session.status == "closed" and session.ended_reason == "server_shutdown"
        assert entries(base) == []


async def test_a_local_api_whose_block_is_cancelled_closes_every_browser_before_it_exits() -> None:
    with short_temp_dir() as base:
        with anyio.CancelScope() as scope:
            async with (
                running_local_api(base_dir=base) as server,
                ChaserClient(KEY, base_url=server.base_url, max_retries=0) as api,
            ):
                created = await api.create_session(ttl_seconds=300)
                await wait_until_ready(api, created.id)
                session = server.backend.get(created.id)
                assert chromium_pids_under(base)
                scope.cancel()  # e.g. the --local MCP server's task group stopping on a signal
                await anyio.sleep(60)
        assert scope.cancelled_caught
        assert chromium_pids_under(base) == []
        assert session.status == "closed" and session.ended_reason == "server_shutdown"
        assert entries(base) == []
