"""Navigate, screenshots and cold start through ``chaser-mcp --local`` and Microsoft's Playwright MCP,
side by side, and what chaser's create_session adds to the backend's own create -> ready.

Both servers run real headless Chromium (Debian's, /usr/lib/chromium/chromium) on this machine and are
driven by the same Python MCP SDK client (``mcp.Client`` over stdio, ``mode="legacy"``: Playwright MCP
speaks the handshake era) against the same page, bench_local's card page, served on 127.0.0.1. Both
emulate a Pixel 7 at 412x915 CSS px, DPR 2.625 (chaser-mcp's local sessions always do; Playwright MCP
gets ``--device "Pixel 7" --viewport-size 412x915``, since its Pixel 7 descriptor is 412x839).

Measured, interleaved round by round (who goes first alternates) so machine noise hits both sides:

1. navigate: chaser ``navigate`` vs ``browser_navigate`` (which also saves a page snapshot, linked).
2. screenshots, four like-for-like pairs, each with its own ratios (``SCREENSHOTS``):
   (a) each server's default, no arguments on either side (chaser: ``image_format`` auto, ``scale``
   css, a PNG at CSS pixels up to 256 KiB, else the browser's JPEG; Playwright MCP 0.0.83: ``type``
   png, ``scale`` css), (b) PNG at device pixels, (c) JPEG at device pixels, (d) JPEG at CSS pixels.
   For each: the time (median, p90), the image's format and pixel size, its bytes, the bytes of the
   whole JSON result, and the image tokens a host running Claude bills for it
   (``bench.common.billed_image_tokens``: downscaled to a 1568 px long edge and 1.15 megapixels, then
   width * height / 750).
3. cold start: spawn -> answered tools/list, then -> first page loaded (chaser: create_session +
   navigate; Playwright MCP launches its browser on the first navigate), and the exact size in bytes of
   each server's tools/list answer on the wire.
4. create -> ready (chaser alone; Playwright MCP has no sessions): ``create_session`` through MCP
   against the backend's own ``created_at`` -> ``ready_at`` of the same session; the difference is
   what the server's waiting (and the MCP and HTTP round trips) add. Cold: the first create of each
   cold start's fresh server; warm: ``--create-cycles`` create/delete cycles in the server of step 1-2,
   each after ``--create-pause`` seconds of rest (whatever the local backend does to be ready sooner,
   such as a browser it keeps launched, is measured as it is, not configured here).

The result's ``targets`` hold each goal with its value in the run, its limit and whether it was met:
the default screenshot's time and billed tokens at most Playwright MCP's (ratio <= 1.0), spawn -> first
page at most 1.2x Playwright MCP's, and create -> ready adding at most 50 ms (cold and warm).

Playwright MCP is not a dependency of this project. ``--install-reference`` (which ``bash scripts/test``
runs) installs the pinned version with npm into a cache directory outside the repo, once; no browser is
downloaded, it is pointed at Debian's Chromium::

    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix ~/.cache/chaser-mcp/playwright-mcp-0.0.83 \
        @playwright/mcp@0.0.83

Run (about 3-4 minutes on 2 cores; ``--quick``: one round, one cold start, one create cycle, under a
minute)::

    python -m bench.bench_vs_playwright_mcp [--rounds 30] [--cold-starts 7] [--create-cycles 10] \
        [--create-pause 2] [--chaser-options "..."] [--playwright-mcp-dir DIR]

or, to also put the result into bench/report.json and the README's tables,
``python -m bench --only vs_playwright_mcp``.

Without Playwright MCP in --playwright-mcp-dir (default: the cache directory above, or
``$CHASER_BENCH_PLAYWRIGHT_MCP_DIR``), the script says so with the install command, measures the chaser
side alone, records why in the result, and exits 0. The result is written as JSON to bench/results/
(not committed) before it is printed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from bench.bench_local import PAGE
from bench.common import (
    bench_arguments,
    billed_image_size,
    billed_image_tokens,
    command_output,
    describe_machine,
    new_result,
    percentile,
    serve_html,
    shown,
    write_result,
)

CHROMIUM = "/usr/lib/chromium/chromium"
PLAYWRIGHT_MCP_VERSION = "0.0.83"  # the version the README's ratios were measured against
DEFAULT_PLAYWRIGHT_MCP_DIR = Path(
    os.environ.get("CHASER_BENCH_PLAYWRIGHT_MCP_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "chaser-mcp"
    / f"playwright-mcp-{PLAYWRIGHT_MCP_VERSION}"
)
INSTALL_COMMAND = (
    "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix {dir} "
    f"@playwright/mcp@{PLAYWRIGHT_MCP_VERSION}"
)
PLAYWRIGHT_DEVICE = "Pixel 7"
VIEWPORT = "412x915"  # CSS px; chaser-mcp's local Pixel 7 (DPR 2.625 on both sides)
HANDSHAKE_VERSION = "2025-11-25"
CALL_TIMEOUT = 60.0
MAX_LINE = 32 * 1024 * 1024

CHASER = "chaser"
PLAYWRIGHT = "playwright"

# Each screenshot comparison: (key in the result, label, chaser arguments, Playwright MCP arguments, why).
# Every pair asks both servers for the same thing, except "default", which asks each for nothing.
SCREENSHOTS: tuple[tuple[str, str, dict[str, Any], dict[str, Any], str], ...] = (
    (
        "default",
        "each server's default",
        {},
        {},  # 0.0.83: type png (its schema: "otherwise png"), scale css
        "no arguments: what a model gets when it asks for nothing",
    ),
    (
        "png_device",
        "PNG, device pixels",
        {"image_format": "png", "scale": "device"},
        {"type": "png", "scale": "device"},
        "the phone's 1082x2402 pixels on both",
    ),
    (
        "jpeg_device",
        "JPEG, device pixels",
        {"image_format": "jpeg", "scale": "device"},
        {"type": "jpeg", "scale": "device"},
        "1082x2402, JPEG on the wire (chaser q80, Playwright MCP q90)",
    ),
    (
        "jpeg_css",
        "JPEG, CSS pixels",
        {"image_format": "jpeg", "scale": "css"},
        {"type": "jpeg", "scale": "css"},
        "412x915, JPEG on the wire (chaser q80, Playwright MCP q90)",
    ),
)


def chaser_shot(key: str) -> str:
    return f"take_screenshot {key}"


def playwright_shot(key: str) -> str:
    return f"browser_take_screenshot {key}"


# The comparisons reported as time ratios: (label, chaser measurement, Playwright MCP measurement, why).
PAIRS: tuple[tuple[str, str, str, str], ...] = (
    ("navigate", "navigate", "browser_navigate", "same URL, page already warm"),
    *(
        (f"screenshot, {label}", chaser_shot(key), playwright_shot(key), why)
        for key, label, _, _, why in SCREENSHOTS
    ),
)

# What the run is held to: (name, the measurement, its limit, unit). A ratio is chaser / Playwright MCP
# (below 1: chaser is faster or cheaper); "ms added" is create_session's time through MCP minus the
# backend's own create -> ready time of that session.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("default_screenshot_time", "default screenshot, median time", 1.0, "ratio"),
    ("default_screenshot_tokens", "default screenshot, image tokens billed", 1.0, "ratio"),
    ("spawn_to_first_page", "spawn -> first page loaded, median", 1.2, "ratio"),
    ("create_to_ready_added_cold", "create_session over the backend's ready time, first create", 50.0, "ms"),
    ("create_to_ready_added_warm", "create_session over the backend's ready time, later creates", 50.0, "ms"),
)
CREATE_PAUSE = 2.0  # seconds between warm create cycles, untimed: a backend may refill what it keeps warm

# Differences between the two that the numbers alone do not show.
NOTES = [
    "chaser navigate waits for the load event and answers with url/title/status; Playwright MCP's "
    "browser_navigate waits for domcontentloaded plus its settle time and answers with markdown "
    "(code it ran, page URL/title, a link to the page snapshot)",
    "both capture over CDP in the format asked for (no re-encoding on either server); chaser's default "
    "(image_format auto, scale css) is a PNG at CSS pixels when it is at most 256 KiB, else the "
    "browser's JPEG; Playwright MCP's default is a PNG at CSS pixels; JPEG quality: chaser 80, "
    "Playwright MCP 90",
    "Playwright MCP also writes every screenshot to a file in --output-dir (included in its time)",
    "image tokens: what a host running Claude bills for the image (long edge at most 1568 px and about "
    "1.15 megapixels after its own downscale, then width * height / 750): a device-pixel capture costs "
    "the bytes and the time of 1082x2402 but is billed as 706x1568",
    "create -> ready is chaser's alone (Playwright MCP has no sessions): create_session's time through "
    "MCP against the backend's own created_at -> ready_at of that session; the difference is what "
    "chaser's waiting (and the MCP and HTTP round trips) add",
]

# -- statistics -------------------------------------------------------------------------------------


def describe(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": percentile(samples, 0.9) * 1000,
        "min_ms": min(samples) * 1000,
        "max_ms": max(samples) * 1000,
    }


# -- the machine ------------------------------------------------------------------------------------


def package_version(package_json: Path) -> str | None:
    try:
        return str(json.loads(package_json.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def machine(playwright_dir: Path | None) -> dict[str, Any]:
    info = describe_machine()
    info["chromium"] = command_output([CHROMIUM, "--version"])
    if playwright_dir is not None:
        modules = playwright_dir / "node_modules"
        info["node"] = command_output([shutil.which("node") or "node", "--version"])
        info["playwright_mcp"] = package_version(modules / "@playwright" / "mcp" / "package.json")
        info["playwright_core"] = package_version(modules / "playwright-core" / "package.json")
    return info


# -- the two servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def params(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=self.command[0], args=self.command[1:], env=self.env, cwd=self.cwd
        )


def chaser_spec(workdir: Path, extra: Sequence[str] = ()) -> ServerSpec:
    """``chaser-mcp --local``; ``extra``: more of its options, to measure a variant of the server."""
    return ServerSpec(
        CHASER,
        [
            *(sys.executable, "-m", "chaser_mcp", "--local", "--journal", "off", "--log-level", "WARNING"),
            *extra,
        ],
        cwd=workdir,
    )


def playwright_cli(playwright_dir: Path) -> Path:
    return playwright_dir / "node_modules" / "@playwright" / "mcp" / "cli.js"


def playwright_spec(playwright_dir: Path, workdir: Path) -> ServerSpec:
    node = shutil.which("node") or "node"
    return ServerSpec(
        PLAYWRIGHT,
        [
            node,
            str(playwright_cli(playwright_dir)),
            "--headless",
            "--isolated",  # profile in memory, like chaser's throwaway profiles
            "--no-sandbox",  # as root Chromium refuses to start without it (chaser passes it too)
            *("--executable-path", CHROMIUM),
            *("--device", PLAYWRIGHT_DEVICE),
            *("--viewport-size", VIEWPORT),
            # Screenshots are also written as files; keep them in the throwaway directory.
            *("--output-dir", str(workdir / "output")),
        ],
        cwd=workdir,
    )


@dataclass(frozen=True)
class Created:
    """One ``create_session`` through MCP: how long the call took, and how long the backend itself took
    from receiving the create to the session being ready (its ``created_at`` -> ``ready_at``)."""

    tool_s: float
    backend_s: float


def backend_ready_seconds(info: dict[str, Any]) -> float:
    """``ready_at - created_at`` of a session as the API reports it (the local API: microseconds)."""
    created, ready = info.get("created_at"), info.get("ready_at")
    if not isinstance(created, str) or not isinstance(ready, str):
        raise RuntimeError(f"the session has no created_at / ready_at: {info}")
    return (datetime.fromisoformat(ready) - datetime.fromisoformat(created)).total_seconds()


class Connected:
    """One running server behind an SDK client, with what a navigate and a screenshot need."""

    def __init__(self, spec: ServerSpec, client: Client, errlog: Path) -> None:
        self.spec = spec
        self.client = client
        self.errlog = errlog
        self.session_id: str | None = None

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
            raise RuntimeError(f"{self.spec.name}: {tool} failed: {text[:500]}")
        return result

    async def create_session(self) -> Created | None:
        """chaser: create a session and wait until it is ready (the tool's default), timed; Playwright MCP
        has no sessions (its browser starts on the first navigate): None."""
        if self.spec.name != CHASER:
            return None
        started = time.perf_counter()
        result = await self.call("create_session", {"ttl_seconds": 3600})
        elapsed = time.perf_counter() - started
        info = result.structured_content
        assert isinstance(info, dict)
        if info.get("status") != "ready":
            raise RuntimeError(f"chaser: create_session answered a session that is not ready: {info}")
        self.session_id = str(info["id"])
        return Created(elapsed, backend_ready_seconds(info))

    async def delete_session(self) -> None:
        if self.session_id is not None:
            await self.call("delete_session", {"session_id": self.session_id})
            self.session_id = None

    async def navigate(self, url: str) -> CallToolResult:
        if self.spec.name == CHASER:
            return await self.call("navigate", {"session_id": self.session_id, "url": url})
        return await self.call("browser_navigate", {"url": url})


@asynccontextmanager
async def connected(spec: ServerSpec, logdir: Path) -> AsyncIterator[Connected]:
    """Spawn the server and complete the handshake; its stderr goes to a log file, not the terminal."""
    errlog = logdir / f"{spec.name}-{time.monotonic_ns()}.log"
    with errlog.open("w") as err:
        try:
            async with Client(stdio_client(spec.params(), errlog=err), mode="legacy") as client:
                yield Connected(spec, client, errlog)
        except BaseException:
            print_log_tail(errlog, sys.stderr)
            raise


def print_log_tail(path: Path, out: TextIO, lines: int = 30) -> None:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    if tail:
        print(f"--- last lines of {path.name} ---", file=out)
        print("\n".join(tail), file=out)


# -- what a result holds ----------------------------------------------------------------------------


def image_facts(content: ImageContent) -> dict[str, Any]:
    try:
        raw = base64.b64decode(content.data, validate=True)
    except binascii.Error:
        return {"mime_type": content.mime_type, "base64_chars": len(content.data), "decodes": False}
    facts: dict[str, Any] = {
        "mime_type": content.mime_type,
        "base64_chars": len(content.data),
        "bytes": len(raw),
    }
    try:
        with Image.open(io.BytesIO(raw)) as image:
            facts.update(format=image.format, width=image.width, height=image.height)
            billed = billed_image_size(image.width, image.height)
            facts.update(
                billed_size=list(billed), billed_tokens=billed_image_tokens(image.width, image.height)
            )
    except OSError as exc:
        facts["decodes"] = f"no: {exc}"
    return facts


def result_facts(result: CallToolResult) -> dict[str, Any]:
    """What came back: each block's kind and size, and the whole result's JSON size."""
    blocks: list[dict[str, Any]] = []
    for content in result.content:
        if isinstance(content, ImageContent):
            blocks.append({"type": "image", **image_facts(content)})
        elif isinstance(content, TextContent):
            blocks.append({"type": "text", "chars": len(content.text), "start": content.text[:400]})
        else:
            blocks.append({"type": content.type})
    wire = result.model_dump_json(by_alias=True, exclude_none=True)
    return {
        "blocks": blocks,
        "structured": result.structured_content is not None,
        "result_json_bytes": len(wire.encode()),
    }


def short_facts(facts: dict[str, Any]) -> str:
    parts: list[str] = []
    for block in facts["blocks"]:
        if block["type"] == "image":
            parts.append(
                f"{block.get('format', block['mime_type'])} {block.get('width')}x{block.get('height')} "
                f"{block.get('bytes', 0) / 1024:.0f} KiB"
            )
        elif block["type"] == "text":
            parts.append(f"text {block['chars']} chars")
    size = facts["result_json_bytes"]
    return " + ".join(parts) + (
        f" (result {size / 1024:.0f} KiB JSON)" if size >= 10240 else f" ({size} B JSON)"
    )


# -- 1 + 2. warm calls, interleaved ------------------------------------------------------------------


Call = Callable[[], Awaitable[CallToolResult]]


def measurements(server: Connected, url: str) -> dict[str, Call]:
    """Every timed call of one server, by the name it is reported under."""

    def tool(name: str, arguments: dict[str, Any]) -> Call:
        return lambda: server.call(name, arguments)

    if server.spec.name == CHASER:
        sid = server.session_id
        return {
            "navigate": lambda: server.navigate(url),
            **{
                chaser_shot(key): tool("take_screenshot", {"session_id": sid, **arguments})
                for key, _, arguments, _, _ in SCREENSHOTS
            },
        }
    return {
        "browser_navigate": lambda: server.navigate(url),
        **{
            playwright_shot(key): tool("browser_take_screenshot", arguments)
            for key, _, _, arguments, _ in SCREENSHOTS
        },
    }


def round_plan(calls: dict[str, dict[str, Call]], round_index: int) -> list[tuple[str, str, Call]]:
    """One round: each pair back to back, the side going first alternating between rounds.

    The navigate pair comes first, so every screenshot is of a freshly loaded page.
    """
    plan: list[tuple[str, str, Call]] = []
    seen: set[tuple[str, str]] = set()
    for _, chaser_name, playwright_name, _ in PAIRS:
        steps = [(CHASER, chaser_name), (PLAYWRIGHT, playwright_name)]
        if round_index % 2:
            steps.reverse()
        for side, name in steps:
            if side in calls and (side, name) not in seen:
                seen.add((side, name))
                plan.append((side, name, calls[side][name]))
    return plan


async def timed(call: Call) -> tuple[float, CallToolResult]:
    started = time.perf_counter()
    result = await call()
    return time.perf_counter() - started, result


async def bench_warm(
    specs: Sequence[ServerSpec], url: str, rounds: int, logdir: Path, create_cycles: int, create_pause: float
) -> tuple[dict[str, Any], list[Created]]:
    """The interleaved rounds, then (chaser alone, in the same warm server) ``create_cycles`` timed
    create_session calls, each followed by a delete and ``create_pause`` seconds of rest."""
    samples: dict[str, dict[str, list[float]]] = {spec.name: {} for spec in specs}
    facts: dict[str, dict[str, Any]] = {spec.name: {} for spec in specs}
    created: list[Created] = []
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(connected(spec, logdir)) for spec in specs]
        calls: dict[str, dict[str, Call]] = {}
        for server in servers:
            await server.create_session()
            await server.navigate(url)  # untimed: launches Playwright MCP's browser, warms both pages
            calls[server.spec.name] = measurements(server, url)
            for name, call in calls[server.spec.name].items():  # one untimed warm-up each
                facts[server.spec.name][name] = result_facts(await call())
        for i in range(rounds):
            for side, name, call in round_plan(calls, i):
                elapsed, _ = await timed(call)
                samples[side].setdefault(name, []).append(elapsed)
            print(f"    round {i + 1}/{rounds}", file=sys.stderr, flush=True)
        for server in servers:
            await server.delete_session()
        chaser = next(server for server in servers if server.spec.name == CHASER)
        for i in range(create_cycles):
            await anyio.sleep(create_pause)
            sample = await chaser.create_session()
            assert sample is not None
            created.append(sample)
            await chaser.delete_session()
            print(f"    create cycle {i + 1}/{create_cycles}", file=sys.stderr, flush=True)
    warm = {
        side: {name: {**describe(values), "result": facts[side][name]} for name, values in by_name.items()}
        for side, by_name in samples.items()
    }
    return warm, created


# -- 3. cold start and the size of tools/list ------------------------------------------------------------


async def cold_start(spec: ServerSpec, url: str, logdir: Path) -> tuple[dict[str, float], Created | None]:
    """One fresh server to its first loaded page; for chaser also its first create_session (cold)."""
    started = time.perf_counter()
    async with connected(spec, logdir) as server:
        with anyio.fail_after(CALL_TIMEOUT):
            await server.client.list_tools()
        listed = time.perf_counter()
        created = await server.create_session()
        await server.navigate(url)
        loaded = time.perf_counter()
        closing = time.perf_counter()
    closed = time.perf_counter()
    times = {
        "spawn_to_tools_list": listed - started,
        "tools_list_to_first_page": loaded - listed,
        "spawn_to_first_page": loaded - started,
        "shutdown": closed - closing,
    }
    return times, created


async def bench_cold(
    specs: Sequence[ServerSpec], url: str, repeats: int, logdir: Path, *, warm_up: bool = True
) -> tuple[dict[str, Any], list[Created]]:
    """Cold starts, interleaved; with each chaser start's first create_session."""
    for spec in specs if warm_up else ():  # warm the page cache and Node's compile cache, untimed
        await cold_start(spec, url, logdir)
    samples: dict[str, dict[str, list[float]]] = {spec.name: {} for spec in specs}
    created: list[Created] = []
    for i in range(repeats):
        order = list(specs) if i % 2 == 0 else list(reversed(specs))
        for spec in order:
            times, first = await cold_start(spec, url, logdir)
            for key, value in times.items():
                samples[spec.name].setdefault(key, []).append(value)
            if first is not None:
                created.append(first)
    cold = {
        side: {key: describe(values) for key, values in by_key.items()} for side, by_key in samples.items()
    }
    return cold, created


def create_summary(samples: Sequence[Created]) -> dict[str, Any] | None:
    """create_session through MCP, the backend's create -> ready, and the difference (None: no samples)."""
    if not samples:
        return None
    return {
        "n": len(samples),
        "create_session": describe([s.tool_s for s in samples]),
        "backend_create_to_ready": describe([s.backend_s for s in samples]),
        "added": describe([s.tool_s - s.backend_s for s in samples]),
    }


async def tools_list_on_the_wire(spec: ServerSpec) -> dict[str, Any]:
    """The exact tools/list answer a host reads: raw JSON-RPC, so nothing is re-serialized."""

    async def send(message: dict[str, Any]) -> None:
        assert process.stdin is not None
        await process.stdin.send((json.dumps(message) + "\n").encode())

    async def answer(request_id: int) -> bytes:
        while True:
            line = await stdout.receive_until(b"\n", MAX_LINE)
            if json.loads(line).get("id") == request_id:
                return line

    env = {**os.environ, **spec.env}
    env = {k: v for k, v in env.items() if not k.startswith("CHASER_")}
    process = await anyio.open_process(
        spec.command, cwd=spec.cwd, env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(CALL_TIMEOUT):
            await send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": HANDSHAKE_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "0"},
                    },
                }
            )
            await answer(1)
            await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            line = await answer(2)
        tools = json.loads(line)["result"]["tools"]
        return {
            "tools": len(tools),
            "names": [tool["name"] for tool in tools],
            "jsonrpc_line_bytes": len(line),
            "tools_json_bytes": len(json.dumps(tools, separators=(",", ":"), ensure_ascii=False).encode()),
        }
    finally:
        with anyio.CancelScope(shield=True):
            assert process.stdin is not None
            await process.stdin.aclose()  # stdin closed: both servers shut down by themselves
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


# -- the run ------------------------------------------------------------------------------------------


def ratios(warm: dict[str, Any], cold: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if PLAYWRIGHT not in warm:
        return rows
    for label, chaser_name, playwright_name, why in PAIRS:
        c, p = warm[CHASER][chaser_name], warm[PLAYWRIGHT][playwright_name]
        rows.append(
            {
                "comparison": label,
                "chaser": chaser_name,
                "playwright": playwright_name,
                "note": why,
                "ratio_median": c["median_ms"] / p["median_ms"],
                "ratio_p90": c["p90_ms"] / p["p90_ms"],
            }
        )
    for key in ("spawn_to_tools_list", "tools_list_to_first_page", "spawn_to_first_page", "shutdown"):
        c, p = cold[CHASER][key], cold[PLAYWRIGHT][key]
        rows.append(
            {
                "comparison": f"cold: {key.replace('_', ' ')}",
                "chaser": key,
                "playwright": key,
                "note": "chaser: create_session + navigate; Playwright MCP: first browser_navigate"
                if "first_page" in key
                else "",
                "ratio_median": c["median_ms"] / p["median_ms"],
                "ratio_p90": c["p90_ms"] / p["p90_ms"],
            }
        )
    return rows


def image_block(facts: dict[str, Any]) -> dict[str, Any]:
    """The one image block of a screenshot's result."""
    images: list[dict[str, Any]] = [block for block in facts["blocks"] if block["type"] == "image"]
    if len(images) != 1:
        raise RuntimeError(f"a screenshot answered {len(images)} images: {facts}")
    return images[0]


def screenshot_side(measured: dict[str, Any], call: str, arguments: dict[str, Any]) -> dict[str, Any]:
    image = image_block(measured["result"])
    return {
        "call": call,
        "arguments": arguments,
        "median_ms": measured["median_ms"],
        "p90_ms": measured["p90_ms"],
        "format": image.get("format", image["mime_type"]),
        "width": image.get("width"),
        "height": image.get("height"),
        "image_bytes": image.get("bytes"),
        "result_json_bytes": measured["result"]["result_json_bytes"],
        "billed_size": image.get("billed_size"),
        "billed_tokens": image.get("billed_tokens"),
    }


def screenshot_rows(warm: dict[str, Any]) -> list[dict[str, Any]]:
    """Each screenshot pair side by side: time, what the image is, its bytes, and what it is billed;
    with the chaser / Playwright MCP ratio of each when both were measured."""
    rows: list[dict[str, Any]] = []
    for key, label, chaser_args, playwright_args, why in SCREENSHOTS:
        row: dict[str, Any] = {"key": key, "comparison": label, "note": why}
        for side, call, arguments in (
            (CHASER, chaser_shot(key), chaser_args),
            (PLAYWRIGHT, playwright_shot(key), playwright_args),
        ):
            if side in warm:
                row[side] = screenshot_side(warm[side][call], call, arguments)
        if CHASER in row and PLAYWRIGHT in row:
            c, p = row[CHASER], row[PLAYWRIGHT]
            row["ratios"] = {
                "median": c["median_ms"] / p["median_ms"],
                "p90": c["p90_ms"] / p["p90_ms"],
                **{
                    measure: c[measure] / p[measure]
                    for measure in ("image_bytes", "result_json_bytes", "billed_tokens")
                    if c[measure] and p[measure]
                },
            }
        rows.append(row)
    return rows


def targets(
    screenshots: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]], create: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every target of ``TARGETS`` with its value in this run (None when not measured) and whether it
    was met (never, when not measured)."""
    default = next(row for row in screenshots if row["key"] == "default").get("ratios", {})
    first_page = [r for r in ratio_rows if r["comparison"] == "cold: spawn to first page"]
    values: dict[str, float | None] = {
        "default_screenshot_time": default.get("median"),
        "default_screenshot_tokens": default.get("billed_tokens"),
        "spawn_to_first_page": first_page[0]["ratio_median"] if first_page else None,
    }
    for when in ("cold", "warm"):
        summary = create.get(when)
        values[f"create_to_ready_added_{when}"] = None if summary is None else summary["added"]["median_ms"]
    result: dict[str, dict[str, Any]] = {}
    for name, what, limit, unit in TARGETS:
        value = values[name]
        met = value is not None and value <= limit
        result[name] = {"what": what, "value": value, "limit": limit, "unit": unit, "met": met}
    return result


def shown_target(target: dict[str, Any]) -> str:
    value, limit = target["value"], target["limit"]
    if target["unit"] == "ratio":
        return f"{'-' if value is None else f'{value:.2f}x'} (<= {limit:g}x)"
    return f"{'-' if value is None else f'{value:+.0f} ms'} (<= {limit:g} ms)"


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['platform']}")
    print(f"         Python {m['python']}, {m['chromium']}, mcp SDK {m['mcp']}")
    print(f"         chaser-mcp {m['chaser_mcp']}", end="")
    reference = result["playwright_mcp"]
    if reference["measured"]:
        core, node = m["playwright_core"], m["node"]
        print(f", @playwright/mcp {m['playwright_mcp']} (playwright-core {core}), node {node}")
    else:
        print(f", Playwright MCP not measured: {reference['reason']} (chaser side only)")
    print(f"page: {result['page']}; viewport {result['viewport']}")
    print()
    print(f"warm calls (median / p90 of {result['rounds']} interleaved rounds) and what each returns:")
    for side, by_name in result["warm"].items():
        for name, r in by_name.items():
            print(
                f"  {side:<10} {name:<42} {r['median_ms']:7.1f} / {r['p90_ms']:7.1f} ms   "
                f"{short_facts(r['result'])}"
            )
    print()
    print(f"cold start (median / p90 of {result['cold_starts']}, interleaved):")
    for side, by_key in result["cold"].items():
        for key, r in by_key.items():
            print(f"  {side:<10} {key:<42} {r['median_ms']:7.1f} / {r['p90_ms']:7.1f} ms")
    print()
    print("tools/list on the wire:")
    for side, r in result["tools_list"].items():
        print(f"  {side:<10} {r['tools']:3d} tools, {r['jsonrpc_line_bytes']:6d} B JSON-RPC line")
    if result["ratios"]:
        print()
        print("chaser / playwright (below 1 = chaser faster):")
        for row in result["ratios"]:
            median, p90 = row["ratio_median"], row["ratio_p90"]
            print(f"  {row['comparison']:<45} median {median:5.2f}x   p90 {p90:5.2f}x")
    print()
    print("screenshots (median / p90 ms, image, bytes of the image and of the JSON result, billed tokens):")
    for row in result["screenshots"]:
        print(f"  {row['comparison']} ({row['note']})")
        for side in (CHASER, PLAYWRIGHT):
            if side in row:
                s = row[side]
                print(
                    f"    {side:<10} {s['median_ms']:7.1f} / {s['p90_ms']:7.1f} ms  {s['format']} "
                    f"{s['width']}x{s['height']}  {s['image_bytes']:>8} B image  "
                    f"{s['result_json_bytes']:>8} B JSON  {s['billed_tokens']:>5} tokens"
                )
        if "ratios" in row:
            q = row["ratios"]
            print(
                f"    {'ratio':<10} time {q['median']:.2f}x (p90 {q['p90']:.2f}x), image bytes "
                f"{q.get('image_bytes', 0):.2f}x, JSON {q.get('result_json_bytes', 0):.2f}x, "
                f"tokens {q.get('billed_tokens', 0):.2f}x"
            )
    print()
    print("chaser create_session -> ready (median / p90 ms: through MCP, the backend's own, added):")
    for when, summary in result["create_to_ready"].items():
        if isinstance(summary, dict):
            parts = "   ".join(
                f"{key} {summary[key]['median_ms']:7.1f} / {summary[key]['p90_ms']:7.1f}"
                for key in ("create_session", "backend_create_to_ready", "added")
            )
            print(f"  {when:<5} (n={summary['n']}) {parts}")
    print()
    print("targets:")
    for name, target in result["targets"].items():
        state = "met" if target["met"] else "MISSED"
        print(f"  {name:<30} {shown_target(target):<26} {state:<7} {target['what']}")
    print()
    for note in result["notes"]:
        print(f"note: {note}")


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a run takes (the command line's counts)."""

    rounds: int
    cold_starts: int
    create_cycles: int
    create_pause: float
    quick: bool
    chaser_options: tuple[str, ...] = ()


async def run(plan: Plan, playwright: tuple[Path | None, str]) -> dict[str, Any]:
    playwright_dir, reason = playwright
    result = new_result("bench_vs_playwright_mcp", quick=plan.quick, machine=machine(playwright_dir))
    result.update(
        {
            "playwright_mcp": {"measured": playwright_dir is not None, "reason": reason},
            "page": f"bench_local card page ({len(PAGE.encode())} B HTML), 127.0.0.1",
            "viewport": f"{VIEWPORT} CSS px at DPR 2.625 on both (Playwright MCP: --device "
            f'"{PLAYWRIGHT_DEVICE}" --viewport-size {VIEWPORT})',
            "notes": NOTES,
            "rounds": plan.rounds,
            "cold_starts": plan.cold_starts,
            "create_cycles": plan.create_cycles,
            "create_pause_s": plan.create_pause,
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench-vs-pw-") as tmp, serve_html({"/": PAGE}) as url:
        workdir = Path(tmp)
        specs = [chaser_spec(workdir, plan.chaser_options)]
        if playwright_dir is not None:
            specs.append(playwright_spec(playwright_dir, workdir))
        result["commands"] = {  # as a reader would type them
            spec.name: ["python" if part == sys.executable else part for part in spec.command]
            for spec in specs
        }
        print("... tools/list sizes", file=sys.stderr, flush=True)
        result["tools_list"] = {spec.name: await tools_list_on_the_wire(spec) for spec in specs}
        print("... warm navigate + screenshots, then create cycles", file=sys.stderr, flush=True)
        result["warm"], warm_creates = await bench_warm(
            specs, url, plan.rounds, workdir, plan.create_cycles, plan.create_pause
        )
        print("... cold starts", file=sys.stderr, flush=True)
        result["cold"], cold_creates = await bench_cold(
            specs, url, plan.cold_starts, workdir, warm_up=not plan.quick
        )
    result["ratios"] = ratios(result["warm"], result["cold"])
    result["screenshots"] = screenshot_rows(result["warm"])
    result["create_to_ready"] = {"cold": create_summary(cold_creates), "warm": create_summary(warm_creates)}
    result["targets"] = targets(result["screenshots"], result["ratios"], result["create_to_ready"])
    return result


def find_playwright_mcp(playwright_dir: Path) -> tuple[Path | None, str]:
    """(the directory, "") if Playwright MCP and node are there; otherwise (None, why), having said
    how to install it."""
    if not playwright_cli(playwright_dir).is_file():
        print(
            f"Playwright MCP is not installed in {playwright_dir}: skipping the Playwright MCP side.\n"
            f"Install it (outside the repo, no browser download) with:\n"
            f"    {INSTALL_COMMAND.format(dir=playwright_dir)}",
            file=sys.stderr,
        )
        return None, f"not installed in {playwright_dir}"
    if shutil.which("node") is None:
        print("node is not on PATH: skipping the Playwright MCP side.", file=sys.stderr)
        return None, "node is not on PATH"
    return playwright_dir, ""


def install_reference(playwright_dir: Path) -> int:
    """Install the pinned Playwright MCP into ``playwright_dir`` unless it is there; without npm (or
    when the install fails) say so and return 0: the bench then measures chaser-mcp alone."""
    if playwright_cli(playwright_dir).is_file():
        print(f"Playwright MCP is already installed in {playwright_dir}", file=sys.stderr)
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the Playwright MCP comparison will measure chaser-mcp alone", file=sys.stderr)
        return 0
    command = [npm, "install", "--prefix", str(playwright_dir), "--no-audit", "--no-fund"]
    command.append(f"@playwright/mcp@{PLAYWRIGHT_MCP_VERSION}")
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        print("npm install of Playwright MCP timed out: comparing without it", file=sys.stderr)
        return 0
    if done.returncode != 0 or not playwright_cli(playwright_dir).is_file():
        print(
            f"npm install of Playwright MCP failed: comparing without it\n{done.stderr[-2000:]}",
            file=sys.stderr,
        )
    else:
        print(f"Playwright MCP {PLAYWRIGHT_MCP_VERSION} installed in {playwright_dir}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the run completed (with or without the reference), 1 when it crashed."""
    parser = bench_arguments(
        __doc__, quick_help="one round, one cold start each and one create cycle, no warm-up"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds of warm calls (30; quick 1)")
    parser.add_argument("--cold-starts", type=int, help="cold starts per server (7; quick 1)")
    parser.add_argument(
        "--create-cycles",
        type=int,
        help="timed create/delete cycles of chaser sessions in the warm server (10; quick 1)",
    )
    parser.add_argument(
        "--create-pause",
        type=float,
        default=CREATE_PAUSE,
        help=f"seconds of rest before each create cycle, untimed (default {CREATE_PAUSE:g})",
    )
    parser.add_argument(
        "--chaser-options",
        default="",
        help="more options for chaser-mcp --local, one string (e.g. '--log-level INFO'); recorded in the "
        "result's commands",
    )
    parser.add_argument(
        "--playwright-mcp-dir",
        type=Path,
        default=DEFAULT_PLAYWRIGHT_MCP_DIR,
        help=f"where @playwright/mcp is installed (its node_modules; default {DEFAULT_PLAYWRIGHT_MCP_DIR})",
    )
    parser.add_argument(
        "--install-reference",
        action="store_true",
        help="install the pinned Playwright MCP into --playwright-mcp-dir with npm (once) and exit",
    )
    args = parser.parse_args(argv)
    if args.install_reference:
        return install_reference(args.playwright_mcp_dir.resolve())
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: both servers need Debian's Chromium.", file=sys.stderr)
        return 1
    rounds = args.rounds or (1 if args.quick else 30)
    cold_starts = args.cold_starts or (1 if args.quick else 7)
    create_cycles = args.create_cycles if args.create_cycles is not None else (1 if args.quick else 10)
    plan = Plan(
        rounds,
        cold_starts,
        create_cycles,
        args.create_pause,
        args.quick,
        tuple(shlex.split(args.chaser_options)),
    )
    playwright = find_playwright_mcp(args.playwright_mcp_dir.resolve())
    result = anyio.run(run, plan, playwright)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
