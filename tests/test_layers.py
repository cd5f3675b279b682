"""The import layers hold: transports -> server -> tools -> conversations -> store -> api, nothing low
imports something high, the leaves (_net, _ids) import nothing of the package, and the API client, the
browser code and the local backend import nothing from MCP. The contract is in pyproject.toml
(``[tool.importlinter]``); this runs ``lint-imports`` on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.mcp_support import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root``, with the repository's contract."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_import_layers() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


VIOLATIONS = {  # module: an import it must never make, and the contract that refuses it
    "store/deletes.py": ("from ..conversations import Conversations", "nothing low imports something high"),
    "api/_errors.py": ("import mcp", "import nothing from MCP"),
    "_net.py": ("from .config import Settings", "Leaf modules import nothing"),
}


def test_each_kind_of_violating_import_breaks_its_contract(tmp_path: Path) -> None:
    copy = tmp_path / "chaser_mcp"
    shutil.copytree(REPO / "chaser_mcp", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for module, (violation, _) in VIOLATIONS.items():
        target = copy / module
        target.write_text(target.read_text() + f"\n{violation}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    for _, contract in VIOLATIONS.values():
        assert any(contract in line for line in broken), result.stdout
