"""Who owns a journal entry, and whether that process still runs.

An owner is a pid *and* that process's start time (Linux: clock ticks since boot, tagged with
the boot id), so a recycled pid is not mistaken for the owner and a reboot makes every older
owner dead. Elsewhere liveness falls back to the pid alone. Owners are also scoped to a
machine and pid namespace: an entry written on another host or container (a journal on a
shared home directory) is never judged, since its pid means nothing here.

``psutil`` reads the process table. Its start times are wall-clock seconds (boot time plus
ticks), which move when the clock is set; the journal stores ticks since boot instead, which
never move and are what servers of every version have written.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["Judge", "Liveness", "ProcessIdentity"]

_LINUX = sys.platform.startswith("linux")
_GONE = (psutil.ZombieProcess, psutil.NoSuchProcess)  # ZombieProcess first: it subclasses NoSuchProcess


@functools.cache
def _boot_id() -> str:
    """This boot of the machine ('' where unknown): start times are only comparable within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@functools.cache
def _host_scope() -> str:
    """Where a pid means something: this machine and (Linux) this pid namespace, hashed.

    The machine id is hashed rather than stored, as machine-id(5) asks of anything that keeps it.
    """
    parts = ["chaser-mcp journal"]
    machine = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            machine = Path(candidate).read_text().strip()
        if machine:
            break
    parts.append(machine or socket.gethostname())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@functools.cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _ticks_since_boot(process: psutil.Process) -> int:
    """When ``process`` started, in clock ticks since boot: the kernel's own, unmoved by clock changes.

    psutil adds the boot time (which follows the wall clock) to the kernel's ticks; taking it off
    again gives the ticks back exactly, unless the clock was set between the reads: then read again.
    """
    for _ in range(3):
        boot = psutil.boot_time()
        created = process.create_time()
        if psutil.boot_time() == boot:
            break
    return round((created - boot) * _clock_ticks())


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists; when unsure, True (never reap a possibly live owner)."""
    if pid <= 0:
        return False
    try:
        return psutil.pid_exists(pid)
    except OSError:
        return True


def _start_of(pid: int) -> str | None:
    """``"<boot id>:<start ticks>"`` of a running Linux process, None where unknown."""
    if not _LINUX:
        return None
    try:
        return f"{_boot_id()}:{_ticks_since_boot(psutil.Process(pid))}"
    except (psutil.Error, OSError):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process, told apart from any later one that reuses its pid.

    ``start`` is None where start times are unknown (then only the pid is checked); ``host`` is
    the hashed machine and pid-namespace scope the pid belongs to.
    """

    pid: int
    start: str | None
    host: str

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(pid, _start_of(pid), _host_scope())


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    FOREIGN = "foreign"  # another host or pid namespace: cannot be judged from here


def liveness(process: ProcessIdentity) -> Liveness:
    """Whether ``process`` still runs: its pid exists *and* (where known) started when it did."""
    if process.host != _host_scope():
        return Liveness.FOREIGN
    if process.pid <= 0:
        return Liveness.DEAD
    if not (_LINUX and process.start is not None):
        return Liveness.ALIVE if _pid_alive(process.pid) else Liveness.DEAD
    boot, _, ticks = process.start.rpartition(":")
    if boot != _boot_id():
        return Liveness.DEAD  # the machine rebooted since
    try:
        found = psutil.Process(process.pid)
        with found.oneshot():
            if found.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return Liveness.DEAD
            started = _ticks_since_boot(found)
    except _GONE:
        return Liveness.DEAD
    except (psutil.Error, OSError):  # hidden from us (AccessDenied, no /proc): the pid must do
        return Liveness.ALIVE if _pid_alive(process.pid) else Liveness.DEAD
    return Liveness.ALIVE if str(started) == ticks else Liveness.DEAD  # else a recycled pid


class Judge:
    """Liveness with a cache, for one pass over many entries of few owners."""

    def __init__(self) -> None:
        self._seen: dict[ProcessIdentity, Liveness] = {}

    def __call__(self, process: ProcessIdentity) -> Liveness:
        found = self._seen.get(process)
        if found is None:
            found = self._seen[process] = liveness(process)
        return found
