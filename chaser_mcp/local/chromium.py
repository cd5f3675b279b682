"""Find, launch and reliably stop headless Chromium processes.

Every browser gets a throwaway profile directory ``<base>/chaser-local-<owner pid>-<random>``
(the owner is this Python process), runs in its own process group so one ``killpg``
reaches every helper, and is tied to our life with a parent-death signal, so no
browser outlives the server even after ``kill -9``. The profile dir is the one
thing a hard kill leaves behind; ``sweep_stale_profiles`` removes those of owners
that are gone (and any browser still running from one of them).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import psutil

from chaser_mcp.browser._tasks import owned_tasks
from chaser_mcp.browser.cdp import CDPConnection, CDPException, CDPTimeout

from .devtools import DevToolsPipe

log = logging.getLogger("chaser_mcp.local.chromium")

PROFILE_PREFIX = "chaser-local-"
DEFAULT_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = (
    "install it with `apt-get install --no-install-recommends chromium` "
    "or point CHASER_CHROME at a Chromium/Chrome binary"
)

# Measured on Debian's chromium 156 (see the CDP reference notes): the flags a headless
# browser needs with no GPU and no network beyond loopback, and nothing more.
BASE_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    # A phone's Chrome reports navigator.webdriver === false; a DevTools-driven one says true.
    "--disable-blink-features=AutomationControlled",
    # Chromium 156 preloads its omnibox popups (two chrome://omnibox-popup.top-chrome WebUIs) in a
    # renderer of their own, even headless where no omnibox is ever shown: ~1.3 s of CPU in the
    # first second, ~30 MiB USS and ~55 MiB PSS, measured with psutil over the process group. Nothing
    # else passes --disable-features (a second one would replace this list, not add to it).
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
    # DevTools on fds 3 and 4 instead of a TCP port: a loopback port is open to every local
    # user, the pipe only to us (see devtools.py).
    "--remote-debugging-pipe",
)
# Chromium refuses to start its sandbox as root; then, and only then, it runs without one.
NO_SANDBOX_FLAG = "--no-sandbox"
# Move the two pipes handed over as stdin/stdout to fds 3 and 4, where Chromium looks for
# them, then exec (same pid). A shell does the fd shuffle, so no Python runs between fork and
# exec (preexec_fn is unsafe with threads).
_PIPE_TRAMPOLINE = 'exec 3<&0 4>&1 0</dev/null 1>/dev/null; exec "$@"'
_SANDBOX_FAILURES = ("No usable sandbox", "sandbox_linux", "zygote_host_impl_linux", "setuid sandbox")
SANDBOX_HINT = (
    "Chromium could not start its sandbox as a non-root user: allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1, or kernel.apparmor_restrict_unprivileged_userns=0 "
    "on Ubuntu; in a container, run it with a seccomp profile that permits clone/unshare of user "
    "namespaces) or install Chromium's setuid chrome-sandbox helper; the local backend never turns "
    "the sandbox off for a non-root user"
)
_PROFILE_NAME = re.compile(rf"^{re.escape(PROFILE_PREFIX)}(\d+)-[A-Za-z0-9]+$")
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
_SINGLETON_SUFFIX_LEN = len("/org.chromium.Chromium.XXXXXX/SingletonSocket")


class BrowserNotFound(RuntimeError):
    """No Chromium binary could be found."""


class BrowserLaunchError(RuntimeError):
    """Chromium started but never offered its DevTools endpoint."""


def chromium_flags(euid: int | None = None) -> list[str]:
    """The launch flags for a process running as ``euid`` (default: ours).

    The sandbox stays on for every user but root: Chromium cannot sandbox itself as root,
    so a root-owned browser runs without one (a compromised renderer would be root).
    """
    effective = os.geteuid() if euid is None else euid
    return [*BASE_FLAGS, NO_SANDBOX_FLAG] if effective == 0 else list(BASE_FLAGS)


def find_chromium(
    env: Mapping[str, str] | None = None, candidates: Sequence[str] = DEFAULT_CANDIDATES
) -> str:
    """The browser binary: ``CHASER_CHROME``, else Debian's real binary, else one on PATH.

    Debian's ``/usr/bin/chromium`` is a shell wrapper that adds flags and API keys of its
    own, so the binary behind it is preferred.
    """
    env = os.environ if env is None else env
    configured = env.get("CHASER_CHROME", "").strip()
    if configured:
        path = shutil.which(configured, path=env.get("PATH"))
        if path is None:
            raise BrowserNotFound(f"CHASER_CHROME={configured!r} is not an executable file; {INSTALL_HINT}")
        return path
    for candidate in candidates:
        path = shutil.which(candidate, path=env.get("PATH"))
        if path is not None:
            return path
    raise BrowserNotFound(f"no Chromium found (looked for {', '.join(candidates)}); {INSTALL_HINT}")


def default_base_dir() -> Path:
    """Where profile dirs go unless told otherwise: the system temp dir."""
    return Path(tempfile.gettempdir())


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found: list[int] = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (psutil.Error, OSError):  # gone meanwhile, or not ours to see
            continue
    return found


def pids_using_profile(profile_dir: Path) -> list[int]:
    """Live processes whose command line names ``profile_dir`` as their user data dir."""
    needle = f"--user-data-dir={profile_dir}"
    found: list[int] = []
    for process in psutil.process_iter():
        try:
            if needle in process.cmdline():
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def sweep_stale_profiles(base_dir: Path | None = None) -> list[Path]:
    """Remove profile dirs left by owners that are gone; return what was removed.

    A browser still running from such a dir (its owner died without a parent-death
    signal reaching it) is killed first: it is identified by its ``--user-data-dir``
    argument, never by a pid that could have been reused.
    """
    base = base_dir or default_base_dir()
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _PROFILE_NAME.match(path.name)
        if match is None or not path.is_dir():
            continue
        owner = int(match.group(1))
        if owner == os.getpid() or psutil.pid_exists(owner):
            continue
        survivors = pids_using_profile(path)
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        deadline = time.monotonic() + 3
        while survivors and pids_using_profile(path) and time.monotonic() < deadline:
            time.sleep(0.02)  # let the killed browser stop writing before the files go
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    if removed:
        log.info("removed %d stale browser profile dir(s) under %s", len(removed), base)
    return removed


@functools.cache
def _setpriv_with_pdeathsig() -> str | None:
    """util-linux ``setpriv`` if it knows ``--pdeathsig`` (2.33+): it sets the signal, then execs."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


# Without setpriv, a short-lived interpreter sets the parent-death signal and execs (same pid),
# so no Python runs between fork and exec in this (threaded) process.
_PDEATHSIG_EXEC = """import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the parent died before prctl took effect
os.execv(sys.argv[2], sys.argv[2:])
"""


class BrowserProcess:
    """One running Chromium: its pid (also its process group), DevTools pipe and profile dir.

    Made only by ``launch_browser``, whose ``async with`` block owns its tasks (the pipe's
    reader, the stderr drain, the exit watch) and its teardown.
    """

    def __init__(
        self, process: anyio.abc.Process, devtools: DevToolsPipe, profile_dir: Path, tmp_dir: Path
    ) -> None:
        self._process = process
        self.pid = process.pid
        self.devtools = devtools
        self.profile_dir = profile_dir
        self.tmp_dir = tmp_dir  # the browser's TMPDIR: inside the profile unless that path is too long
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_done = anyio.Event()
        self._exited = anyio.Event()
        self._closing = False
        self._stopped = False

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    @property
    def closing(self) -> bool:
        """True once ``stop`` started, so an exit is expected rather than a crash."""
        return self._closing

    async def wait(self) -> int:
        """Wait for the main process to exit; returns its exit code."""
        await self._exited.wait()
        code = self._process.returncode
        assert code is not None
        return code

    def connect(self, name: str = "in-process") -> contextlib.AbstractAsyncContextManager[CDPConnection]:
        """``async with browser.connect() as cdp:`` a CDP connection over the browser's pipe."""
        return self.devtools.connect(name)

    def live_pids(self) -> list[int]:
        """Every non-zombie process of this browser (its whole process group)."""
        return group_pids(self.pid)

    async def _watch_exit(self) -> None:
        await self._process.wait()
        self._exited.set()

    async def _drain_stderr(self, stream: anyio.abc.ByteReceiveStream) -> None:
        # Chromium writes ~30 harmless D-Bus errors at start; a full pipe would block it.
        partial = b""
        try:
            async for chunk in stream:
                *lines, partial = (partial + chunk).split(b"\n")
                self._stderr_tail.extend(line.decode("utf-8", "replace").rstrip() for line in lines)
                partial = partial[-4096:]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if partial:
                self._stderr_tail.append(partial.decode("utf-8", "replace").rstrip())
            self._stderr_done.set()

    async def stop(self, *, grace: float = 3.0) -> None:
        """End every process of the browser, each step bounded by ``grace``; the profile stays.

        The one escalation: ``Browser.close`` over the pipe (a clean exit), then SIGTERM,
        then SIGKILL to the whole process group for helpers that linger. Shielded, so a
        cancelled owner still leaves no process behind; idempotent.
        """
        if self._stopped:
            return
        self._closing = True
        if not self.exited and not self.devtools.closed:
            with anyio.move_on_after(grace, shield=True):
                with contextlib.suppress(CDPException):  # the browser may close the pipe before it answers
                    await self.devtools.call("Browser.close", timeout=grace)
                await self._exited.wait()
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(grace, shield=True):
                await self._exited.wait()
        with anyio.move_on_after(grace, shield=True):  # helpers follow the main process out
            while self.live_pids():  # noqa: ASYNC110 - /proc has no events
                await anyio.sleep(0.02)
        if self.live_pids():
            self.kill()
            with anyio.move_on_after(grace, shield=True):  # after SIGKILL: milliseconds
                await self._exited.wait()
                while self.live_pids():  # noqa: ASYNC110 - /proc has no events
                    await anyio.sleep(0.02)
        if self.live_pids():
            log.warning("browser pid %d left processes behind: %s", self.pid, self.live_pids())
        await self.devtools.aclose()
        self._stopped = True

    def kill(self) -> None:
        """SIGKILL the whole process group (launch failures, the last step of ``stop``)."""
        self._closing = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _launch_error(binary: str, what: str, tail: Iterable[str]) -> BrowserLaunchError:
    lines = "\n".join(tail)
    hint = f"\n{SANDBOX_HINT}" if any(mark in lines for mark in _SANDBOX_FAILURES) else ""
    return BrowserLaunchError(f"{binary} {what}:\n{lines}{hint}")


def _remove_dirs(*dirs: Path) -> None:
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def _new_dir(base: Path) -> Path:
    path = base / f"{PROFILE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    return path


def _short_tmp_dir(profile: Path) -> Path:
    """A TMPDIR short enough for Chromium's singleton socket, inside the profile when possible.

    Chromium binds ``$TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket`` and aborts
    ("Socket path too long") past the 107-byte Unix socket limit, so a deep base dir
    gets a sibling under /tmp instead (named like a profile, so the sweep finds it).
    """
    inside = profile / "t"
    if len(os.fsencode(inside)) + _SINGLETON_SUFFIX_LEN <= _UNIX_PATH_MAX:
        inside.mkdir()
        return inside
    for base in (Path(tempfile.gettempdir()), Path("/tmp")):
        if base.is_dir() and len(os.fsencode(base)) + 34 + _SINGLETON_SUFFIX_LEN <= _UNIX_PATH_MAX:
            return _new_dir(base)
    raise BrowserLaunchError(f"no temp dir short enough for Chromium's socket (profile {profile})")


@contextlib.asynccontextmanager
async def launch_browser(
    *,
    executable: str | None = None,
    base_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 20.0,
    grace: float = 3.0,
) -> AsyncIterator[BrowserProcess]:
    """``async with launch_browser() as browser:`` a headless Chromium for the block.

    Enters once the browser answers on its DevTools pipe. However the block ends (normally,
    by an error, by cancellation, or the browser failing to start), every process of the
    browser is stopped (``BrowserProcess.stop``) and its profile removed before it exits.
    """
    binary = executable or find_chromium()
    base = base_dir or default_base_dir()
    base.mkdir(parents=True, exist_ok=True)
    profile = _new_dir(base)
    try:
        tmp_dir = _short_tmp_dir(profile)
    except BaseException:
        _remove_dirs(profile)
        raise
    args = [*chromium_flags(), f"--user-data-dir={profile}", *extra_args, "about:blank"]
    env = dict(os.environ)
    # Chromium leaves org.chromium.Chromium.* dirs in $TMPDIR on every kill: keep them with the profile.
    env["TMPDIR"] = str(tmp_dir)

    # Chromium reads commands from fd 3 and writes to fd 4: the trampoline moves our stdin and
    # stdout pipes there, so the process's own streams are the DevTools pipe.
    trampoline = ["/bin/sh", "-c", _PIPE_TRAMPOLINE, "sh", binary, *args]
    setpriv = _setpriv_with_pdeathsig()
    if setpriv:
        command = [setpriv, "--pdeathsig", "KILL", "--", *trampoline]
    else:
        command = [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), *trampoline]
    try:
        process = await anyio.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        _remove_dirs(profile, tmp_dir)
        raise
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        async with owned_tasks() as tasks:
            devtools = DevToolsPipe(process.stdout, process.stdin, tasks, label=f"pid {process.pid}")
            browser = BrowserProcess(process, devtools, profile, tmp_dir)
            tasks.start_soon(browser._watch_exit, name=f"chromium-wait {process.pid}")
            tasks.start_soon(browser._drain_stderr, process.stderr, name=f"chromium-stderr {process.pid}")
            devtools.start()
            try:
                await _handshake(browser, binary, timeout)
                log.debug("launched browser pid %d (%s)", browser.pid, profile.name)
                yield browser
            finally:
                await browser.stop(grace=grace)
                tasks.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(grace):
                await process.aclose()  # our ends of its pipes; reaps it (killed if it lingers)
            await anyio.to_thread.run_sync(_remove_dirs, profile, tmp_dir)


async def _handshake(browser: BrowserProcess, binary: str, timeout: float) -> None:
    """Wait for the browser's first DevTools answer; a launch error with its last words if none comes."""
    try:
        await browser.devtools.call("Browser.getVersion", timeout=timeout)
    except CDPException as exc:
        browser.kill()
        with anyio.move_on_after(2, shield=True):
            await browser.wait()
        with anyio.move_on_after(1, shield=True):
            await browser._stderr_done.wait()  # the last lines say why it failed
        tail = browser._stderr_tail
        if isinstance(exc, CDPTimeout):
            what = f"did not answer on its DevTools pipe within {timeout:g} s"
        else:
            what = f"exited with code {browser.returncode} before offering DevTools"
        raise _launch_error(binary, what, tail) from None


__all__ = [
    "BASE_FLAGS",
    "INSTALL_HINT",
    "NO_SANDBOX_FLAG",
    "PROFILE_PREFIX",
    "SANDBOX_HINT",
    "BrowserLaunchError",
    "BrowserNotFound",
    "BrowserProcess",
    "chromium_flags",
    "default_base_dir",
    "find_chromium",
    "group_pids",
    "launch_browser",
    "pids_using_profile",
    "sweep_stale_profiles",
]
