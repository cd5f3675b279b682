"""Acting on pages through ``chaser-mcp --local`` and Microsoft's Playwright MCP, side by side.

Both servers run Debian's headless Chromium with the same Pixel 7 emulation (412x915 CSS px, DPR 2.625;
see bench_vs_playwright_mcp for how each is started), are driven by the same MCP client over stdio, and
open the same test pages (``tests/pages/``, served read-only on 127.0.0.1). Each is driven the way a model
using its own tools would be (``bench/acting_agents.py``). Measured, round by round, the side that goes
first alternating so machine noise hits both:

1. snapshot bytes: chaser ``snapshot`` (scope interactive; every page of it when it pages with a
   ``next_cursor``) vs ``browser_snapshot``, on a docs page (~200 links, tables, code, a form; the target
   is at most 0.5x), a login form and a shop; and ``find`` vs ``browser_find`` locating one link.
2. latency: a tap that changes the page without leaving it (add to cart) and a tap that navigates (the
   login's submit), ``act tap`` vs ``browser_click``; filling one field, ``act fill`` vs
   ``browser_type`` and vs ``browser_fill_form``.
3. a whole login (open the page, snapshot to find the fields, fill email and password, tap submit, see
   the welcome page in the tap's answer): tool calls, bytes received summed over every answer (what a
   user pays), seconds.

Bytes are the UTF-8 text of each answer's content blocks (what a model reads); the whole result as JSON
(``wire_bytes``) is recorded too. The session is created before the login is timed (Playwright MCP's
browser is already running by then too); a chaser agent needs that one ``create_session`` more per
conversation.

Run (``--quick``: one round, seconds; the test suite runs it)::

    python -m bench.bench_acting [--rounds 15] [--playwright-mcp-dir DIR]

Without Playwright MCP, or without the chaser-mcp page tools a task needs, the missing side is
recorded as not measured (with why) and the other is measured alone; the run still exits 0.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from bench.acting_agents import Agent, ChaserAgent, Field, PlaywrightAgent, agent_for, ref_for
from bench.bench_vs_playwright_mcp import (
    CHASER,
    CHROMIUM,
    DEFAULT_PLAYWRIGHT_MCP_DIR,
    PLAYWRIGHT,
    ServerSpec,
    chaser_spec,
    connected,
    find_playwright_mcp,
    machine,
    playwright_spec,
)
from bench.common import bench_arguments, new_result, percentile, shown, write_result
from tests.page_support import PagesSite, serve_pages

# What the agents look for on the pages (role words and accessible names, as a model would read them).
EMAIL = Field(("textbox",), "Email")
PASSWORD = Field(("textbox",), "Password")
SUBMIT = Field(("button",), "Sign in")
ACCEPT_COOKIES = Field(("button",), "Accept")
ADD_TO_CART = Field(("button",), "to cart")  # "Add <product> to cart"
CREDENTIALS = ("ada@example.com", "correct horse")  # the test page's own, not a secret
WELCOME = "Welcome"  # the next page's title and heading
FIND_QUERY = ("docs.html", "Privacy")  # one link among ~200
SNAPSHOT_PAGES = ("docs.html", "login.html", "shop.html")

# The chaser-mcp tools each task needs (Playwright MCP has all of its own): a task whose tools a build
# lacks is measured on the Playwright MCP side only, and the result says which.
# (Every snapshot task needs ``snapshot`` alone.)
TASK_TOOLS = {
    "find": {"find"},
    "tap": {"snapshot", "act"},
    "fill": {"snapshot", "act"},
    "login": {"snapshot", "act"},
}

# (label, task, chaser metric, Playwright metric, target): the comparisons reported as ratios.
COMPARISONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("snapshot bytes, docs page", "snapshot docs.html", "bytes", "bytes", "<= 0.5"),
    ("snapshot bytes, login form", "snapshot login.html", "bytes", "bytes", ""),
    ("snapshot bytes, shop", "snapshot shop.html", "bytes", "bytes", ""),
    ("find one link on the docs page, bytes", "find", "bytes", "bytes", ""),
    ("tap that re-renders (add to cart), latency", "tap", "seconds", "seconds", "< 1"),
    ("tap that navigates (login submit), latency", "login", "tap_seconds", "tap_seconds", "< 1"),
    ("fill one field vs browser_type", "fill", "seconds", "seconds", ""),
    ("fill one field vs browser_fill_form", "fill", "seconds", "fill_form_seconds", ""),
    ("login: tool calls", "login", "calls", "calls", ""),
    ("login: bytes received", "login", "bytes", "bytes", ""),
    ("login: seconds", "login", "seconds", "seconds", ""),
)

Metrics = dict[str, float]


# -- the tasks: one agent, one measurement, one round ------------------------------------------------------


async def snapshot_task(agent: Agent, site: PagesSite, page: str) -> Metrics:
    await agent.open(site.url(page))
    agent.take()
    await agent.snapshot()
    answers = agent.take()
    return {
        "bytes": sum(a.text_bytes for a in answers),
        "wire_bytes": sum(a.wire_bytes for a in answers),
        "calls": len(answers),
        "seconds": sum(a.seconds for a in answers),
    }


async def find_task(agent: Agent, site: PagesSite) -> Metrics:
    page, query = FIND_QUERY
    await agent.open(site.url(page))
    agent.take()
    found = await agent.find(query)
    if query.lower() not in found.text.lower() or "[ref=" not in found.text:
        raise RuntimeError(f"{agent.name}: find({query!r}) answered no link with a ref: {found.text!r}")
    return {"bytes": found.text_bytes, "wire_bytes": found.wire_bytes, "seconds": found.seconds}


async def tap_task(agent: Agent, site: PagesSite) -> Metrics:
    """Add one product to the cart: the page changes, the URL does not."""
    await agent.open(site.url("shop.html"))
    outline = await agent.snapshot()
    add = ref_for(outline, ADD_TO_CART)
    try:
        accept = ref_for(outline, ACCEPT_COOKIES)
    except LookupError:
        pass  # no cookie banner this time (consent remembered)
    else:
        await agent.tap(accept)
    agent.take()
    tapped = await agent.tap(add)
    return {"seconds": tapped.seconds, "bytes": tapped.text_bytes}


async def fill_task(agent: Agent, site: PagesSite) -> Metrics:
    await agent.open(site.url("login.html"))
    email = ref_for(await agent.snapshot(), EMAIL)
    agent.take()
    filled = await agent.fill(email, CREDENTIALS[0])
    metrics = {"seconds": filled.seconds, "bytes": filled.text_bytes}
    if isinstance(agent, PlaywrightAgent):  # its other way to fill: the form tool, with one field
        form = await agent.fill_one_field_form(EMAIL.name, email, CREDENTIALS[0])
        metrics["fill_form_seconds"] = form.seconds
    return metrics


async def login_task(agent: Agent, site: PagesSite) -> Metrics:
    """The whole login, every call timed and counted."""
    agent.take()
    await agent.open(site.url("login.html"))
    outline = await agent.snapshot()
    refs = [ref_for(outline, field) for field in (EMAIL, PASSWORD, SUBMIT)]
    await agent.fill_form([(EMAIL.name, refs[0], CREDENTIALS[0]), (PASSWORD.name, refs[1], CREDENTIALS[1])])
    tapped = await agent.tap(refs[2])
    if WELCOME.lower() not in tapped.text.lower():
        # The tap's answer did not show the next page yet (the page signs in after a short round
        # trip): the agent waits for it, one call more, as a model would.
        await agent.wait_for_text(WELCOME)
    answers = agent.take()
    return {
        "calls": len(answers),
        "bytes": sum(a.text_bytes for a in answers),
        "wire_bytes": sum(a.wire_bytes for a in answers),
        "seconds": sum(a.seconds for a in answers),
        "tap_seconds": tapped.seconds,
    }


Task = Callable[[Agent, PagesSite], Awaitable[Metrics]]


def tasks() -> dict[str, Task]:
    plan: dict[str, Task] = {
        f"snapshot {page}": functools.partial(snapshot_task, page=page) for page in SNAPSHOT_PAGES
    }
    plan.update(find=find_task, tap=tap_task, fill=fill_task, login=login_task)
    return plan


# -- the run --------------------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": percentile(values, 0.9),
        "min": min(values),
        "max": max(values),
    }


async def chaser_tools(spec: ServerSpec, logdir: Path) -> set[str]:
    async with connected(spec, logdir) as server:
        return {tool.name for tool in (await server.client.list_tools()).tools}


def chaser_can(task: str, tools: set[str]) -> bool:
    return TASK_TOOLS.get(task, {"snapshot"}) <= tools


async def measure(
    specs: Sequence[ServerSpec], site: PagesSite, rounds: int, logdir: Path, chaser_has: set[str]
) -> tuple[dict[str, dict[str, dict[str, list[float]]]], dict[str, list[dict[str, Any]]]]:
    """samples[task][side][metric] over the rounds, and each side's login, call by call (last round)."""
    plan = tasks()
    samples: dict[str, dict[str, dict[str, list[float]]]] = {task: {} for task in plan}
    steps: dict[str, list[dict[str, Any]]] = {}
    async with AsyncExitStack() as stack:
        agents = [agent_for(await stack.enter_async_context(connected(spec, logdir))) for spec in specs]
        for agent in agents:
            await agent.server.create_session()
            await agent.open(site.url("welcome.html"))  # untimed: launches Playwright MCP's browser
            agent.take()
        for i in range(rounds):
            for name, task in plan.items():
                for agent in agents if i % 2 == 0 else reversed(agents):
                    if isinstance(agent, ChaserAgent) and not chaser_can(name, chaser_has):
                        continue
                    metrics = await task(agent, site)
                    if name == "login":
                        steps[agent.name] = [
                            {"tool": a.tool, "bytes": a.text_bytes, "seconds": round(a.seconds, 4)}
                            for a in agent.last_taken
                        ]
                    for key, value in metrics.items():
                        samples[name].setdefault(agent.name, {}).setdefault(key, []).append(value)
            print(f"    round {i + 1}/{rounds}", file=sys.stderr, flush=True)
        for agent in agents:
            if isinstance(agent, ChaserAgent):
                await agent.call("delete_session", {"session_id": agent.session_id})
    return samples, steps


def comparisons(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, task, c_metric, p_metric, target in COMPARISONS:
        by_side = results.get(task, {})
        if CHASER not in by_side or PLAYWRIGHT not in by_side:
            continue
        c, p = by_side[CHASER][c_metric], by_side[PLAYWRIGHT][p_metric]
        ratio = c["median"] / p["median"]
        row: dict[str, Any] = {
            "comparison": label,
            "task": task,
            "chaser": {"metric": c_metric, **c},
            "playwright": {"metric": p_metric, **p},
            "ratio_median": ratio,
            "target": target,
        }
        if target:
            row["meets_target"] = ratio <= 0.5 if target == "<= 0.5" else ratio < 1
        rows.append(row)
    return rows


async def run(rounds: int, playwright: tuple[Path | None, str], quick: bool) -> dict[str, Any]:
    playwright_dir, reason = playwright
    result = new_result("bench_acting", quick=quick, machine=machine(playwright_dir))
    result.update(
        playwright_mcp={"measured": playwright_dir is not None, "reason": reason},
        rounds=rounds,
    )
    with tempfile.TemporaryDirectory(prefix="bench-acting-") as tmp, serve_pages() as site:
        workdir = Path(tmp)
        specs: list[ServerSpec] = []
        has = await chaser_tools(chaser_spec(workdir), workdir)
        skipped = [task for task in tasks() if not chaser_can(task, has)]
        result["chaser"] = {
            "measured": len(skipped) < len(tasks()),
            "reason": f"its tools/list lacks what {', '.join(skipped)} need" if skipped else "",
        }
        if result["chaser"]["measured"]:
            specs.append(chaser_spec(workdir))
        if playwright_dir is not None:
            specs.append(playwright_spec(playwright_dir, workdir))
        samples, steps = await measure(specs, site, rounds, workdir, has) if specs else ({}, {})
    result["results"] = {
        task: {side: {key: summary(v) for key, v in metrics.items()} for side, metrics in by_side.items()}
        for task, by_side in samples.items()
    }
    result["login_steps"] = steps
    result["ratios"] = comparisons(result["results"])
    return result


# -- printing ---------------------------------------------------------------------------------------------


def shown_value(metric: str, s: dict[str, float]) -> str:
    if "seconds" in metric:
        return f"{s['median'] * 1000:7.1f} ms (p90 {s['p90'] * 1000:.1f})"
    return f"{s['median']:9.0f}" + (" B" if "bytes" in metric else "")


def report(result: dict[str, Any]) -> None:
    for side in (CHASER, "playwright_mcp"):
        if result[side]["reason"]:
            measured = "partly measured" if result[side]["measured"] else "not measured"
            print(f"{side}: {measured} ({result[side]['reason']})")
    print(f"median of {result['rounds']} interleaved rounds:")
    for task, by_side in result["results"].items():
        for side, metrics in by_side.items():
            cells = "  ".join(f"{key} {shown_value(key, s).strip()}" for key, s in metrics.items())
            print(f"  {task:<20} {side:<10} {cells}")
    for side, steps in result["login_steps"].items():
        print(f"  login, {side}: " + ", ".join(f"{s['tool']} {s['bytes']} B" for s in steps))
    if result["ratios"]:
        print("chaser / Playwright MCP (median; below 1 = chaser smaller or faster):")
        for row in result["ratios"]:
            goal = (
                f"  (target {row['target']}: {'meets' if row['meets_target'] else 'misses'})"
                if row["target"]
                else ""
            )
            print(f"  {row['comparison']:<45} {row['ratio_median']:6.2f}x{goal}")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the run completed (whatever could be measured), 1 when it crashed."""
    parser = bench_arguments(__doc__, quick_help="one round (seconds; the test suite runs it)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (15; quick 1)")
    parser.add_argument(
        "--playwright-mcp-dir",
        type=Path,
        default=DEFAULT_PLAYWRIGHT_MCP_DIR,
        help=f"where @playwright/mcp is installed (default {DEFAULT_PLAYWRIGHT_MCP_DIR})",
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: both servers need Debian's Chromium.", file=sys.stderr)
        return 1
    rounds = args.rounds or (1 if args.quick else 15)
    playwright = find_playwright_mcp(args.playwright_mcp_dir.resolve())
    result = anyio.run(run, rounds, playwright, args.quick)
    path = write_result(result, args.out)
    report(result)
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
