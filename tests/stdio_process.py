"""``python -m chaser_mcp`` as a real child process, spoken to in raw JSON-RPC over its pipes.

Life-cycle tests and the stdio benchmark need what an SDK client hides: the process id (to signal
it), its stdin (to close it at a chosen moment), its exit code and its stderr (the cleanup log).
``StdioServer`` gives exactly that, in the handshake era (``initialize``), which is what most
third-party hosts speak.

Run as a module it also provides two small programs the tests spawn::

    python -m tests.stdio_process sdk-client --base-url URL --errlog PATH --exit-file PATH [--sessions N]
        An SDK ``Client`` that starts the server, creates N sessions, prints their ids as one JSON
        line, then sleeps until it is killed (the orphaned-server test kills it with SIGKILL).

    python -m tests.stdio_process record-exit EXIT_FILE -- COMMAND...
        Runs COMMAND with inherited pipes, writes its pid to EXIT_FILE.pid and then its exit code to
        EXIT_FILE: the exit code of a server whose parent was killed can be read by no one else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TextIO, cast

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.fake_chaser import DEFAULT_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_COMMAND = (sys.executable, "-m", "chaser_mcp")
HANDSHAKE_VERSION = "2025-11-25"
MAX_LINE = 32 * 1024 * 1024

# The line Conversations.end logs, e.g.
# "conversation stdio ended (SIGTERM) in 0.01 s: 2 deleted, 0 already closed, 1 kept (persist), 0 failed"
SUMMARY = re.compile(
    r"conversation (?P<conversation>\S+) ended \((?P<reason>[^)]*)\) in (?P<seconds>[0-9.]+) s: "
    r"(?P<deleted>\d+) deleted, (?P<already_closed>\d+) already closed, "
    r"(?P<kept>\d+) kept \(persist\), (?P<failed>\d+) failed"
)


def server_env(
    base_url: str, *, key: str = DEFAULT_KEY, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without any ``CHASER_*`` variable, plus the ones a test chooses."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHASER_")}
    env.update(CHASER_KEY=key, CHASER_BASE_URL=base_url, CHASER_JOURNAL="off")
    env.update(extra or {})
    return env


def chaser_env(
    base_url: str, *, key: str = DEFAULT_KEY, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Only the ``CHASER_*`` variables, for ``StdioServerParameters.env`` (merged over the SDK's safe set)."""
    env = {"CHASER_KEY": key, "CHASER_BASE_URL": base_url, "CHASER_JOURNAL": "off"}
    env.update(extra or {})
    return env


class JsonRpcError(Exception):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"JSON-RPC error {error.get('code')}: {error.get('message')}")
        self.error = dict(error)


class ServerExited(Exception):
    """The server closed its stdout while an answer was still expected."""

    def __init__(self, returncode: int | None, stderr: str) -> None:
        super().__init__(f"the server closed stdout (exit code {returncode}); its stderr:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


class ToolCallFailed(Exception):
    """A ``tools/call`` answered with ``isError: true``."""


class StdioServer:
    """One ``python -m chaser_mcp`` child: raw JSON-RPC on its stdin/stdout, stderr kept in a file.

    Use as ``async with StdioServer(base_url) as server:``; leaving the block kills the process if
    it is still running, so a failing test never leaves one behind.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str = DEFAULT_KEY,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = SERVER_COMMAND,
    ) -> None:
        self.command = list(command)
        self.env = server_env(base_url, key=key, extra=env)
        self.notifications: list[dict[str, Any]] = []
        self._process: Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None
        self._stderr: IO[bytes] | None = None
        self._responses: dict[int, dict[str, Any]] = {}
        self._next_id = 0

    async def start(self) -> Self:
        # A file, not a pipe: nobody has to drain it while the test waits on something else.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this call; aclose() closes it
        self._process = await anyio.open_process(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO_ROOT,
            env=self.env,
        )
        assert self._process.stdout is not None
        self._stdout = BufferedByteReceiveStream(self._process.stdout)
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                with anyio.move_on_after(5):
                    await process.wait()
                await process.aclose()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # -- the process ------------------------------------------------------------------------------

    @property
    def process(self) -> Process:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def close_stdin(self) -> None:
        """End the conversation the way a client that exits does."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def wait(self, timeout: float) -> int:
        """The exit code, waiting at most ``timeout`` seconds (TimeoutError otherwise)."""
        with anyio.fail_after(timeout):
            return await self.process.wait()

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # -- JSON-RPC ---------------------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def start_request(self, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Send a request without waiting for its answer; returns its id for ``response``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        if params is not None:
            message["params"] = dict(params)
        await self.send(message)
        return self._next_id

    async def response(self, request_id: int, timeout: float = 15.0) -> dict[str, Any]:
        """The ``result`` of request ``request_id``; notifications that arrive meanwhile are kept."""
        with anyio.fail_after(timeout):
            while request_id not in self._responses:
                await self._read_one()
        answer = self._responses.pop(request_id)
        if "error" in answer:
            raise JsonRpcError(answer["error"])
        result: dict[str, Any] = answer["result"]
        return result

    async def request(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        return await self.response(await self.start_request(method, params), timeout)

    async def initialize(self) -> dict[str, Any]:
        """The handshake-era opening: ``initialize`` then ``notifications/initialized``."""
        result = await self.request(
            "initialize",
            {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "stdio-process-test", "version": "0"},
            },
        )
        await self.send({"method": "notifications/initialized"})
        return result

    async def start_tool_call(self, name: str, arguments: Mapping[str, Any] | None = None) -> int:
        return await self.start_request("tools/call", {"name": name, "arguments": dict(arguments or {})})

    async def tool_result(self, request_id: int, timeout: float = 15.0) -> dict[str, Any]:
        """The structured content of a finished tool call; ``ToolCallFailed`` if it was an error."""
        result = await self.response(request_id, timeout)
        if result.get("isError"):
            texts = [c.get("text", "") for c in result.get("content", [])]
            raise ToolCallFailed(" ".join(texts))
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        return await self.tool_result(await self.start_tool_call(name, arguments), timeout)

    async def create_session(self, *, persist: bool = False, wait_until_ready: bool = True) -> str:
        """Create a session through the ``create_session`` tool; returns its id."""
        result = await self.call_tool(
            "create_session", {"persist": persist, "wait_until_ready": wait_until_ready}
        )
        session_id: str = result["id"]
        return session_id

    async def _read_one(self) -> None:
        assert self._stdout is not None
        try:
            line = await self._stdout.receive_until(b"\n", MAX_LINE)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            with anyio.move_on_after(2):
                await self.process.wait()
            raise ServerExited(self.process.returncode, self.stderr_text()) from None
        if not line.strip():
            return
        message = json.loads(line)
        if "id" in message and ("result" in message or "error" in message):
            self._responses[int(message["id"])] = message
        elif "id" in message:
            # A request from the server (none is expected in these tests): refuse it, never hang it.
            await self.send({"id": message["id"], "error": {"code": -32601, "message": "not supported"}})
        else:
            self.notifications.append(message)


def cleanup_summaries(stderr: str) -> list[dict[str, str]]:
    """Every cleanup summary line in a server's stderr, as the named groups of ``SUMMARY``."""
    return [match.groupdict() for match in SUMMARY.finditer(stderr)]


# -- the helper programs ----------------------------------------------------------------------------


async def _sdk_client(args: argparse.Namespace) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.stdio_process", "record-exit", args.exit_file, "--", *SERVER_COMMAND],
        env=chaser_env(args.base_url),
        cwd=REPO_ROOT,
    )
    # stdio_client(params) is what Client(params) builds; it is spelled out only to pass errlog.
    async with (
        await anyio.open_file(args.errlog, "w") as errlog,
        Client(stdio_client(params, errlog=cast(TextIO, errlog.wrapped)), mode=args.mode) as client,
    ):
        ids = []
        for _ in range(args.sessions):
            result = await client.call_tool("create_session", {"wait_until_ready": False})
            assert not result.is_error and result.structured_content is not None, result
            ids.append(result.structured_content["id"])
        print(json.dumps({"session_ids": ids}), flush=True)
        await anyio.sleep_forever()


def _record_exit(exit_file: str, command: Sequence[str]) -> int:
    child = subprocess.Popen(list(command))
    # The child's pid, so a test that fails half-way can still kill a server it never spawned itself.
    Path(exit_file + ".pid").write_text(str(child.pid))
    returncode = child.wait()
    partial = exit_file + ".partial"
    Path(partial).write_text(str(returncode))
    os.replace(partial, exit_file)  # readers never see a half-written file
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stdio_process")
    commands = parser.add_subparsers(dest="command", required=True)
    client = commands.add_parser("sdk-client", help="start the server with the SDK Client, then sleep")
    client.add_argument("--base-url", required=True)
    client.add_argument("--errlog", required=True, help="file the server's stderr goes to")
    client.add_argument("--exit-file", required=True, help="file the server's exit code is written to")
    client.add_argument("--sessions", type=int, default=2)
    client.add_argument("--mode", default="auto", choices=["auto", "legacy"])
    record = commands.add_parser("record-exit", help="run a command and write its exit code to a file")
    record.add_argument("exit_file")
    record.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "record-exit":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        return _record_exit(args.exit_file, cmd)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_sdk_client, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
