"""The stdio server is one conversation: however it ends, its unpersisted sessions are deleted.

Every test runs ``python -m chaser_mcp`` as a real process against a loopback fake API, ends it one
way (stdin closed, a stop signal, its client killed, with a create still running, with the API
hanging or slow), then counts at the fake which sessions got a DELETE and which are still open, and
checks the exit code (0) and stderr (the cleanup summary, no traceback, no API key).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO, cast

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.fake_chaser import DEFAULT_KEY, Delay, FakeChaser, Hang
from tests.stdio_process import (
    REPO_ROOT,
    SERVER_COMMAND,
    StdioServer,
    chaser_env,
    cleanup_summaries,
    server_env,
)

pytestmark = pytest.mark.anyio

SESSION_PATH = r"/v1/sessions/[^/]+"
STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
EXIT_WAIT = 15.0  # generous: the default cleanup bound is 10 s and the machine is shared


@pytest.fixture
def fake() -> Iterator[FakeChaser]:
    """Sessions are ready as soon as they are created, so no test waits on polling."""
    with FakeChaser(ready_delay=0) as fake:
        yield fake


def assert_clean_exit(returncode: int, stderr: str) -> None:
    assert returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert DEFAULT_KEY not in stderr


def only_summary(stderr: str) -> dict[str, str]:
    summaries = cleanup_summaries(stderr)
    assert len(summaries) == 1, stderr
    return summaries[0]


def open_ids(fake: FakeChaser) -> set[str]:
    return {session["id"] for session in fake.open_sessions()}


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - polling another process's state, which has no event
            await anyio.sleep(0.02)


async def end_conversation(server: StdioServer, how: str) -> None:
    if how == "stdin closed":
        await server.close_stdin()
    else:
        server.send_signal(signal.Signals[how])


# -- stdin closed -----------------------------------------------------------------------------------


async def test_closing_stdin_deletes_unpersisted_sessions_and_keeps_persisted_ones(fake: FakeChaser) -> None:
    async with StdioServer(fake.url) as server:
        await server.initialize()
        doomed = {await server.create_session(), await server.create_session()}
        kept = await server.create_session(persist=True)

        await server.close_stdin()
        returncode = await server.wait(EXIT_WAIT)

        assert set(fake.deleted_ids()) == doomed
        assert fake.count("DELETE", SESSION_PATH) == 2
        assert open_ids(fake) == {kept}
        stderr = server.stderr_text()
        assert_clean_exit(returncode, stderr)
        summary = only_summary(stderr)
        assert (summary["reason"], summary["deleted"], summary["kept"], summary["failed"]) == (
            "stdin closed",
            "2",
            "1",
            "0",
        )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_client_exiting_normally_deletes_unpersisted_sessions(
    fake: FakeChaser, tmp_path: Path, mode: str
) -> None:
    """The SDK client closes stdin on exit (then SIGTERMs after 2 s): the server must be done by then."""
    errlog_path, exit_file = tmp_path / "server.err", tmp_path / "server.rc"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.stdio_process", "record-exit", str(exit_file), "--", *SERVER_COMMAND],
        env=chaser_env(fake.url),
        cwd=REPO_ROOT,
    )
    # Client(params) builds exactly stdio_client(params); it is spelled out only to pass errlog.
    async with (
        await anyio.open_file(errlog_path, "w") as errlog,
        Client(stdio_client(params, errlog=cast(TextIO, errlog.wrapped)), mode=mode) as client,
    ):
        created = []
        for persist in (False, False, True):
            result = await client.call_tool("create_session", {"persist": persist})
            assert not result.is_error and result.structured_content is not None
            created.append(result.structured_content["id"])

    await wait_until(exit_file.exists, EXIT_WAIT)
    assert set(fake.deleted_ids()) == set(created[:2])
    assert open_ids(fake) == {created[2]}
    stderr = await anyio.Path(errlog_path).read_text()
    assert_clean_exit(int(await anyio.Path(exit_file).read_text()), stderr)
    # "stdin closed", not a signal: the server finished inside the SDK's 2 s grace period.
    assert only_summary(stderr)["reason"] == "stdin closed"


async def test_sigterm_during_the_stdin_closed_cleanup_does_not_cut_it_short(fake: FakeChaser) -> None:
    """The SDK client sends SIGTERM when a server is still running 2 s after it closed stdin: a slow
    API can make the cleanup take that long, and it must still finish (within its own bound)."""
    async with StdioServer(fake.url) as server:
        await server.initialize()
        doomed = {await server.create_session(), await server.create_session()}
        fake.inject(Delay(1.5), method="DELETE", path=SESSION_PATH, times=2)

        await server.close_stdin()
        await wait_until(lambda: fake.count("DELETE", SESSION_PATH) == 2)  # the cleanup is under way
        server.send_signal(signal.SIGTERM)
        returncode = await server.wait(EXIT_WAIT)

        assert set(fake.deleted_ids()) == doomed
        stderr = server.stderr_text()
        assert_clean_exit(returncode, stderr)
        assert "SIGTERM received while cleaning up" in stderr
        summary = only_summary(stderr)
        assert (summary["reason"], summary["deleted"], summary["failed"]) == ("stdin closed", "2", "0")


# -- stop signals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: s.name)
async def test_stop_signal_deletes_unpersisted_sessions_and_exits_0(
    fake: FakeChaser, signum: signal.Signals
) -> None:
    async with StdioServer(fake.url) as server:
        await server.initialize()
        doomed = {await server.create_session(), await server.create_session()}
        kept = await server.create_session(persist=True)

        server.send_signal(signum)
        returncode = await server.wait(EXIT_WAIT)

        assert set(fake.deleted_ids()) == doomed
        assert open_ids(fake) == {kept}
        stderr = server.stderr_text()
        assert_clean_exit(returncode, stderr)
        assert f"{signum.name} received" in stderr
        summary = only_summary(stderr)
        assert (summary["reason"], summary["deleted"], summary["kept"], summary["failed"]) == (
            signum.name,
            "2",
            "1",
            "0",
        )


# -- the client killed ------------------------------------------------------------------------------


async def test_server_orphaned_by_a_sigkilled_client_deletes_its_sessions(
    fake: FakeChaser, tmp_path: Path
) -> None:
    """Nobody closes stdin or sends a signal: the server only sees EOF when the kernel reaps the client."""
    errlog, exit_file = tmp_path / "server.err", tmp_path / "server.rc"
    pid_file = anyio.Path(f"{exit_file}.pid")
    command = [
        *(sys.executable, "-m", "tests.stdio_process", "sdk-client"),
        *("--base-url", fake.url, "--errlog", str(errlog), "--exit-file", str(exit_file), "--sessions", "3"),
    ]
    async with await anyio.open_file(tmp_path / "client.err", "wb") as client_err:
        client = await anyio.open_process(
            command,
            stdout=subprocess.PIPE,
            stderr=client_err.wrapped,
            cwd=REPO_ROOT,
            env=server_env(fake.url),
        )
    try:
        assert client.stdout is not None
        with anyio.fail_after(20):
            line = await BufferedByteReceiveStream(client.stdout).receive_until(b"\n", 1 << 20)
        session_ids = set(json.loads(line)["session_ids"])
        assert len(session_ids) == 3 and open_ids(fake) == session_ids

        client.kill()  # SIGKILL: the client runs no shutdown code at all
        await client.wait()

        await wait_until(exit_file.exists, EXIT_WAIT)
        assert set(fake.deleted_ids()) == session_ids
        assert open_ids(fake) == set()
        stderr = await anyio.Path(errlog).read_text()
        assert_clean_exit(int(await anyio.Path(exit_file).read_text()), stderr)
        assert only_summary(stderr)["reason"] == "stdin closed"
    finally:
        if client.returncode is None:
            client.kill()
        await client.aclose()
        if await pid_file.exists() and not await anyio.Path(exit_file).exists():
            os.kill(int(await pid_file.read_text()), signal.SIGKILL)  # the test failed with the server up


# -- ends that arrive while a create is still running ----------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "stdin closed"])
async def test_end_while_create_session_waits_for_ready_still_deletes_the_session(how: str) -> None:
    with FakeChaser(ready_delay=60) as fake:  # stays "creating" for the whole test
        async with StdioServer(fake.url) as server:
            await server.initialize()
            await server.start_tool_call("create_session", {"wait_until_ready": True})
            # The first status poll proves the POST has returned and the tool is waiting for ready.
            await wait_until(lambda: fake.count("GET", SESSION_PATH) >= 1)
            [created] = [session["id"] for session in fake.sessions]

            await end_conversation(server, how)
            returncode = await server.wait(EXIT_WAIT)

            assert fake.deleted_ids() == [created]
            assert open_ids(fake) == set()
            assert_clean_exit(returncode, server.stderr_text())


@pytest.mark.parametrize("how", ["SIGTERM", "stdin closed"])
async def test_end_while_the_create_request_is_in_flight_still_deletes_the_session_it_creates(
    fake: FakeChaser, how: str
) -> None:
    """The API creates the session only after the end arrived; its id is learnt during cleanup."""
    fake.inject(Delay(1.0), method="POST", path="/v1/sessions")
    async with StdioServer(fake.url) as server:
        await server.initialize()
        await server.start_tool_call("create_session", {"wait_until_ready": False})
        await wait_until(lambda: fake.count("POST", "/v1/sessions") == 1)
        assert fake.sessions == []  # the request is in flight, held by the delay

        await end_conversation(server, how)
        returncode = await server.wait(EXIT_WAIT)

        [created] = [session["id"] for session in fake.sessions]
        assert fake.deleted_ids() == [created]
        assert open_ids(fake) == set()
        assert_clean_exit(returncode, server.stderr_text())


# -- cleanup is bounded and concurrent --------------------------------------------------------------


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM"])
async def test_cleanup_gives_up_at_its_bound_when_deletes_hang_and_logs_the_failures(
    fake: FakeChaser, how: str
) -> None:
    cleanup_timeout = 1.0
    async with StdioServer(fake.url, env={"CHASER_CLEANUP_TIMEOUT": f"{cleanup_timeout:g}"}) as server:
        await server.initialize()
        stuck = {await server.create_session(), await server.create_session()}
        fake.inject(Hang(), method="DELETE", path=SESSION_PATH, times=None)

        await end_conversation(server, how)
        returncode = await server.wait(cleanup_timeout + 5)

        assert fake.count("DELETE", SESSION_PATH) == 2  # both were tried...
        assert open_ids(fake) == stuck  # ...and neither answered
        stderr = server.stderr_text()
        assert_clean_exit(returncode, stderr)
        summary = only_summary(stderr)
        assert (summary["deleted"], summary["failed"]) == ("0", "2")
        assert "ERROR chaser_mcp.conversations" in stderr
        for session_id in stuck:
            assert f"{session_id} (not finished within 1 s)" in stderr


async def test_cleanup_deletes_sessions_concurrently(fake: FakeChaser) -> None:
    count, delete_latency = 20, 0.2
    async with StdioServer(fake.url) as server:
        await server.initialize()
        calls = [await server.start_tool_call("create_session") for _ in range(count)]
        created = {(await server.tool_result(call))["id"] for call in calls}
        fake.inject(Delay(delete_latency), method="DELETE", path=SESSION_PATH, times=count)

        await server.close_stdin()
        returncode = await server.wait(EXIT_WAIT)

        assert set(fake.deleted_ids()) == created
        stderr = server.stderr_text()
        assert_clean_exit(returncode, stderr)
        summary = only_summary(stderr)
        assert summary["deleted"] == str(count)
        # Deleting one after another cannot take less than count x latency = 4 s; concurrently it takes
        # about one latency (~0.2 s). The 20x gap makes this a check of concurrency, not of speed.
        assert float(summary["seconds"]) < count * delete_latency
