"""A real redis-server for a test: Debian's binary on a free loopback port, never the system service.

No persistence unless asked (``--save ''``, append-only off); ``appendonly=True`` writes an fsync'd
append-only file in the test's directory, so a restart on the same directory keeps what was
acknowledged. Tests skip, saying why, only when the binary is missing (scripts/install-redis).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

__all__ = ["RedisServer", "free_port", "free_ports", "redis_server_binary"]


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        pytest.skip("redis-server is not installed (bash scripts/install-redis installs Debian's)")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports.

    Every probe socket stays bound until all are chosen: two separate ``bind(0)`` calls may be handed
    the same port, and HAProxy (SO_REUSEPORT by default) then binds two of its frontends to it and
    splits connections between them, so a stats request is sometimes proxied to a replica instead.
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    return free_ports(1)[0]


class RedisServer:
    """One redis-server process; ``start`` and ``stop`` may be called again (a restart)."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.directory), "--daemonize", "no", "--logfile", ""]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(redis.exceptions.ConnectionError),
                stop=stop_after_delay(20),
                wait=wait_fixed(0.05),
                reraise=True,
            ):
                with attempt:
                    if self.proc.poll() is not None:
                        pytest.fail(f"redis-server exited at start with code {self.proc.returncode}")
                    client.ping()
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """kill -9: nothing flushed at exit; only what was fsync'd survives."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
