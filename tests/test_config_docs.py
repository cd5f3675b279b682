"""The README's configuration tables and server.json's variables are generated from the declarations.

A difference fails with the command that regenerates them; ``UPDATE_GOLDEN=1`` regenerates on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from chaser_mcp.config import Settings, env_name
from chaser_mcp.config_docs import environment_variables, generated, main, readme_table

REPO = Path(__file__).resolve().parent.parent


def test_the_readme_and_server_json_match_the_declarations() -> None:
    stale = {path: wanted for path, (now, wanted) in generated(REPO).items() if now != wanted}
    if stale and os.environ.get("UPDATE_GOLDEN"):
        for path, wanted in stale.items():
            path.write_text(wanted, encoding="utf-8")
        pytest.skip(f"regenerated {', '.join(p.name for p in stale)}")

    assert not stale, (
        f"{', '.join(p.name for p in stale)} differ from chaser_mcp/config.py: run "
        "`python -m chaser_mcp.config_docs --write` (or UPDATE_GOLDEN=1 pytest tests/test_config_docs.py)"
    )


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for name in ("README.md", "server.json"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def test_an_edited_readme_row_is_reported(repo_copy: Path) -> None:
    readme = repo_copy / "README.md"
    readme.write_text(readme.read_text().replace("| 1800 |", "| 3600 |"))

    assert main(["--root", str(repo_copy)]) == 1


def test_a_variable_missing_from_server_json_is_reported(repo_copy: Path) -> None:
    manifest_path = repo_copy / "server.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["packages"][0]["environmentVariables"].pop()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    assert main(["--root", str(repo_copy)]) == 1


def test_write_brings_a_stale_copy_back_in_line(repo_copy: Path) -> None:
    readme = repo_copy / "README.md"
    readme.write_text(readme.read_text().replace("| 1800 |", "| 3600 |"))

    assert main(["--root", str(repo_copy), "--write"]) == 0
    assert main(["--root", str(repo_copy)]) == 0
    assert readme.read_text() == (REPO / "README.md").read_text()


def test_the_readme_table_has_one_row_per_declared_option() -> None:
    rows = readme_table(Settings).splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [env_name(Settings, n) for n in Settings.model_fields]


def test_server_json_lists_the_options_a_registry_user_sets_with_the_real_defaults() -> None:
    unset = Settings.from_env({})
    for entry in environment_variables():
        if "default" in entry:
            assert Settings.from_env({entry["name"]: entry["default"]}) == unset, entry["name"]
