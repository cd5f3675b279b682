"""Shared fixtures for the whole test suite."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from chaser_mcp.api import ChaserClient
from tests.fake_chaser import DEFAULT_KEY, FakeChaser
from tests.local_support import LoopbackSite, serve_test_site
from tests.mcp_support import MODES, Harness, Mode, running_server
from tests.page_support import LocalHarness, PagesSite, local_mcp, new_session, serve_pages
from tests.redis_support import RedisServer


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so module-scoped async fixtures (one browser for a whole module) can use it."""
    return "asyncio"


@pytest.fixture(scope="module")
def site() -> Iterator[LoopbackSite]:
    """The loopback test site (tests/local_support.py), one per module that uses it."""
    with serve_test_site() as served:
        yield served


@pytest.fixture
def fake_chaser() -> Iterator[FakeChaser]:
    """A fresh loopback Chaser API per test (one workspace, DEFAULT_KEY), stopped afterwards."""
    with FakeChaser() as fake:
        yield fake


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for one test (tests/redis_support.py)."""
    started = RedisServer(tmp_path / "redis")
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def chaser_client(fake_chaser: FakeChaser) -> AsyncIterator[ChaserClient]:
    """A ChaserClient on ``fake_chaser`` with tiny backoffs, so retry tests stay fast."""
    async with ChaserClient(
        DEFAULT_KEY,
        base_url=fake_chaser.url,
        timeout=2.0,
        backoff_base=0.01,
        backoff_max=0.05,
        retry_after_cap=0.2,
    ) as client:
        yield client


# -- MCP-level fixtures (tests/mcp_support.py has the harness) ----------------------------------------


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    """Both protocol eras: the initialize handshake ("legacy") and stateless 2026-07-28 ("auto")."""
    value: Mode = request.param
    return value


@pytest.fixture
async def mcp_harness(fake_chaser: FakeChaser) -> AsyncIterator[Harness]:
    """A chaser-mcp server on ``fake_chaser`` with fast settings; its sessions are cleaned up afterwards."""
    async with running_server(fake_chaser) as harness:
        yield harness


@pytest.fixture
async def mcp_client(mcp_harness: Harness, mode: Mode) -> AsyncIterator[Client]:
    """An in-memory MCP client of ``mcp_harness``, in each protocol era."""
    async with mcp_harness.connect(mode) as client:
        yield client


# -- page-tool fixtures (tests/page_support.py has the harness) ---------------------------------------


@pytest.fixture(scope="module")
def pages_site() -> Iterator[PagesSite]:
    """tests/pages/ served on loopback, one per module."""
    with serve_pages() as served:
        yield served


@pytest.fixture(scope="module")
async def local_mcp_server() -> AsyncIterator[LocalHarness]:
    """One chaser-mcp server on a real local backend per module (tests/page_support.py)."""
    async with local_mcp() as harness:
        yield harness


@pytest.fixture
async def page_client(local_mcp_server: LocalHarness, mode: Mode) -> AsyncIterator[Client]:
    """An in-memory client of ``local_mcp_server`` in each protocol era."""
    async with local_mcp_server.connect(mode) as client:
        yield client


@pytest.fixture
async def session(page_client: Client) -> AsyncIterator[str]:
    """A ready local session for one test, deleted afterwards."""
    session_id = await new_session(page_client)
    try:
        yield session_id
    finally:
        await page_client.call_tool("delete_session", {"session_id": session_id})
