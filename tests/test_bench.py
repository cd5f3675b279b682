"""The benchmarks cannot rot: each runs in its quick mode as a real process, through the one command that
runs them all, and the README's performance tables are exactly what the committed report generates.

Only the shape of each result is checked (keys, types, counts), never a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.bench_acting import COMPARISONS
from bench.bench_vs_playwright_mcp import (
    CHASER,
    DEFAULT_PLAYWRIGHT_MCP_DIR,
    PLAYWRIGHT,
    SCREENSHOTS,
    TARGETS,
    Created,
    chaser_shot,
    create_summary,
    playwright_cli,
    playwright_shot,
    ratios,
    screenshot_rows,
    targets,
)
from bench.common import billed_image_size, billed_image_tokens
from bench.report import (
    BEGIN,
    BENCHES,
    END,
    README_PATH,
    TIMES,
    load_report,
    render,
    vs_playwright_section,
    with_section,
)
from tests.fake_chaser import FAULT_KINDS

REPO = Path(__file__).resolve().parent.parent
REFERENCE_INSTALLED = playwright_cli(DEFAULT_PLAYWRIGHT_MCP_DIR).is_file()

# The quick runs take a minute or two on a busy 2-core machine; no timing is asserted.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class QuickRun:
    exit_code: int
    output: str
    report: dict[str, Any]

    def bench(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.report["benches"][name]
        assert "error" not in result, f"{name} failed: {result}\n{self.output[-4000:]}"
        return result


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickRun]:
    """``python -m bench --quick`` once for the module: every bench, each its own process, one report.
    Playwright MCP is compared where it is installed (``bash scripts/test`` installs it)."""
    tmp = tmp_path_factory.mktemp("bench")
    reference = DEFAULT_PLAYWRIGHT_MCP_DIR if REFERENCE_INSTALLED else tmp / "no-playwright-mcp"
    report_path = tmp / "report.json"
    done = run_module(
        *("bench", "--quick", "--out", str(tmp / "results"), "--report", str(report_path)),
        *("--playwright-mcp-dir", str(reference)),
    )
    output = done.stdout + done.stderr
    assert report_path.is_file(), output[-4000:]
    yield QuickRun(done.returncode, output, json.loads(report_path.read_text()))


# -- the one command ---------------------------------------------------------------------------------


def test_one_command_runs_every_bench_into_one_report(quick_run: QuickRun) -> None:
    assert quick_run.exit_code == 0, quick_run.output[-4000:]
    assert list(quick_run.report["benches"]) == list(BENCHES)
    assert quick_run.report["quick"] is True
    assert set(quick_run.report["bench_runtime_s"]) == set(BENCHES)


@pytest.mark.parametrize("name", list(BENCHES))
def test_each_result_carries_the_machine_the_versions_and_the_load(quick_run: QuickRun, name: str) -> None:
    result = quick_run.bench(name)

    assert result["benchmark"] == BENCHES[name]
    assert result["quick"] is True
    machine = result["machine"]
    assert {"cpu", "cores", "python", "mcp", "chaser_mcp", "memory_gib"} <= set(machine)
    assert isinstance(machine["mcp"], str) and isinstance(machine["chaser_mcp"], str)
    for load in (machine["load_average"], result["load_average_at_end"]):
        assert isinstance(load, list) and len(load) == 3 and all(isinstance(v, float | int) for v in load)
    assert isinstance(result["runtime_s"], float | int)


def test_the_quick_report_renders_every_section(quick_run: QuickRun) -> None:
    text = render(quick_run.report)

    for module in BENCHES.values():
        assert f"python -m bench.{module}" in text
    assert "not in this report" not in text


# -- each bench's result ---------------------------------------------------------------------------


def test_stdio_measures_overhead_cold_start_and_cleanup(quick_run: QuickRun) -> None:
    r = quick_run.bench("stdio")
    reps = r["repetitions"]

    assert set(r["overhead"]) == {"legacy", "auto"}
    for mode in r["overhead"].values():
        assert mode["mcp_s"]["n"] == mode["direct_s"]["n"] == mode["echo_s"]["n"] == reps["overhead_calls"]
        assert isinstance(mode["meets_target"], bool) and isinstance(mode["meets_over_echo_target"], bool)
        assert set(mode["cpu_ms_per_call"]) == {"chaser_server", "echo_server", "direct_get"}
    for name in ("chaser_mcp", "chaser_mcp_journal_on", "bare_mcpserver"):
        assert r["cold_start"][name]["wall_s"]["n"] == reps["cold_starts"]
    assert isinstance(r["cold_start"]["startup_imports"]["unwanted_imported"], list)
    for variant in ("journal_off", "journal_on"):
        assert len(r["cleanup"][variant]["api_deletes_seen"]) == reps["cleanups"]
    assert r["cleanup"]["sessions"] == reps["cleanup_sessions"]


def test_http_measures_three_servers_in_both_eras_and_memory(quick_run: QuickRun) -> None:
    r = quick_run.bench("http")
    plan, throughput = r["plan"], r["throughput"]

    for server in ("chaser_mcp", "bare", "bare_api"):
        for era in ("legacy", "auto"):
            measured = throughput["by_server"][server][era]
            assert measured["calls"] == plan["clients"] * plan["calls"] * throughput["plan"]["rounds"]
            assert {"calls_per_s", "p50_s", "p99_s", "server_cpu_ms_per_call"} <= set(measured)
    assert set(throughput["ratios"]) == {"legacy", "auto"}
    assert all(isinstance(q["meets_cpu_target"], bool) for q in throughput["ratios"].values())
    for server in ("chaser_mcp", "bare"):
        assert r["memory"][server]["conversations"] == plan["idle_conversations"]
        assert set(r["memory"][server]["kib"]) == {"before", "idle", "after_one_call", "closed"}


def test_the_clients_bench_times_every_client_leg_in_every_round(tmp_path: Path) -> None:
    """Not part of ``python -m bench``: it informs a decision, not the README's tables."""
    done = run_module("bench.bench_clients", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (written,) = tmp_path.glob("bench_clients-*.json")
    result = json.loads(written.read_text())

    assert {"httpx2_relative", "httpx2_absolute", "chaser_client"} <= set(result["legs"])
    for leg in result["legs"].values():
        assert len(leg["cpu_per_call_ms"]) == result["rounds"]
        assert all(cpu > 0 for cpu in leg["cpu_per_call_ms"])


def test_local_measures_every_step_of_a_session(quick_run: QuickRun) -> None:
    r = quick_run.bench("local")

    assert set(r["steps"]) == {
        "POST /v1/sessions (201)",
        "create -> ready",
        "navigate (first, loopback page)",
        "navigate (again)",
        "screenshot PNG via API 1082x2402",
        "screenshot JPEG q80 direct",
        "PNG size",
        "JPEG size",
        "PSS, one session (page loaded)",
        "CPU, one session's browser, launch to end of round",
        "DELETE (browser fully gone)",
    }
    assert r["steps"]["CPU, one session's browser, launch to end of round"]["unit"] == "s"
    assert r["steps"]["create -> ready"]["n"] == r["plan"]["rounds"]
    assert (
        r["steps"]["screenshot PNG via API 1082x2402"]["n"] == r["plan"]["rounds"] * r["plan"]["screenshots"]
    )


def test_the_fault_soak_accounts_for_every_call_fault_and_session(quick_run: QuickRun) -> None:
    r = quick_run.bench("fault_soak")
    plan, conversations, calls, outcome = r["plan"], r["conversations"], r["calls"], r["outcome"]

    started = sum(conversations["started"].values()) + sum(conversations["not_started"].values())
    assert started == plan["handshake"] + plan["stateless"]
    assert calls["total"] == calls["ok"] + calls["tool_errors"] + calls["client_failures"]
    assert sum(calls["by_tool"].values()) == calls["total"]
    faults = outcome["faults_injected"]
    assert set(faults) == {*FAULT_KINDS, "total"}
    assert faults["total"] == sum(faults[kind] for kind in FAULT_KINDS)
    assert sum(outcome["faults_by_method"].values()) == faults["total"]
    for key in (
        "sessions_created",
        "persisted_created",
        "persisted_kept",
        "sessions_leaked",
        "orphaned_unanswered",
    ):
        assert isinstance(outcome[key], int) and outcome[key] >= 0
    assert len(outcome["leaked_ids"]) == min(outcome["sessions_leaked"], 20)
    assert isinstance(r["after_end"]["server_exit_code"], int)


def test_the_replicas_bench_accounts_for_every_session_and_the_kill(quick_run: QuickRun) -> None:
    r = quick_run.bench("replicas")
    load, latency = r["load"], r["store_latency"]

    assert load["calls"] >= load["calls_failed"] + load["api_faults_passed_on"]
    assert load["calls_failed_in_kill_window"] <= load["calls_failed"]
    assert sum(load["failures"].values()) >= load["calls_failed"]
    assert len(load["leaked_ids"]) == min(load["sessions_leaked"], 20)
    for key in ("sessions_created", "sessions_leaked", "double_deletes", "dead_replicas_sessions_not_reaped"):
        assert isinstance(load[key], int) and load[key] >= 0
    assert load["restart_after_s"] >= r["plan"]["restart_after_s"]
    assert set(latency["median_ms"]) == {"redis", "embedded"}
    assert latency["calls_per_store"] == r["plan"]["latency_rounds"] * r["plan"]["latency_calls"]
    assert isinstance(r["meets_target"], bool)


@pytest.mark.skipif(
    not REFERENCE_INSTALLED,
    reason=f"Playwright MCP is not installed in {DEFAULT_PLAYWRIGHT_MCP_DIR} "
    "(python -m bench.bench_vs_playwright_mcp --install-reference, or bash scripts/test)",
)
def test_with_playwright_mcp_installed_both_sides_are_compared(quick_run: QuickRun) -> None:
    r = quick_run.bench("vs_playwright_mcp")

    assert r["playwright_mcp"] == {"measured": True, "reason": ""}
    assert set(r["warm"]) == set(r["cold"]) == set(r["tools_list"]) == {"chaser", "playwright"}
    assert len(r["ratios"]) == 1 + len(SCREENSHOTS) + 4  # navigate, each screenshot pair, 4 cold steps
    assert [row["key"] for row in r["screenshots"]] == [key for key, *_ in SCREENSHOTS]
    for row in r["screenshots"]:
        assert set(row["ratios"]) == {"median", "p90", "image_bytes", "result_json_bytes", "billed_tokens"}
    assert set(r["targets"]) == {name for name, *_ in TARGETS}
    assert all(target["value"] is not None for target in r["targets"].values())
    assert isinstance(r["machine"]["playwright_mcp"], str)
    assert f"| Playwright MCP {r['machine']['playwright_mcp']}: no arguments |" in render(quick_run.report)


@pytest.mark.skipif(
    not REFERENCE_INSTALLED,
    reason=f"Playwright MCP is not installed in {DEFAULT_PLAYWRIGHT_MCP_DIR}",
)
def test_the_acting_bench_measures_every_task_on_both_sides(quick_run: QuickRun) -> None:
    r = quick_run.bench("acting")

    assert r["chaser"] == r["playwright_mcp"] == {"measured": True, "reason": ""}
    assert set(r["results"]) == {task for _, task, *_ in COMPARISONS}
    for task in r["results"].values():
        assert set(task) == {"chaser", "playwright"}
        assert all(metric["n"] == r["rounds"] for side in task.values() for metric in side.values())
    assert [row["comparison"] for row in r["ratios"]] == [label for label, *_ in COMPARISONS]
    assert all(isinstance(row["meets_target"], bool) for row in r["ratios"] if row["target"])


@pytest.mark.skipif(
    not REFERENCE_INSTALLED,
    reason=f"Playwright MCP is not installed in {DEFAULT_PLAYWRIGHT_MCP_DIR}",
)
def test_the_acting_bench_counts_every_answer_of_the_login(quick_run: QuickRun) -> None:
    r = quick_run.bench("acting")
    login = r["results"]["login"]

    for side, steps in r["login_steps"].items():
        assert login[side]["calls"]["median"] == len(steps)
        assert login[side]["bytes"]["median"] == sum(step["bytes"] for step in steps)
        assert all(step["bytes"] > 0 for step in steps)
    assert [step["tool"] for step in r["login_steps"]["chaser"]][:2] == ["navigate", "snapshot"]
    # then act (fill, fill, tap), and wait_for if the tap's answer did not show the next page yet
    assert "act" in {step["tool"] for step in r["login_steps"]["chaser"][2:]} <= {"act", "wait_for"}


def test_without_playwright_mcp_the_comparison_says_so_and_measures_chaser_alone(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    done = run_module(
        *("bench.bench_vs_playwright_mcp", "--quick", "--out", str(tmp_path)),
        *("--playwright-mcp-dir", str(empty)),
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Playwright MCP is not installed in {empty}" in done.stderr
    assert "npm install --prefix" in done.stderr
    [written] = tmp_path.glob("bench_vs_playwright_mcp-*-quick.json")
    result = json.loads(written.read_text())
    assert result["playwright_mcp"] == {"measured": False, "reason": f"not installed in {empty}"}
    assert set(result["warm"]) == set(result["cold"]) == set(result["tools_list"]) == {"chaser"}
    assert result["ratios"] == []
    assert "not measured in this report" in render({**_report_around("vs_playwright_mcp", result)})


@pytest.fixture(scope="module")
def chaser_alone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run of the comparison without the reference, two create cycles, an extra option."""
    tmp = tmp_path_factory.mktemp("chaser-alone")
    empty = tmp / "empty"
    empty.mkdir()
    done = run_module(
        *("bench.bench_vs_playwright_mcp", "--quick", "--out", str(tmp), "--playwright-mcp-dir", str(empty)),
        *("--create-cycles", "2", "--create-pause", "0", "--chaser-options", "--log-level INFO"),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [written] = tmp.glob("bench_vs_playwright_mcp-*-quick.json")
    result: dict[str, Any] = json.loads(written.read_text())
    return result


def test_without_playwright_mcp_create_to_ready_is_still_measured(chaser_alone: dict[str, Any]) -> None:
    create = chaser_alone["create_to_ready"]

    assert create["cold"]["n"] == chaser_alone["cold_starts"] == 1
    assert create["warm"]["n"] == chaser_alone["create_cycles"] == 2
    for summary in (create["cold"], create["warm"]):
        assert summary["backend_create_to_ready"]["min_ms"] >= 0
        # The backend's create -> ready lies within the call that asked for it.
        assert summary["added"]["min_ms"] > 0
    compared = {"default_screenshot_time", "default_screenshot_tokens", "spawn_to_first_page"}
    assert {name for name, t in chaser_alone["targets"].items() if t["value"] is None} == compared
    assert not any(chaser_alone["targets"][name]["met"] for name in compared)


def test_chaser_options_are_passed_to_the_measured_server(chaser_alone: dict[str, Any]) -> None:
    assert chaser_alone["commands"]["chaser"][-2:] == ["--log-level", "INFO"]


def test_installing_the_reference_without_npm_says_so_and_succeeds(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no npm (and no node) on this PATH

    done = run_module(
        "bench.bench_vs_playwright_mcp", "--install-reference", "--playwright-mcp-dir", str(tmp_path), env=env
    )

    assert done.returncode == 0
    assert "npm not found" in done.stderr
    assert not (tmp_path / "node_modules").exists()


def test_a_crash_while_printing_still_leaves_the_result_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.bench_local

    def broken_report(result: dict[str, Any]) -> None:
        raise KeyError("mcp_sdk")  # what the Playwright MCP comparison's report once died of

    monkeypatch.setattr(bench.bench_local, "report", broken_report)

    with pytest.raises(KeyError, match="mcp_sdk"):
        bench.bench_local.main(["--quick", "--out", str(tmp_path)])

    [written] = tmp_path.glob("bench_local-*-quick.json")
    result = json.loads(written.read_text())
    assert "create -> ready" in result["steps"]
    assert isinstance(result["load_average_at_end"], list)


# -- image tokens and the comparison's README section -------------------------------------------------


def test_a_css_pixel_screenshot_is_billed_its_own_pixels_over_750() -> None:
    assert billed_image_size(412, 915) == (412, 915)
    assert billed_image_tokens(412, 915) == 503  # 376,980 / 750 = 502.6


def test_a_device_pixel_screenshot_is_billed_downscaled_to_a_1568_px_long_edge() -> None:
    assert billed_image_size(1082, 2402) == (706, 1568)  # 1082 * 1568 / 2402 = 706.3
    assert billed_image_tokens(1082, 2402) == 1476  # 706 * 1568 / 750 = 1476.0


def test_an_image_within_the_long_edge_but_over_the_area_is_billed_at_1_15_megapixels() -> None:
    width, height = billed_image_size(1500, 1500)

    assert (width, height) == (1072, 1072)  # sqrt(1,150,000) = 1072.4
    assert billed_image_tokens(1500, 1500) == 1532


def test_an_empty_image_has_no_billed_size() -> None:
    with pytest.raises(ValueError, match="positive size"):
        billed_image_tokens(0, 915)


def _measured(ms: float, fmt: str, width: int, height: int, image_bytes: int) -> dict[str, Any]:
    """One timed call as bench_warm records it, its result holding a caption and one image."""
    return {
        "n": 3,
        "median_ms": ms,
        "p90_ms": ms * 1.25,
        "min_ms": ms * 0.9,
        "max_ms": ms * 1.5,
        "result": {
            "blocks": [
                {"type": "text", "chars": 150, "start": "Screenshot of ..."},
                {
                    "type": "image",
                    "mime_type": f"image/{fmt.lower()}",
                    "base64_chars": 4 * image_bytes // 3,
                    "bytes": image_bytes,
                    "format": fmt,
                    "width": width,
                    "height": height,
                    "billed_size": list(billed_image_size(width, height)),
                    "billed_tokens": billed_image_tokens(width, height),
                },
            ],
            "structured": False,
            "result_json_bytes": 4 * image_bytes // 3 + 300,
        },
    }


def _timing(median_ms: float) -> dict[str, float]:
    return {
        "n": 3,
        "median_ms": median_ms,
        "p90_ms": median_ms * 1.25,
        "min_ms": median_ms * 0.9,
        "max_ms": median_ms * 1.5,
    }


def _synthetic_comparison() -> dict[str, Any]:
    """A vs_playwright_mcp result put together by the bench's own functions from made-up measurements:
    the default screenshot faster and no dearer (met), spawn -> first page 1.5x (missed), create ->
    ready adding 30 ms cold (met) and 900 ms warm (missed)."""
    shots = {
        "default": (("PNG", 412, 915, 93_000, 70.0), ("PNG", 412, 915, 93_500, 80.0)),
        "png_device": (("PNG", 1082, 2402, 474_000, 390.0), ("PNG", 1082, 2402, 473_900, 385.0)),
        "jpeg_device": (("JPEG", 1082, 2402, 124_600, 110.0), ("JPEG", 1082, 2402, 160_200, 144.0)),
        "jpeg_css": (("JPEG", 412, 915, 34_100, 37.0), ("JPEG", 412, 915, 44_200, 39.0)),
    }
    warm: dict[str, dict[str, Any]] = {
        CHASER: {"navigate": _timing(60.0)},
        PLAYWRIGHT: {"browser_navigate": _timing(120.0)},
    }
    for key, ((cf, cw, ch, cb, cms), (pf, pw, ph, pb, pms)) in shots.items():
        warm[CHASER][chaser_shot(key)] = _measured(cms, cf, cw, ch, cb)
        warm[PLAYWRIGHT][playwright_shot(key)] = _measured(pms, pf, pw, ph, pb)
    steps = ("spawn_to_tools_list", "tools_list_to_first_page", "spawn_to_first_page", "shutdown")
    cold = {
        CHASER: {step: _timing(ms) for step, ms in zip(steps, (1500, 1500, 3000, 800), strict=True)},
        PLAYWRIGHT: {step: _timing(ms) for step, ms in zip(steps, (900, 1100, 2000, 200), strict=True)},
    }
    create = {
        "cold": create_summary([Created(0.80, 0.77)] * 3),
        "warm": create_summary([Created(1.80, 0.90)] * 10),
    }
    pairs = ratios(warm, cold)
    screenshots = screenshot_rows(warm)
    return {
        "benchmark": "bench_vs_playwright_mcp",
        "machine": {"playwright_mcp": "0.0.83"},
        "playwright_mcp": {"measured": True, "reason": ""},
        "rounds": 3,
        "cold_starts": 3,
        "create_cycles": 10,
        "warm": warm,
        "cold": cold,
        "tools_list": {
            CHASER: {"tools": 15, "jsonrpc_line_bytes": 17_000},
            PLAYWRIGHT: {"tools": 25, "jsonrpc_line_bytes": 20_300},
        },
        "ratios": pairs,
        "screenshots": screenshots,
        "create_to_ready": create,
        "targets": targets(screenshots, pairs, create),
    }


def _synthetic_section() -> str:
    """The README section of the synthetic result, the multiplication sign spelled x."""
    return "\n".join(vs_playwright_section(_synthetic_comparison())).replace(TIMES, "x")


def _row(text: str, first_cell: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return line


def test_the_comparison_section_shows_each_screenshot_pair_with_its_size_bytes_tokens_and_ratios() -> None:
    text = _synthetic_section()

    assert _row(text, "JPEG, device pixels") == (
        "| JPEG, device pixels | chaser-mcp: image_format=jpeg, scale=device | 110 ms (p90 138) "
        "| JPEG 1082x2402 | 124.6 KB | 166.4 KB | 1476 |"
    )
    lines = text.splitlines()
    after = lines[lines.index(_row(text, "JPEG, device pixels")) + 1 :]
    assert after[0] == (
        "| | Playwright MCP 0.0.83: type=jpeg, scale=device | 144 ms (p90 180) | JPEG 1082x2402 "
        "| 160.2 KB | 213.9 KB | 1476 |"
    )
    assert after[1] == "| | chaser / Playwright | **0.76x** (p90 0.76x) | | **0.78x** | **0.78x** | 1.00x |"
    for _, label, *_ in SCREENSHOTS:
        assert _row(text, label)


def test_the_comparison_section_shows_each_target_met_or_missed() -> None:
    text = _synthetic_section()

    assert _row(text, "default screenshot, median time").endswith("| 0.88x | ≤ 1x | met |")
    assert _row(text, "default screenshot, image tokens billed").endswith("| 1.00x | ≤ 1x | met |")
    assert _row(text, "spawn → first page loaded, median").endswith("| 1.50x | ≤ 1.2x | **missed** |")
    cold = "create_session over the backend's ready time, first create"
    assert _row(text, cold).endswith("| +30 ms | ≤ 50 ms added | met |")
    warm = "create_session over the backend's ready time, later creates"
    assert _row(text, warm).endswith("| +900 ms | ≤ 50 ms added | **missed** |")


def test_the_comparison_section_shows_create_to_ready_beside_the_backends_own_time() -> None:
    text = _synthetic_section()

    assert _row(text, "`create_session` → ready, warm: later ones (median of 10)") == (
        "| `create_session` → ready, warm: later ones (median of 10) | 1800 ms through MCP; the backend's "
        "own create → ready 900 ms | (no sessions) | **+900 ms** added (p90 +900) |"
    )


def _report_around(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The committed report with one bench's result swapped in."""
    report = load_report()
    return {**report, "benches": {**report["benches"], name: result}}


# -- the README ---------------------------------------------------------------------------------------


def test_the_readme_tables_are_what_the_committed_report_generates() -> None:
    readme = README_PATH.read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1

    expected = with_section(readme, render(load_report()))

    assert readme == expected, (
        "README.md's performance tables differ from bench/report.json; regenerate them on purpose with "
        "`python -m bench readme` (or rerun the benches: `python -m bench`)"
    )


def test_the_committed_report_is_a_full_run_of_every_bench() -> None:
    report = load_report()

    assert report["quick"] is False
    assert list(report["benches"]) == list(BENCHES)
    assert all("error" not in result for result in report["benches"].values())
    assert all(result.get("quick") is False for result in report["benches"].values())
