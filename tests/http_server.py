"""A real chaser-mcp HTTP/SSE server in a subprocess, pointed at a FakeChaser, for transport tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; the caller asserts the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class HttpServer:
    """``python -m chaser_mcp --transport …`` on a free loopback port."""

    api_url: str
    transport: str = "http"
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _stderr_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse"

    def start(self, tmp_dir: Path) -> HttpServer:
        self._stderr_path = tmp_dir / f"server-{self.port}.log"
        env = {
            **os.environ,
            "CHASER_BASE_URL": self.api_url,
            "CHASER_JOURNAL": "off",
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "chaser_mcp",
            "--transport",
            self.transport,
            "--port",
            str(self.port),
        ]
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen([*command, *self.args], env=env, stderr=stderr, cwd=ROOT)
        if not wait_until(self._healthy, timeout=15):
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.stderr()}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        try:
            return httpx2.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self._stderr_path else ""

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
