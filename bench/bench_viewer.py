"""Measure the live viewer on the local backend: frame rate while the page changes, and tap-to-frame
latency (a tap sent over the viewer's websocket until a frame shows its effect).

    python -m bench.bench_viewer [--seconds 10] [--taps 30]
    python -m bench.bench_viewer --quick     # a few seconds

The viewer is reached as a person's browser reaches it: a link minted by ``Viewers.mint`` (what
``get_preview_link`` returns), its websocket on the loopback port the viewer opens, the page's own
messages. The session's page is served on loopback; targets are at least 10 fps and under 250 ms.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    bench_arguments,
    describe_machine,
    median,
    new_result,
    percentile,
    serve_html,
    shown,
    write_result,
)
from chaser_mcp.api import ChaserClient
from chaser_mcp.browser.page import open_page
from chaser_mcp.local import running_local_api
from chaser_mcp.viewer import Viewers, origin_of

KEY = "sk-bench-viewer"
SWATCH = (206.0, 400.0)  # CSS px: the middle of the block a tap recolours

MOVING = """<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Moving</title><style>body{margin:0}#box{position:absolute;top:200px;width:80px;height:80px;background:#0a0}
</style></head><body><div id="box"></div><script>
const box = document.getElementById("box");
const step = (t) => { box.style.left = (t / 5 % 332) + "px"; requestAnimationFrame(step); };
requestAnimationFrame(step);
</script></body></html>"""

SWATCH_PAGE = """<!doctype html><html><head>
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Swatch</title><style>body{margin:0}
#s{position:absolute;left:20px;top:300px;width:372px;height:200px;background:rgb(0,0,255)}</style></head>
<body><div id="s"></div><script>
const s = document.getElementById("s");
s.addEventListener("click", () => {
  s.style.background = s.style.background === "rgb(255, 0, 0)" ? "rgb(0, 0, 255)" : "rgb(255, 0, 0)";
});
</script></body></html>"""

PAGES = {"/moving": MOVING, "/swatch": SWATCH_PAGE}


def red_at(jpeg: bytes, width: int) -> bool:
    """Whether the swatch is red in a frame (``width``: the page's CSS width)."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = image.width / width
    r, _, b = image.getpixel((round(SWATCH[0] * scale), round(SWATCH[1] * scale)))  # type: ignore[misc]
    return bool(r > 200 and b < 60)


async def goto(cdp_url: str, url: str) -> None:
    async with open_page(cdp_url) as page:
        await page.send("Page.enable")
        with page.listen("Page.loadEventFired") as loaded:
            await page.send("Page.navigate", {"url": url})
            await loaded.get(timeout=20)


async def frames_per_second(stream: ClientConnection, seconds: float) -> float:
    frames = 0
    started = time.perf_counter()
    with anyio.move_on_after(seconds):
        while True:
            if isinstance(await stream.recv(), bytes):
                frames += 1
    return frames / (time.perf_counter() - started)


async def tap_latencies(stream: ClientConnection, width: int, taps: int) -> list[float]:
    """Tap, then time until a frame shows the swatch's new colour; drain the rest before the next tap."""
    latencies: list[float] = []
    red = False
    for _ in range(taps):
        started = time.perf_counter()
        for phase in ("start", "end"):
            await stream.send(json.dumps({"type": "touch", "phase": phase, "x": SWATCH[0], "y": SWATCH[1]}))
        with anyio.fail_after(10):
            while True:
                message = await stream.recv()
                if isinstance(message, bytes) and red_at(message, width) != red:
                    latencies.append((time.perf_counter() - started) * 1000)
                    red = not red
                    break
        with anyio.move_on_after(0.6):  # the settle frame, if any
            while True:
                await stream.recv()
    return latencies


async def run(seconds: float, taps: int, quick: bool) -> dict[str, Any]:
    result = new_result("bench_viewer", quick=quick, machine=describe_machine())
    with tempfile.TemporaryDirectory(prefix="chaser-bench-viewer-") as base, serve_html(PAGES) as site:
        async with (
            running_local_api(base_dir=Path(base), api_key=KEY) as api,
            ChaserClient(KEY, base_url=api.base_url) as client,
        ):
            created = await client.create_session(ttl_seconds=600)
            session = await client.get_session(created.id)
            with anyio.fail_after(60):
                while session.status != "ready":
                    await anyio.sleep(0.2)
                    session = await client.get_session(created.id)
            assert session.cdp_url is not None
            viewers = Viewers()
            async with anyio.create_task_group() as tg:
                tg.start_soon(viewers.run)
                link = await viewers.mint(session.id, client, "bench")
                socket = link.url.replace("http://", "ws://", 1) + "/ws"
                await goto(session.cdp_url, f"{site}/moving")
                async with connect(socket, origin=origin_of(link.url), max_size=None) as stream:  # type: ignore[arg-type]
                    await stream.recv()
                    fps = await frames_per_second(stream, seconds)
                await goto(session.cdp_url, f"{site}/swatch")
                async with connect(socket, origin=origin_of(link.url), max_size=None) as stream:  # type: ignore[arg-type]
                    meta = json.loads(await stream.recv())
                    await stream.recv()  # the first picture
                    latencies = await tap_latencies(stream, int(meta["width"]), taps)
                tg.cancel_scope.cancel()
            await client.delete_session(session.id)
    result["viewer"] = {
        "fps_while_the_page_changes": round(fps, 1),
        "fps_cap": link.fps,
        "tap_to_frame_ms": {
            "median": round(median(latencies), 1),
            "p90": round(percentile(latencies, 0.9), 1),
            "min": round(min(latencies), 1),
            "max": round(max(latencies), 1),
            "n": len(latencies),
        },
        "targets": {"fps_at_least": 10, "tap_to_frame_ms_under": 250},
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_arguments(__doc__, quick_help="three seconds of frames, five taps")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of frames counted (10)")
    parser.add_argument("--taps", type=int, default=30, help="taps timed (30)")
    args = parser.parse_args(argv)
    seconds, taps = (3.0, 5) if args.quick else (args.seconds, args.taps)
    result = asyncio.run(run(seconds, taps, args.quick))
    path = write_result(result, args.out)
    viewer = result["viewer"]
    tap = viewer["tap_to_frame_ms"]
    fps, cap = viewer["fps_while_the_page_changes"], viewer["fps_cap"]
    print(f"viewer frame rate while the page changes: {fps} fps (cap {cap})")
    print(f"tap to frame: median {tap['median']} ms, p90 {tap['p90']} ms, {tap['min']}-{tap['max']} ms")
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
