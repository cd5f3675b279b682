"""Ready when the browser is: ``Prefer: wait`` held by the local API, and polls that keep the cloud's
gentle schedule against a server that ignores the preference (the fake cloud, like the real one)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from mcp import Client

from chaser_mcp.api import ChaserClient
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.local import app as local_app
from chaser_mcp.local.app import MAX_WAIT_SECONDS, preferred_wait
from tests.fake_chaser import FakeChaser, Status
from tests.local_support import requires_chromium, short_temp_dir
from tests.mcp_support import structured

pytestmark = pytest.mark.anyio

KEY = "sk-ready-wait"
SESSION_PATH = r"/v1/sessions/sess_[^/]+"
# The poll intervals of wait_until_ready: 0.25 s, doubling, capped at 2 s.
SCHEDULE = (0.25, 0.5, 1.0, 2.0)
# Slack for the time a request spends between the client's clock and the fake's.
SLACK = 0.05


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    with short_temp_dir() as path:
        yield path


@pytest.fixture(scope="module")
async def local_api(base_dir: Path) -> AsyncIterator[LocalAPIServer]:
    async with running_local_api(base_dir=base_dir, max_sessions=2) as server:
        yield server


@pytest.fixture
async def client(local_api: LocalAPIServer) -> AsyncIterator[ChaserClient]:
    async with ChaserClient(KEY, base_url=local_api.base_url, timeout=30, max_retries=0) as api:
        yield api


# -- the preference, as the local API reads it ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["wait=3"], 3.0),
        (["respond-async, wait=5"], 5.0),
        (['WAIT = "2" ; foo=bar'], 2.0),
        (["handling=lenient", "wait=4"], 4.0),
        (["wait=600"], MAX_WAIT_SECONDS),
        ([], 0.0),
        (["wait=soon"], 0.0),
        (["wait=-1"], 0.0),
        (["waiting=3"], 0.0),
    ],
)
def test_preferred_wait_reads_the_rfc_7240_wait_and_caps_it(headers: list[str], expected: float) -> None:
    assert preferred_wait(headers) == expected


# -- the local API holds a GET of a creating session ----------------------------------------------


@requires_chromium
async def test_a_held_get_is_answered_as_soon_as_the_session_becomes_ready(client: ChaserClient) -> None:
    created = await client.create_session(ttl_seconds=120)
    try:
        assert created.status == "creating"
        asked = datetime.now(UTC)
        session = await client.get_session(created.id, wait=10)
        answered = datetime.now(UTC)

        # One GET, sent while it was creating, answered ready: it was held across the moment the
        # browser became ready (a plain GET answers "creating" at once and needs another poll).
        assert session.status == "ready"
        assert session.ready_at is not None
        assert asked < session.ready_at <= answered
    finally:
        await client.delete_session(created.id)


async def test_a_held_get_answers_creating_once_the_hold_cap_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "browser" that never offers DevTools: its session stays creating for the launch timeout.
    never_ready = tmp_path / "never-ready-browser"
    never_ready.write_text("#!/bin/sh\nexec sleep 60\n")
    never_ready.chmod(0o755)
    monkeypatch.setattr(local_app, "MAX_WAIT_SECONDS", 1.0)
    async with (
        running_local_api(base_dir=tmp_path, executable=str(never_ready), launch_timeout=60) as server,
        ChaserClient(KEY, base_url=server.base_url, timeout=5, max_retries=0) as api,
    ):
        created = await api.create_session(ttl_seconds=120)
        try:
            asked = anyio.current_time()
            with anyio.fail_after(20):  # far below the 30 s asked for: the cap, not the ask, ended it
                session = await api.get_session(created.id, wait=30)
            held = anyio.current_time() - asked

            assert session.status == "creating"
            assert held >= 1.0 - SLACK  # it was held, for the capped time
        finally:
            await api.delete_session(created.id)


# -- wait_until_ready against a server that ignores the preference ---------------------------------


async def test_wait_until_ready_keeps_the_backoff_against_a_server_that_ignores_prefer(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.ready_delay = 1.5  # polls at 0, 0.25, 0.75 find it creating; the one at 1.75, ready

    session = structured(await mcp_client.call_tool("create_session", {}))

    assert session["status"] == "ready"
    polls = [r for r in fake_chaser.requests if r.method == "GET" and r.path.endswith(session["id"])]
    assert len(polls) == 4
    assert all(r.headers.get("prefer", "").startswith("wait=") for r in polls)
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(polls)]
    assert all(gap >= interval - SLACK for gap, interval in zip(gaps, SCHEDULE, strict=False)), gaps


async def test_a_failed_poll_keeps_the_session_and_waits_out_its_interval(
    mcp_client: Client, fake_chaser: FakeChaser
) -> None:
    fake_chaser.ready_delay = 0.6
    failure = Status(500, {"error": {"code": "internal_error", "message": "injected 500"}})
    fake_chaser.inject(failure, method="GET", path=SESSION_PATH, times=2)

    session = structured(await mcp_client.call_tool("create_session", {}))

    assert session["status"] == "ready" and session["owned"] is True
    assert session["id"] == fake_chaser.sessions[0]["id"]
    assert fake_chaser.deleted_ids() == []
    polls = [r for r in fake_chaser.requests if r.method == "GET" and r.path.endswith(session["id"])]
    assert len(polls) == 3  # two failures, each followed by the rest of its interval, then ready
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(polls)]
    assert all(gap >= interval - SLACK for gap, interval in zip(gaps, SCHEDULE, strict=False)), gaps
