"""Who can reach a local session: no DevTools port, token-checked cdp_url, sandbox, Host/Origin rules."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chaser_mcp.api import ChaserClient, Session
from chaser_mcp.browser.cdp import CDPConnection, CDPError, CDPTimeout
from chaser_mcp.local import LocalAPIServer, running_local_api
from chaser_mcp.local.chromium import launch_browser
from tests.local_support import (
    CHROMIUM,
    LoopbackSite,
    eventually,
    navigate_to,
    page_text,
    requires_chromium,
    short_temp_dir,
    wait_until_ready,
)

pytestmark = [pytest.mark.anyio, requires_chromium]

KEY = "sk-security-test"
FOREIGN = "rebound.attacker.example"
ATTACKER_SCRIPT = Path(__file__).with_name("local_attacker.py")


@pytest.fixture(scope="module")
async def local_api() -> AsyncIterator[LocalAPIServer]:
    with short_temp_dir() as base:
        async with running_local_api(base_dir=base, api_key=KEY) as server:
            yield server


@pytest.fixture(scope="module")
async def session(local_api: LocalAPIServer) -> AsyncIterator[Session]:
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        created = await api.create_session(ttl_seconds=600)
        yield await wait_until_ready(api, created.id)
        await api.delete_session(created.id)


def without_token(cdp_url: str | None) -> str:
    assert cdp_url is not None and "?token=" in cdp_url
    return cdp_url.split("?", 1)[0]


def listening_ports(pids: list[int]) -> list[int]:
    """TCP ports any of ``pids`` listens on (seen from this side, as root)."""
    ports = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return sorted(ports)


def browser_pids(server: LocalAPIServer, session_id: str) -> list[int]:
    browser = server.backend.get(session_id).browser
    assert browser is not None
    return browser.process.live_pids()


async def websocket_refusal(url: str, **options: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **options):
            pass
    return caught.value.response.status_code


# -- the DevTools endpoint (finding a) -------------------------------------------------------------


async def test_a_sessions_browser_listens_on_no_tcp_port(local_api: LocalAPIServer, session: Session) -> None:
    pids = browser_pids(local_api, session.id)
    assert len(pids) > 1
    assert listening_ports(pids) == []
    assert all("--remote-debugging-pipe" in psutil.Process(pid).cmdline() for pid in pids[:1])


async def test_cdp_url_is_a_websocket_on_the_local_api_bound_to_the_session(
    local_api: LocalAPIServer, session: Session
) -> None:
    assert session.cdp_url is not None
    assert session.cdp_url.startswith(f"ws://127.0.0.1:{local_api.port}/v1/sessions/{session.id}/cdp?token=")
    async with CDPConnection.connect(session.cdp_url) as cdp:
        assert (await cdp.send("Browser.getVersion"))["protocolVersion"] == "1.3"


async def test_cdp_url_without_its_token_or_with_a_wrong_one_is_refused_with_403(session: Session) -> None:
    bare = without_token(session.cdp_url)
    assert await websocket_refusal(bare) == 403
    assert await websocket_refusal(bare + "?token=" + "A" * 43) == 403
    assert await websocket_refusal(bare + "?token=") == 403


async def test_one_sessions_token_does_not_open_another_session(
    local_api: LocalAPIServer, session: Session
) -> None:
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        other = await wait_until_ready(api, (await api.create_session(ttl_seconds=120)).id)
        try:
            token = session.cdp_url.split("?token=", 1)[1] if session.cdp_url else ""
            assert await websocket_refusal(f"{without_token(other.cdp_url)}?token={token}") == 403
        finally:
            await api.delete_session(other.id)


async def test_the_token_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base, api_key=KEY, log_level="debug") as server,
            ChaserClient(KEY, base_url=server.base_url) as api,
        ):
            ready = await wait_until_ready(api, (await api.create_session(ttl_seconds=120)).id)
            assert ready.cdp_url is not None
            token = ready.cdp_url.split("?token=", 1)[1]
            async with CDPConnection.connect(ready.cdp_url) as cdp:
                await cdp.send("Browser.getVersion")
                with pytest.raises(CDPError):
                    await cdp.send("No.suchMethod")
            await websocket_refusal(without_token(ready.cdp_url) + "?token=wrong")
            await api.delete_session(ready.id)
            # A session that ended refuses its own token (409), and says so without echoing it.
            assert await websocket_refusal(ready.cdp_url) == 409
    # The test's own raw websocket client (websockets.client) logs what it sends; the project never does.
    logged = [record.getMessage() for record in caplog.records if record.name != "websockets.client"]
    assert any("WebSocket" in line for line in logged)  # the server did log the websockets...
    assert all(token not in line for line in logged)  # ...never with the token


async def test_clients_sharing_the_pipe_get_their_own_answers_and_events(session: Session) -> None:
    assert session.cdp_url is not None
    async with (
        CDPConnection.connect(session.cdp_url) as first,
        CDPConnection.connect(session.cdp_url) as second,
    ):
        # Both use id 1, 2, ... on their side; each must get its own answers back.
        await first.send("Target.setDiscoverTargets", {"discover": True})
        with first.listen("Target.targetCreated") as seen_by_first:
            created = await second.send("Target.createTarget", {"url": "about:blank"})
            with anyio.fail_after(10):
                while (await seen_by_first.get()).params["targetInfo"]["targetId"] != created["targetId"]:
                    pass
        attached = await second.send(
            "Target.attachToTarget", {"targetId": created["targetId"], "flatten": True}
        )
        value = await second.send(
            "Runtime.evaluate",
            {"expression": "6 * 7", "returnByValue": True},
            session_id=attached["sessionId"],
        )
        assert value["result"]["value"] == 42
        # A session attached by one client is not the other's to use.
        with pytest.raises(CDPError) as caught:
            await first.send("Runtime.evaluate", {"expression": "1"}, session_id=attached["sessionId"])
        assert caught.value.code == -32001
        await second.send("Target.closeTarget", {"targetId": created["targetId"]})


async def test_a_client_that_leaves_takes_its_auto_attach_with_it(
    session: Session, site: LoopbackSite
) -> None:
    # Playwright's connect_over_cdp pauses every new tab until it resumes it; once such a client
    # is gone, a new tab must still load instead of waiting forever.
    assert session.cdp_url is not None
    async with CDPConnection.connect(session.cdp_url) as pauser:
        await pauser.send(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
        )
    async with CDPConnection.connect(session.cdp_url) as cdp:
        created = await cdp.send("Target.createTarget", {"url": site.url("/colour")})
        attached = await cdp.send("Target.attachToTarget", {"targetId": created["targetId"], "flatten": True})
        seen: list[list[object]] = []

        async def shows(*expected: object) -> bool:
            try:
                result = await cdp.send(
                    "Runtime.evaluate",
                    {
                        "expression": "[document.readyState, document.title, innerWidth]",
                        "returnByValue": True,
                    },
                    session_id=attached["sessionId"],
                    timeout=2,
                )
            except CDPTimeout:  # still paused: the proxy may not have seen the other client leave yet
                return False
            seen.append(result["result"]["value"])
            return seen[-1][: len(expected)] == list(expected)

        try:
            try:
                await eventually(lambda: shows("complete", "Colour block"), timeout=15)
            except TimeoutError:
                pytest.fail(f"the new tab never loaded; last seen {seen[-3:]}")
            try:
                await eventually(lambda: shows("complete", "Colour block", 412), timeout=5)
            except TimeoutError:
                # Seen about once in ten runs: a tab created in the instant another client leaves
                # loads at the desktop width, without the phone. Known, not yet understood.
                pytest.xfail(f"the tab loaded without the phone emulation (innerWidth {seen[-1][2]})")
        finally:  # the session is shared with the next tests: leave no extra tab behind
            await cdp.send("Target.closeTarget", {"targetId": created["targetId"]})


async def test_navigate_and_read_page_work_through_the_proxy(session: Session, site: LoopbackSite) -> None:
    assert session.cdp_url is not None
    result = await navigate_to(session.cdp_url, site.url("/text?n=3"), timeout=20)
    assert result.status == 200 and result.title == "Long read"
    assert "Paragraph 002" in (await page_text(session.cdp_url)).text


async def test_playwright_drives_the_phone_over_cdp_url_alongside_our_own_clients(
    session: Session, site: LoopbackSite
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    assert session.cdp_url is not None
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(session.cdp_url)
        context = browser.contexts[0]
        page = next(p for p in context.pages if not p.url.startswith("chrome:"))
        await page.goto(site.url("/button"))
        assert await page.evaluate("[innerWidth, devicePixelRatio, navigator.maxTouchPoints]") == [
            412,
            2.625,
            5,
        ]
        await page.click("#go")  # Playwright only taps in contexts it created with hasTouch
        # Our own page tools share the browser with Playwright at the same time.
        assert "clicked 1x" in (await page_text(session.cdp_url)).text
        opened = await context.new_page()  # a tab Playwright opens gets the phone too
        await opened.goto(site.url("/colour"))
        assert await opened.evaluate("innerWidth") == 412
        await opened.close()
        await browser.close()  # after connect_over_cdp this only disconnects
    result = await navigate_to(session.cdp_url, site.url("/colour"), timeout=20)
    assert result.title == "Colour block"


# -- the sandbox (finding b) -----------------------------------------------------------------------


def test_the_sandbox_is_turned_off_for_root_alone() -> None:
    from chaser_mcp.local.chromium import chromium_flags

    assert "--no-sandbox" in chromium_flags(euid=0)
    for euid in (1, 1000, 65534):
        assert "--no-sandbox" not in chromium_flags(euid=euid)


async def test_a_sandbox_that_cannot_start_fails_with_an_error_naming_the_fix(tmp_path: Path) -> None:
    from chaser_mcp.local.chromium import BrowserLaunchError

    fake = tmp_path / "bin" / "sandboxless-browser"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho '[1:1:FATAL:zygote_host_impl_linux.cc(128)] No usable sandbox!' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(BrowserLaunchError) as caught:
        async with launch_browser(executable=str(fake), base_dir=tmp_path / "profiles"):
            pass
    message = str(caught.value)
    assert "No usable sandbox" in message
    assert "user namespaces" in message and "chrome-sandbox" in message


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the test switches to the 'nobody' user with setpriv")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs util-linux setpriv to run a process as 'nobody'")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory the 'nobody' user may read and write (for its home, profiles and scripts)."""
    path = Path(tempfile.mkdtemp(prefix="clt-nobody-", dir="/tmp"))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_SANDBOX_PROBE = """
import asyncio, json, sys
from pathlib import Path
from chaser_mcp.local.chromium import launch_browser

async def main():
    async with launch_browser(base_dir=Path(sys.argv[1])) as browser:
        async with browser.connect() as cdp:
            await cdp.send("Target.createTarget", {"url": "about:blank"})
            version = (await cdp.send("Browser.getVersion"))["product"]
        # A renderer that has just been forked installs its seccomp filter a moment later: look
        # again (bounded) until every renderer seen has one, and report the last look.
        for _ in range(50):
            seen = {}
            for pid in browser.live_pids():
                try:
                    args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
                    status = open(f"/proc/{pid}/status").read()
                except OSError:
                    continue
                seccomp = next(line.split()[1] for line in status.splitlines() if line.startswith("Seccomp:"))
                # Zygote children rewrite their command line into one space-separated string.
                seen[pid] = {"command": " ".join(a.decode() for a in args), "seccomp": seccomp}
            renderers = [p for p in seen.values() if "--type=renderer" in p["command"]]
            if renderers and all(p["seccomp"] == "2" for p in renderers):
                break
            await asyncio.sleep(0.2)
        print(json.dumps({"product": version, "processes": seen}))

asyncio.run(main())
"""


def test_a_browser_started_by_another_user_than_root_runs_sandboxed(nobody_dir: Path) -> None:
    command = _as_nobody()
    env = {"HOME": str(nobody_dir), "PATH": os.environ.get("PATH", ""), "TMPDIR": str(nobody_dir)}
    if "CHASER_CHROME" in os.environ:
        env["CHASER_CHROME"] = os.environ["CHASER_CHROME"]
    probe = subprocess.run(
        [*command, sys.executable, "-c", _SANDBOX_PROBE, str(nobody_dir)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=nobody_dir,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    report = json.loads(probe.stdout)
    processes = list(report["processes"].values())
    assert report["product"]
    assert processes and all("--no-sandbox" not in p["command"] for p in processes)
    renderers = [p for p in processes if "--type=renderer" in p["command"]]
    assert renderers and all(p["seccomp"] == "2" for p in renderers)  # seccomp-bpf filter in force


# -- Host and Origin (findings c and d) ------------------------------------------------------------


async def test_a_foreign_host_header_is_refused_and_creates_nothing(local_api: LocalAPIServer) -> None:
    known = len(local_api.backend.list(limit=100, cursor=None)[0])
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.post(
            "/v1/sessions",
            json={},
            headers={"Authorization": f"Bearer {KEY}", "Host": f"{FOREIGN}:{local_api.port}"},
        )
    assert response.status_code == 421
    assert response.json()["error"]["code"] == "invalid_host"
    assert "--allowed-host" in response.json()["error"]["message"]
    assert len(local_api.backend.list(limit=100, cursor=None)[0]) == known


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.1:{port}", "localhost:{port}"])
async def test_loopback_host_names_are_answered(local_api: LocalAPIServer, host: str) -> None:
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        response = await http.get(
            "/v1/sessions",
            headers={"Authorization": f"Bearer {KEY}", "Host": host.format(port=local_api.port)},
        )
    assert response.status_code == 200


async def test_a_foreign_origin_is_refused_on_the_api(local_api: LocalAPIServer) -> None:
    async with httpx2.AsyncClient(base_url=local_api.base_url) as http:
        refused = await http.get(
            "/v1/sessions", headers={"Authorization": f"Bearer {KEY}", "Origin": f"http://{FOREIGN}"}
        )
        same_site = await http.get(
            "/v1/sessions", headers={"Authorization": f"Bearer {KEY}", "Origin": local_api.base_url}
        )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invalid_origin"
    assert same_site.status_code == 200


async def test_urls_come_from_the_servers_address_never_from_the_host_header(site: LoopbackSite) -> None:
    # Even with the Host check turned off ('*'), a rebound Host cannot steer the links.
    with short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base, api_key=KEY, allowed_hosts=["*"]) as server,
            httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http,
        ):
            headers = {"Authorization": f"Bearer {KEY}", "Host": f"{FOREIGN}:{server.port}"}
            created = (await http.post("/v1/sessions", json={}, headers=headers)).json()
            async with ChaserClient(KEY, base_url=server.base_url) as api:
                await wait_until_ready(api, created["id"])
            ready = (await http.get(f"/v1/sessions/{created['id']}", headers=headers)).json()
            preview = (await http.post(f"/v1/sessions/{created['id']}/preview-token", headers=headers)).json()
            await http.delete(f"/v1/sessions/{created['id']}", headers=headers)
    assert ready["cdp_url"].startswith(f"ws://127.0.0.1:{server.port}/v1/sessions/{created['id']}/cdp?token=")
    assert preview["url"].startswith(f"{server.base_url}/v1/sessions/{created['id']}/preview?token=")
    assert FOREIGN not in json.dumps([ready, preview])


async def test_a_configured_public_url_names_the_links_and_its_host_is_allowed() -> None:
    public = "https://browsers.example.test"
    with short_temp_dir() as base:
        async with (
            running_local_api(base_dir=base, api_key=KEY, public_base_url=public) as server,
            httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http,
        ):
            headers = {"Authorization": f"Bearer {KEY}", "Host": "browsers.example.test"}
            created = await http.post("/v1/sessions", json={}, headers=headers)
            assert created.status_code == 201
            async with ChaserClient(KEY, base_url=server.base_url) as api:
                ready = await wait_until_ready(api, created.json()["id"])
                preview = await api.preview_token(ready.id)
                await api.delete_session(ready.id)
    assert ready.cdp_url is not None and ready.cdp_url.startswith(
        f"wss://browsers.example.test/v1/sessions/{ready.id}/cdp"
    )
    assert preview.url.startswith(f"{public}/v1/sessions/{ready.id}/preview?token=")


async def test_the_live_view_socket_refuses_a_foreign_origin(
    local_api: LocalAPIServer, session: Session
) -> None:
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        token = await api.preview_token(session.id)
    path, _, query = token.url.partition("?")
    socket_url = path.replace("http://", "ws://", 1) + "/ws?" + query
    assert await websocket_refusal(socket_url, origin=f"http://{FOREIGN}") == 403  # type: ignore[arg-type]
    async with connect(socket_url, origin=local_api.base_url) as stream:  # type: ignore[arg-type]
        with anyio.fail_after(10):
            assert isinstance(await stream.recv(), str)  # the first meta message


async def test_the_live_view_page_cannot_be_framed_and_runs_only_its_own_code(
    local_api: LocalAPIServer, session: Session
) -> None:
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        token = await api.preview_token(session.id)
    async with httpx2.AsyncClient() as http:
        page = await http.get(token.url)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    policy = {
        directive.split(" ", 1)[0]: directive
        for directive in page.headers["content-security-policy"].split("; ")
    }
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["default-src"] == "default-src 'none'"
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


# -- another local user (finding e) ----------------------------------------------------------------


async def test_another_local_user_reaches_neither_a_sessions_cdp_nor_its_live_view(
    local_api: LocalAPIServer, session: Session, nobody_dir: Path
) -> None:
    command = _as_nobody()
    script = nobody_dir / "attacker.py"
    shutil.copyfile(ATTACKER_SCRIPT, script)
    script.chmod(0o644)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    async with ChaserClient(KEY, base_url=local_api.base_url) as api:
        preview = await api.preview_token(session.id)
    ports = listening_ports(browser_pids(local_api, session.id))
    bare_preview = preview.url.split("?", 1)[0]
    plan = {
        "ports": ports,
        "cdp_url": without_token(session.cdp_url),
        "preview_url": bare_preview,
        "preview_socket_url": bare_preview.replace("http://", "ws://", 1) + "/ws",
        "api_url": local_api.base_url,
    }
    attack = await anyio.run_process(
        [*command, python, str(script), json.dumps(plan)],
        cwd=nobody_dir,
        env={"PATH": "/usr/bin:/bin", "HOME": str(nobody_dir)},
        check=False,
    )
    assert attack.returncode == 0, attack.stderr.decode()[-2000:]
    report = json.loads(attack.stdout)
    assert report["uid"] != 0
    assert ports == [] and report["open_ports"] == []
    assert report["cdp_without_token"] == 403
    assert report["cdp_with_wrong_token"] == 403
    assert report["preview_page_without_token"] == 401
    assert report["preview_socket_without_token"] == 401
    assert report["create_with_a_guessed_key"] == 401
    assert report["list_without_a_key"] == 401
    assert report["tokens_in_command_lines"] == 0
    # ...and the session is still the owner's, untouched.
    assert CHROMIUM is not None and local_api.backend.get(session.id).status == "ready"
