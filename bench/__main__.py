"""Rerun every benchmark and write one report; or regenerate the README's tables from it.

    python -m bench                  # every bench in full (10-16 minutes on 2 cores), then
                                     # bench/report.json and the README's tables between the markers
    python -m bench --quick          # every bench in seconds (a smoke run; bench/results/report-quick.json)
    python -m bench --only fault_soak --only stdio   # rerun some; their entries replace the report's
    python -m bench readme [--check] # the README's tables from the committed bench/report.json

Each bench runs as its own process (``python -m bench.<module>``) and writes its own result file under
bench/results/ first, so one that crashes loses nothing of the others; the report records its error
and this command exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, RESULTS_DIR, describe_machine, shown
from bench.report import BENCHES, README_PATH, REPORT_PATH, load_report, render, update_readme, with_section


def run_one(name: str, quick: bool, out: Path, extra: Sequence[str]) -> tuple[dict[str, Any], float]:
    """Run one bench as its own process; its result, or what went wrong, and how long it took."""
    command = [sys.executable, "-m", f"bench.{BENCHES[name]}", "--out", str(out), *extra]
    if quick:
        command.append("--quick")
    print(f"=== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, check=False)
    elapsed = time.perf_counter() - started
    written = sorted(out.glob(f"{BENCHES[name]}-*.json"))
    if done.returncode != 0 or not written:
        return {"error": f"exited with {done.returncode}", "exit_code": done.returncode}, elapsed
    result: dict[str, Any] = json.loads(written[-1].read_text())
    return result, elapsed


def run_all(args: argparse.Namespace) -> int:
    names = args.only or list(BENCHES)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"run-{stamp}{'-quick' if args.quick else ''}"
    report_path: Path = args.report or (RESULTS_DIR / "report-quick.json" if args.quick else REPORT_PATH)
    report: dict[str, Any] = {"benches": {}}
    if args.only and report_path.exists():
        report = load_report(report_path)  # the others keep their last results
    started = time.perf_counter()
    report["machine"] = describe_machine()
    times: dict[str, float] = {}
    for name in names:
        extra: list[str] = []
        if name == "vs_playwright_mcp" and args.playwright_mcp_dir is not None:
            extra = ["--playwright-mcp-dir", str(args.playwright_mcp_dir)]
        report["benches"][name], times[name] = run_one(name, args.quick, out / name, extra)
    report.update(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        quick=args.quick,
        command="python -m bench" + (" --quick" if args.quick else ""),
        runtime_s=round(time.perf_counter() - started, 1) if not args.only else report.get("runtime_s", 0.0),
        bench_runtime_s={**report.get("bench_runtime_s", {}), **{k: round(v, 1) for k, v in times.items()}},
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    failed = [name for name in names if "error" in report["benches"][name]]
    print(f"\nreport: {shown(report_path)}")
    for name in names:
        status = report["benches"][name].get("error", "ok")
        print(f"  {name:<18} {times[name]:6.0f} s  {status}")
    print(f"  {'total':<18} {sum(times.values()):6.0f} s")
    if not args.quick and not args.no_readme and report_path == REPORT_PATH:
        changed = update_readme(report)
        print(f"README.md tables {'rewritten' if changed else 'unchanged'} from {shown(report_path)}")
    return 1 if failed else 0


def readme(args: argparse.Namespace) -> int:
    report = load_report(args.report or REPORT_PATH)
    if args.check:
        current = README_PATH.read_text()
        if with_section(current, render(report)) != current:
            print(
                "README.md's performance tables differ from bench/report.json: run `python -m bench readme`"
            )
            return 1
        print("README.md's performance tables match bench/report.json")
        return 0
    changed = update_readme(report)
    print(f"README.md tables {'rewritten' if changed else 'already up to date'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["readme"]:
        parser = argparse.ArgumentParser(prog="python -m bench readme", description=__doc__)
        parser.add_argument("--check", action="store_true", help="only say whether the README is current")
        parser.add_argument("--report", type=Path, help=f"the report to render (default {REPORT_PATH})")
        return readme(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every bench in seconds (a smoke run)")
    parser.add_argument("--only", action="append", choices=list(BENCHES), help="run only these (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where each run's result files go")
    parser.add_argument("--report", type=Path, help="where the combined report goes")
    parser.add_argument("--playwright-mcp-dir", type=Path, help="where @playwright/mcp is installed")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    return run_all(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
