"""The fake Chaser API's own fidelity, checked with plain httpx2: every other test leans on it."""

from __future__ import annotations

import base64
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from tests.fake_chaser import DEFAULT_KEY, FAULT_KINDS, Delay, Drop, FakeChaser, Hang, Status

OTHER_KEY = "ck_test_fake_other_workspace_42"
RFC3339_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
SESSION_ID = re.compile(r"sess_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail (rather than hang) if it never does."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail("condition never became true")


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture
def api(fake_chaser: FakeChaser) -> Iterator[httpx2.Client]:
    with httpx2.Client(
        base_url=fake_chaser.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=5
    ) as client:
        yield client


def _create(api: httpx2.Client, **body: object) -> str:
    response = api.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


# -- create ---------------------------------------------------------------------------------------


def test_create_answers_201_with_exactly_the_documented_fields(api: httpx2.Client) -> None:
    response = api.post("/v1/sessions", json={"ttl_seconds": 600})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "object", "status", "cdp_url", "created_at", "expires_at"}
    assert SESSION_ID.fullmatch(body["id"])
    assert body["object"] == "session"
    assert body["status"] == "creating"
    assert body["cdp_url"] == f"wss://cdp.chaser.sh/sessions/{body['id']}"
    assert RFC3339_MICROS.fullmatch(body["created_at"])
    assert RFC3339_MICROS.fullmatch(body["expires_at"])
    assert _at(body["expires_at"]) - _at(body["created_at"]) == timedelta(seconds=600)


def test_create_without_a_body_uses_the_default_ttl_of_1800_seconds(api: httpx2.Client) -> None:
    body = api.post("/v1/sessions").json()

    assert _at(body["expires_at"]) - _at(body["created_at"]) == timedelta(seconds=1800)


@pytest.mark.parametrize("ttl", [59, 3601, 0, -5, "600", 600.5, True, None])
def test_create_refuses_a_ttl_outside_60_to_3600_or_not_an_integer(
    api: httpx2.Client, fake_chaser: FakeChaser, ttl: object
) -> None:
    response = api.post("/v1/sessions", json={"ttl_seconds": ttl})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert fake_chaser.sessions == []


@pytest.mark.parametrize("ttl", [60, 3600])
def test_create_accepts_the_ttl_bounds(api: httpx2.Client, ttl: int) -> None:
    assert api.post("/v1/sessions", json={"ttl_seconds": ttl}).status_code == 201


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_create_refuses_a_body_that_is_not_a_json_object(api: httpx2.Client, body: bytes) -> None:
    response = api.post("/v1/sessions", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


# -- get: the full object, lazily ready, expiring, failing ------------------------------------------


def test_get_shows_every_documented_field_of_a_creating_session(api: httpx2.Client) -> None:
    session_id = _create(api)

    body = api.get(f"/v1/sessions/{session_id}").json()

    assert body == {
        "id": session_id,
        "object": "session",
        "status": "creating",
        "device": "Android 10 - Chrome 137 (Mobile)",
        "cdp_url": f"wss://cdp.chaser.sh/sessions/{session_id}",
        "bytes_up": 0,
        "bytes_down": 0,
        "proxy_ip": None,
        "proxy_region": None,
        "created_at": body["created_at"],
        "ready_at": None,
        "expires_at": body["expires_at"],
        "ended_at": None,
        "ended_reason": None,
    }


def test_a_session_turns_ready_by_itself_after_the_ready_delay(api: httpx2.Client) -> None:
    session_id = _create(api)
    seen: list[dict[str, Any]] = []

    def turned() -> bool:
        seen.append(api.get(f"/v1/sessions/{session_id}").json())
        return bool(seen[-1]["status"] != "creating")

    _eventually(turned)

    body = seen[-1]
    assert seen[0]["status"] == "creating"
    assert body["status"] == "ready"
    assert _at(body["ready_at"]) - _at(body["created_at"]) == timedelta(seconds=0.2)
    assert body["proxy_ip"] is not None
    assert body["proxy_region"] is not None


def test_a_ready_session_counts_bytes_and_names_its_proxy(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    session_id = _create(api)
    fake_chaser.advance_clock(60)

    body = api.get(f"/v1/sessions/{session_id}").json()

    assert body["status"] == "ready"
    assert body["bytes_up"] > 0
    assert body["bytes_down"] > 0
    assert RFC3339_MICROS.fullmatch(body["ready_at"])


def test_a_session_past_its_ttl_reads_closed_with_ttl_expired(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    session_id = _create(api, ttl_seconds=60)
    fake_chaser.advance_clock(61)

    body = api.get(f"/v1/sessions/{session_id}").json()

    assert body["status"] == "closed"
    assert body["ended_reason"] == "ttl_expired"
    assert body["ended_at"] == body["expires_at"]
    assert fake_chaser.open_sessions() == []


def test_failed_creates_go_from_creating_to_error_with_the_reason(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.fail_next_creates(1, reason="browser_crashed")
    failing, healthy = _create(api), _create(api)
    assert api.get(f"/v1/sessions/{failing}").json()["status"] == "creating"

    fake_chaser.advance_clock(1)

    body = api.get(f"/v1/sessions/{failing}").json()
    assert (body["status"], body["ended_reason"], body["ready_at"]) == ("error", "browser_crashed", None)
    assert api.get(f"/v1/sessions/{healthy}").json()["status"] == "ready"


# -- list -----------------------------------------------------------------------------------------


def test_list_is_newest_first_and_cursor_pages_cover_every_session_once(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    created = [_create(api) for _ in range(7)]

    seen: list[str] = []
    pages = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/sessions", params=params).json()
        pages.append(page)
        seen += [s["id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break

    assert seen == created[::-1]
    assert [len(p["data"]) for p in pages] == [3, 3, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[-1]["next_cursor"] is None
    assert all(p["object"] == "list" for p in pages)


def test_list_defaults_to_20_per_page(api: httpx2.Client, fake_chaser: FakeChaser) -> None:
    for _ in range(21):
        fake_chaser.seed_session()

    page = api.get("/v1/sessions").json()

    assert len(page["data"]) == 20
    assert page["has_more"] is True
    base64.b64decode(page["next_cursor"], validate=True)  # opaque, but base64 like the real one


def test_list_of_an_empty_workspace_is_an_empty_last_page(api: httpx2.Client) -> None:
    assert api.get("/v1/sessions").json() == {
        "object": "list",
        "data": [],
        "next_cursor": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"limit": "2.5"}, {"limit": ""}, {"cursor": "!!!"}],
    ids=["limit-0", "limit-101", "limit-word", "limit-float", "limit-empty", "cursor-not-base64"],
)
def test_list_refuses_a_bad_limit_or_cursor(api: httpx2.Client, params: dict[str, str]) -> None:
    response = api.get("/v1/sessions", params=params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_list_refuses_base64_that_is_not_one_of_its_cursors(api: httpx2.Client) -> None:
    cursor = base64.b64encode(b"hello world").decode()

    assert api.get("/v1/sessions", params={"cursor": cursor}).status_code == 400


# -- workspaces and auth --------------------------------------------------------------------------


def test_each_key_is_its_own_workspace() -> None:
    with FakeChaser(api_keys=[DEFAULT_KEY, OTHER_KEY]) as fake:
        mine = httpx2.Client(base_url=fake.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
        theirs = httpx2.Client(base_url=fake.url, headers={"Authorization": f"Bearer {OTHER_KEY}"})
        with mine, theirs:
            session_id = _create(mine)

            assert theirs.get(f"/v1/sessions/{session_id}").json()["error"]["code"] == "session_not_found"
            assert theirs.delete(f"/v1/sessions/{session_id}").status_code == 404
            assert theirs.post(f"/v1/sessions/{session_id}/screenshot").status_code == 404
            assert theirs.get("/v1/sessions").json()["data"] == []
            assert [s["id"] for s in mine.get("/v1/sessions").json()["data"]] == [session_id]
            assert fake.open_sessions(OTHER_KEY) == []
            assert len(fake.open_sessions(DEFAULT_KEY)) == 1


@pytest.mark.parametrize(
    "authorization", [None, "Bearer ck_wrong", f"Basic {DEFAULT_KEY}", f"Bearer {DEFAULT_KEY}x", "Bearer"]
)
def test_a_missing_or_wrong_key_is_401_unauthorized(
    fake_chaser: FakeChaser, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = httpx2.get(f"{fake_chaser.url}/v1/sessions", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


# -- delete, screenshot, preview ------------------------------------------------------------------


def test_delete_answers_204_without_a_body_then_409_session_not_open(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    session_id = _create(api)

    first = api.delete(f"/v1/sessions/{session_id}")
    second = api.delete(f"/v1/sessions/{session_id}")

    assert (first.status_code, first.content) == (204, b"")
    assert "content-length" not in first.headers
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "session_not_open"
    body = api.get(f"/v1/sessions/{session_id}").json()
    assert (body["status"], body["ended_reason"]) == ("closed", "client_delete")
    assert RFC3339_MICROS.fullmatch(body["ended_at"])
    assert fake_chaser.deleted_ids() == [session_id]


def test_delete_of_an_unknown_session_is_404_session_not_found(api: httpx2.Client) -> None:
    response = api.delete("/v1/sessions/sess_00000000-0000-7000-8000-000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


@pytest.mark.parametrize("action", ["screenshot", "preview-token"])
def test_screenshot_and_preview_are_409_until_the_session_is_ready(api: httpx2.Client, action: str) -> None:
    session_id = _create(api)

    response = api.post(f"/v1/sessions/{session_id}/{action}", json={})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_open"


def test_screenshot_of_a_ready_session_is_a_real_png_of_the_configured_size() -> None:
    with FakeChaser(ready_delay=0, screenshot_size=(300, 500)) as fake:
        session_id = fake.seed_session()
        response = httpx2.post(
            f"{fake.url}/v1/sessions/{session_id}/screenshot",
            headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
        )

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    with Image.open(BytesIO(response.content)) as image:
        assert (image.format, image.size) == ("PNG", (300, 500))


def test_preview_token_of_a_ready_session_has_the_documented_shape(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()

    response = api.post(f"/v1/sessions/{session_id}/preview-token", json={})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "expires_at", "input_enabled", "fps"}
    assert body["url"].startswith(f"wss://stream.chaser.sh/sessions/{session_id}/preview?token=")
    assert (body["input_enabled"], body["fps"]) == (True, 5)
    assert _at(body["expires_at"]) > fake_chaser.now()


@pytest.mark.parametrize(
    "path",
    ["/v1/session", "/v2/sessions", "/v1/sessions/", "/v1/sessions/x/y/z", "/v1/sessions/sess_1/reboot"],
)
def test_unknown_paths_are_404_not_found(api: httpx2.Client, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("session_id", ["sess_%2e%2e", "%2e%2e", "sess_a%2Fb"])
def test_a_percent_encoded_id_is_just_an_unknown_session(
    api: httpx2.Client, fake_chaser: FakeChaser, session_id: str
) -> None:
    fake_chaser.seed_session()

    response = api.get(f"/v1/sessions/{session_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


# -- recording and faults -------------------------------------------------------------------------


def test_every_request_is_recorded_with_its_headers_and_body(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    api.post("/v1/sessions", json={"ttl_seconds": 90}, headers={"User-Agent": "probe/1"})
    api.get("/v1/sessions", params={"limit": 5})

    create, listing = fake_chaser.requests
    assert (create.method, create.path, create.json()) == ("POST", "/v1/sessions", {"ttl_seconds": 90})
    assert create.headers["user-agent"] == "probe/1"
    assert create.api_key == DEFAULT_KEY
    assert (listing.method, listing.query) == ("GET", {"limit": ["5"]})
    assert fake_chaser.count("POST") == 1
    assert fake_chaser.count("GET", r"/v1/sessions") == 1
    assert fake_chaser.count("GET", r"/v1/sessions/.+") == 0
    fake_chaser.reset_requests()
    assert fake_chaser.requests == []


def test_faults_match_method_and_path_and_are_used_in_order(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Status(503), method="GET", path=r"/v1/sessions", times=2)
    fake_chaser.inject(Status(502), method="GET")

    assert api.post("/v1/sessions").status_code == 201
    assert [api.get("/v1/sessions").status_code for _ in range(4)] == [503, 503, 502, 200]


def test_a_status_fault_answers_as_asked_and_leaves_state_alone(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(
        Status(429, "<h1>slow down</h1>", headers={"Retry-After": "7"}, content_type="text/html"),
        method="POST",
    )

    response = api.post("/v1/sessions")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "text/html"
    assert response.text == "<h1>slow down</h1>"
    assert fake_chaser.sessions == []


def test_a_drop_closes_the_connection_without_an_answer_or_an_effect(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Drop(), method="POST")

    with pytest.raises(httpx2.RemoteProtocolError):
        api.post("/v1/sessions")

    assert fake_chaser.sessions == []
    assert fake_chaser.count("POST") == 1


def test_a_drop_after_effect_creates_the_session_then_closes_without_an_answer(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Drop(after_effect=True), method="POST")

    with pytest.raises(httpx2.RemoteProtocolError):
        api.post("/v1/sessions")

    assert len(fake_chaser.open_sessions()) == 1


def test_a_delay_answers_normally_afterwards(api: httpx2.Client, fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Delay(0.1))

    assert api.post("/v1/sessions").status_code == 201
    assert len(fake_chaser.sessions) == 1


def test_latency_is_added_before_every_answer() -> None:
    with FakeChaser(latency=0.2) as fake:
        started = time.monotonic()
        response = httpx2.get(f"{fake.url}/v1/sessions", headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.2  # a lower bound only: the answer cannot come sooner


def test_a_fault_for_zero_requests_is_refused(fake_chaser: FakeChaser) -> None:
    with pytest.raises(ValueError, match="times"):
        fake_chaser.inject(Status(500), times=0)


def test_a_hang_never_answers_and_stop_still_returns() -> None:
    fake = FakeChaser().start()
    fake.inject(Hang())
    outcome: list[BaseException] = []

    def hung_request() -> None:
        try:
            httpx2.get(
                f"{fake.url}/v1/sessions", headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=30
            )
        except httpx2.HTTPError as exc:
            outcome.append(exc)

    client_thread = threading.Thread(target=hung_request)
    client_thread.start()
    _eventually(lambda: fake.count() == 1)
    stopper = threading.Thread(target=fake.stop)
    stopper.start()
    stopper.join(timeout=10)
    client_thread.join(timeout=10)

    assert not stopper.is_alive()
    assert not client_thread.is_alive()
    assert [type(exc) for exc in outcome] == [httpx2.RemoteProtocolError]


def test_a_port_held_by_a_bound_socket_refuses_until_the_fake_serves_on_it() -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{held.getsockname()[1]}"
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{url}/v1/sessions")

    with FakeChaser(bound_socket=held) as fake:
        assert fake.url == url
        assert (
            httpx2.get(f"{url}/v1/sessions", headers={"Authorization": f"Bearer {DEFAULT_KEY}"}).status_code
            == 200
        )


def test_it_runs_as_its_own_process_and_exits_cleanly_on_sigterm() -> None:
    script = Path(__file__).with_name("fake_chaser.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--ready-delay", "0", "--key", OTHER_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        response = httpx2.post(
            f"{url}/v1/sessions", headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=5
        )
        assert response.status_code == 201
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# -- probabilistic faults and the fault mix (the fault soak's API) ----------------------------------


def _statuses(fake: FakeChaser, n: int) -> list[int]:
    with httpx2.Client(base_url=fake.url, headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as api:
        return [api.get("/v1/sessions").status_code for _ in range(n)]


def test_a_probabilistic_fault_hits_about_its_share_and_repeats_with_the_same_seed() -> None:
    runs = []
    for _ in range(2):
        with FakeChaser(seed=7) as fake:
            fake.inject(Status(503), method="GET", times=None, probability=0.3)
            runs.append(_statuses(fake, 200))

    assert runs[0] == runs[1]
    assert 30 <= runs[0].count(503) <= 90  # 60 expected; the bounds are far beyond chance
    assert set(runs[0]) == {200, 503}


def test_a_probabilistic_rule_that_does_not_fire_passes_to_the_next_rule_and_keeps_its_count() -> None:
    with FakeChaser(seed=1) as fake:
        fake.inject(Status(500), method="GET", times=1, probability=0.05)
        fake.inject(Status(503), method="GET", times=None)
        statuses = _statuses(fake, 100)

    assert statuses.count(500) <= 1
    assert statuses.count(503) == 100 - statuses.count(500)


def test_a_fault_mix_shares_its_rate_evenly_and_counts_each_kind_by_method() -> None:
    with FakeChaser(seed=3) as fake:
        fake.inject_mix(0.6, {"a": Status(500), "b": Status(502), "c": Status(503)})
        statuses = _statuses(fake, 600)
        injected = fake.faults_injected()

    assert {label: by_method["GET"] for label, by_method in injected.items()} == {
        "a": statuses.count(500),
        "b": statuses.count(502),
        "c": statuses.count(503),
    }
    for code in (500, 502, 503):
        assert 70 <= statuses.count(code) <= 170  # 120 each expected


@pytest.mark.parametrize("probability", [0.0, 1.5])
def test_a_probability_outside_0_to_1_is_refused(fake_chaser: FakeChaser, probability: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        fake_chaser.inject(Status(500), probability=probability)


def test_a_reset_aborts_the_connection_with_an_rst(fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Drop(reset=True), method="GET")

    with socket.create_connection(("127.0.0.1", fake_chaser.port), timeout=5) as raw:
        raw.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            raw.recv(1024)


def test_a_status_fault_after_effect_performs_the_request_and_mangles_its_answer(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    session_id = fake_chaser.seed_session()
    fake_chaser.inject(
        Status(200, b"not gzip", {"Content-Encoding": "gzip"}, after_effect=True), method="DELETE"
    )

    with pytest.raises(httpx2.DecodingError):
        api.delete(f"/v1/sessions/{session_id}")

    assert fake_chaser.deleted_ids() == [session_id]


def test_the_state_tells_which_creates_were_never_answered_and_when_each_delete_landed(
    api: httpx2.Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.inject(Drop(after_effect=True), method="POST")
    with pytest.raises(httpx2.RemoteProtocolError):
        api.post("/v1/sessions", json={"ttl_seconds": 600})
    answered = _create(api, ttl_seconds=900)
    before = time.time()
    assert api.delete(f"/v1/sessions/{answered}").status_code == 204

    state = api.get("/_fake/state").json()

    by_ttl = {s["ttl_seconds"]: s for s in state["sessions"]}
    assert by_ttl[600]["create_answered"] is False and by_ttl[600]["status"] == "creating"
    assert by_ttl[900]["create_answered"] is True and by_ttl[900]["status"] == "closed"
    assert by_ttl[900]["deleted_at"] >= before and by_ttl[600]["deleted_at"] is None
    assert state["faults"] == {"drop": {"POST": 1}}
    assert state["requests"] == {"POST": 2, "DELETE": 1}


def test_the_state_view_is_never_faulted_nor_recorded(api: httpx2.Client, fake_chaser: FakeChaser) -> None:
    fake_chaser.inject(Status(500), times=None)

    response = api.get("/_fake/state")

    assert response.status_code == 200
    assert fake_chaser.requests == []


def test_the_process_takes_a_seeded_fault_mix_from_its_command_line() -> None:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.fake_chaser", "--port", "0"),
            *("--fault-rate", "1", "--fault-kinds", "503", "--fault-seed", "5"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
        statuses = [
            httpx2.get(f"{url}/v1/sessions", headers=headers, timeout=5).status_code for _ in range(3)
        ]
        state = httpx2.get(f"{url}/_fake/state", timeout=5).json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    assert statuses == [503, 503, 503]
    assert state["faults"] == {"503": {"GET": 3}}


def test_the_process_refuses_an_unknown_fault_kind_naming_the_known_ones() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.fake_chaser", "--fault-rate", "0.1", "--fault-kinds", "500,teapot"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=30,
    )

    assert done.returncode == 2
    assert "unknown fault kind(s) teapot" in done.stderr
    assert all(kind in done.stderr for kind in FAULT_KINDS)
