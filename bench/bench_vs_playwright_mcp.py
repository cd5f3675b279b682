"""Navigate + screenshot through ``chaser-mcp --local`` and Microsoft's Playwright MCP, side by side.

Both servers run real headless Chromium (Debian's, /usr/lib/chromium/chromium) on this machine and are
driven by the same Python MCP SDK client (``mcp.Client`` over stdio, ``mode="legacy"``: Playwright MCP
speaks the handshake era) against the same page, bench_local's card page, served on 127.0.0.1. Both
emulate a Pixel 7 at 412x915 CSS px, DPR 2.625 (chaser-mcp's local sessions always do; Playwright MCP
gets ``--device "Pixel 7" --viewport-size 412x915``, since its Pixel 7 descriptor is 412x839).

Measured, interleaved round by round (who goes first alternates) so machine noise hits both sides:

1. navigate: chaser ``navigate`` vs ``browser_navigate`` (which also saves a page snapshot, linked).
2. screenshot: chaser ``take_screenshot`` (image_format auto, png, jpeg) vs ``browser_take_screenshot``
   (its default, ``type: jpeg``, and both again with ``scale: device``, the pixels chaser captures).
   What each result holds (format, pixel size, bytes, text) is reported beside the times.
3. cold start: spawn -> answered tools/list, then -> first page loaded (chaser: create_session +
   navigate; Playwright MCP launches its browser on the first navigate), and the exact size in bytes of
   each server's tools/list answer on the wire.

Playwright MCP is not a dependency of this project. ``--install-reference`` (which ``bash scripts/test``
runs) installs the pinned version with npm into a cache directory outside the repo, once; no browser is
downloaded, it is pointed at Debian's Chromium::

    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix ~/.cache/chaser-mcp/playwright-mcp-0.0.83 \
        @playwright/mcp@0.0.83

Run (about 2-3 minutes on 2 cores; ``--quick``: one round, seconds)::

    python -m bench.bench_vs_playwright_mcp [--rounds 30] [--cold-starts 7] [--playwright-mcp-dir DIR]

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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
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

# The comparisons reported as ratios: (label, chaser measurement, Playwright MCP measurement, why).
PAIRS: tuple[tuple[str, str, str, str], ...] = (
    ("navigate", "navigate", "browser_navigate", "same URL, page already warm"),
    (
        "screenshot, each server's default",
        "take_screenshot auto",
        "browser_take_screenshot default",
        "what a model gets when it asks for nothing (chaser: device px; Playwright: CSS px)",
    ),
    (
        "screenshot PNG, device pixels",
        "take_screenshot png",
        "browser_take_screenshot scale=device",
        "the same 1082x2402 capture on both",
    ),
    (
        "screenshot JPEG, device pixels",
        "take_screenshot jpeg",
        "browser_take_screenshot jpeg scale=device",
        "the same 1082x2402 capture, JPEG on the wire",
    ),
    (
        "screenshot JPEG vs Playwright CSS-px JPEG",
        "take_screenshot jpeg",
        "browser_take_screenshot jpeg",
        "Playwright's cheaper 412x915 capture",
    ),
)

# Differences between the two that the numbers alone do not show.
NOTES = [
    "chaser navigate waits for the load event and answers with url/title/status; Playwright MCP's "
    "browser_navigate waits for domcontentloaded plus its settle time and answers with markdown "
    "(code it ran, page URL/title, a link to the page snapshot)",
    "chaser take_screenshot always captures a PNG at device pixels through the session API, then (jpeg, "
    "or auto over the 1 MB budget) decodes and re-encodes it with Pillow, downscaled to a 1568 px long "
    "edge, JPEG q85; Playwright MCP captures in the requested format directly (JPEG q90, no downscale)",
    "Playwright MCP also writes every screenshot to a file in --output-dir (included in its time)",
    "Playwright MCP's default scale is css: a 412x915 image, 6.9x fewer pixels than chaser's 1082x2402",
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


def chaser_spec(workdir: Path) -> ServerSpec:
    return ServerSpec(
        CHASER,
        [sys.executable, "-m", "chaser_mcp", "--local", "--journal", "off", "--log-level", "WARNING"],
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

    async def create_session(self) -> None:
        if self.spec.name == CHASER:
            result = await self.call("create_session", {"ttl_seconds": 3600})
            assert isinstance(result.structured_content, dict)
            self.session_id = str(result.structured_content["id"])

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
            "take_screenshot auto": tool("take_screenshot", {"session_id": sid}),
            "take_screenshot png": tool("take_screenshot", {"session_id": sid, "image_format": "png"}),
            "take_screenshot jpeg": tool("take_screenshot", {"session_id": sid, "image_format": "jpeg"}),
        }
    # `scale` is listed as required in the schema (default "css"); a model would send it.
    return {
        "browser_navigate": lambda: server.navigate(url),
        "browser_take_screenshot default": tool("browser_take_screenshot", {"scale": "css"}),
        "browser_take_screenshot jpeg": tool("browser_take_screenshot", {"type": "jpeg", "scale": "css"}),
        "browser_take_screenshot scale=device": tool("browser_take_screenshot", {"scale": "device"}),
        "browser_take_screenshot jpeg scale=device": tool(
            "browser_take_screenshot", {"type": "jpeg", "scale": "device"}
        ),
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


async def bench_warm(specs: Sequence[ServerSpec], url: str, rounds: int, logdir: Path) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {spec.name: {} for spec in specs}
    facts: dict[str, dict[str, Any]] = {spec.name: {} for spec in specs}
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
            if server.session_id is not None:
                await server.call("delete_session", {"session_id": server.session_id})
    return {
        side: {name: {**describe(values), "result": facts[side][name]} for name, values in by_name.items()}
        for side, by_name in samples.items()
    }


# -- 3. cold start and the size of tools/list ------------------------------------------------------------


async def cold_start(spec: ServerSpec, url: str, logdir: Path) -> dict[str, float]:
    started = time.perf_counter()
    async with connected(spec, logdir) as server:
        with anyio.fail_after(CALL_TIMEOUT):
            await server.client.list_tools()
        listed = time.perf_counter()
        await server.create_session()
        await server.navigate(url)
        loaded = time.perf_counter()
        closing = time.perf_counter()
    closed = time.perf_counter()
    return {
        "spawn_to_tools_list": listed - started,
        "tools_list_to_first_page": loaded - listed,
        "spawn_to_first_page": loaded - started,
        "shutdown": closed - closing,
    }


async def bench_cold(
    specs: Sequence[ServerSpec], url: str, repeats: int, logdir: Path, *, warm_up: bool = True
) -> dict[str, Any]:
    for spec in specs if warm_up else ():  # warm the page cache and Node's compile cache, untimed
        await cold_start(spec, url, logdir)
    samples: dict[str, dict[str, list[float]]] = {spec.name: {} for spec in specs}
    for i in range(repeats):
        order = list(specs) if i % 2 == 0 else list(reversed(specs))
        for spec in order:
            for key, value in (await cold_start(spec, url, logdir)).items():
                samples[spec.name].setdefault(key, []).append(value)
    return {
        side: {key: describe(values) for key, values in by_key.items()} for side, by_key in samples.items()
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
    for note in result["notes"]:
        print(f"note: {note}")


async def run(
    rounds: int, cold_starts: int, playwright: tuple[Path | None, str], quick: bool
) -> dict[str, Any]:
    playwright_dir, reason = playwright
    result = new_result("bench_vs_playwright_mcp", quick=quick, machine=machine(playwright_dir))
    result.update(
        {
            "playwright_mcp": {"measured": playwright_dir is not None, "reason": reason},
            "page": f"bench_local card page ({len(PAGE.encode())} B HTML), 127.0.0.1",
            "viewport": f"{VIEWPORT} CSS px at DPR 2.625 on both (Playwright MCP: --device "
            f'"{PLAYWRIGHT_DEVICE}" --viewport-size {VIEWPORT})',
            "notes": NOTES,
            "rounds": rounds,
            "cold_starts": cold_starts,
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench-vs-pw-") as tmp, serve_html({"/": PAGE}) as url:
        workdir = Path(tmp)
        specs = [chaser_spec(workdir)]
        if playwright_dir is not None:
            specs.append(playwright_spec(playwright_dir, workdir))
        result["commands"] = {  # as a reader would type them
            spec.name: ["python" if part == sys.executable else part for part in spec.command]
            for spec in specs
        }
        print("... tools/list sizes", file=sys.stderr, flush=True)
        result["tools_list"] = {spec.name: await tools_list_on_the_wire(spec) for spec in specs}
        print("... warm navigate + screenshot", file=sys.stderr, flush=True)
        result["warm"] = await bench_warm(specs, url, rounds, workdir)
        print("... cold starts", file=sys.stderr, flush=True)
        result["cold"] = await bench_cold(specs, url, cold_starts, workdir, warm_up=not quick)
    result["ratios"] = ratios(result["warm"], result["cold"])
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
    parser = bench_arguments(__doc__, quick_help="one round and one cold start each, no warm-up (seconds)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of warm calls (30; quick 1)")
    parser.add_argument("--cold-starts", type=int, help="cold starts per server (7; quick 1)")
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
    playwright = find_playwright_mcp(args.playwright_mcp_dir.resolve())
    result = anyio.run(run, rounds, cold_starts, playwright, args.quick)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
