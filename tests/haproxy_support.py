"""A real HAProxy for a test: Debian's binary running the shipped ``deploy/haproxy.cfg``.

The file is rendered with only its addresses changed (the frontend and stats ports, one ``server``
line per replica in the shipped form), so what the tests exercise is what an operator deploys.
Tests skip, saying why, only when the binary is missing (scripts/install-haproxy).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx2
import pytest

from tests.http_server import wait_until
from tests.redis_support import free_ports

__all__ = ["CONFIG", "HAProxy", "haproxy_binary", "render_config"]

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"
BACKEND = "chaser_mcp"
_SERVERS = re.compile(
    r"^(?P<indent>[ \t]+)server replica1 127\.0\.0\.1:8001\n(?:[ \t]+server replica\d .*\n)*", re.M
)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.skip("haproxy is not installed (bash scripts/install-haproxy installs Debian's)")
    return found


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/haproxy.cfg no longer has exactly one {old!r}"
    return text.replace(old, new)


def render_config(port: int, stats_port: int, replica_ports: Sequence[int]) -> str:
    """The shipped config with its listening ports and replica addresses changed, nothing else."""
    text = CONFIG.read_text()
    text = _replace_once(text, "\n    bind :8000\n", f"\n    bind 127.0.0.1:{port}\n")
    text = _replace_once(text, "bind 127.0.0.1:8404\n", f"bind 127.0.0.1:{stats_port}\n")
    match = _SERVERS.search(text)
    assert match is not None, "deploy/haproxy.cfg no longer lists replica1 127.0.0.1:8001"
    servers = "".join(
        f"{match['indent']}server replica{n} 127.0.0.1:{replica_port}\n"
        for n, replica_port in enumerate(replica_ports, start=1)
    )
    return text[: match.start()] + servers + text[match.end() :]


class HAProxy:
    """``haproxy -db`` (foreground) on free loopback ports, in front of ``replica_ports``."""

    def __init__(self, directory: Path, replica_ports: Sequence[int]) -> None:
        self.binary = haproxy_binary()
        self.replica_ports = list(replica_ports)
        self.port, self.stats_port = free_ports(2)
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "haproxy.cfg"
        self.config.write_text(render_config(self.port, self.stats_port, self.replica_ports))
        self.log = directory / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(self._all_up, timeout=20):
            self.stop()
            pytest.fail(f"haproxy did not see every replica up:\n{self.log.read_text(errors='replace')}")
        return self

    def _all_up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return False
        try:
            return all(row["status"] in ("UP", "no check") for row in self.servers().values())
        except httpx2.HTTPError:
            return False

    def servers(self) -> dict[str, dict[str, str]]:
        """Each replica's row of the stats CSV (``stot``: requests it was sent; ``status``: UP/DOWN)."""
        response = httpx2.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5)
        response.raise_for_status()
        rows = csv.DictReader(io.StringIO(response.text.removeprefix("# ")))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def requests_per_replica(self) -> dict[str, int]:
        return {name: int(row["stot"]) for name, row in self.servers().items()}

    def status(self, replica: str) -> str:
        return self.servers()[replica]["status"]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
