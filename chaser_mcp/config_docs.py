"""The README's configuration tables and ``server.json``'s environment variables, from the declarations.

    python -m chaser_mcp.config_docs           # exit 1 and name each file that differs
    python -m chaser_mcp.config_docs --write   # regenerate them on purpose

``tests/test_config_docs.py`` runs the same check (``UPDATE_GOLDEN=1`` writes instead).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from .config import Settings, _extra, _plain, env_name, flag_name, shown_default
from .local.__main__ import LocalAPISettings

BEGIN, END = "<!-- config:{}:begin -->", "<!-- config:{}:end -->"
TABLES: dict[str, type[BaseSettings]] = {"server": Settings, "local-api": LocalAPISettings}
FORMATS = {int: "number", float: "number", bool: "boolean", Path: "filepath"}


def readme_table(cls: type[BaseSettings]) -> str:
    """A Markdown table: variable, flag, meaning, default."""
    rows = ["| variable | flag | meaning | default |", "|---|---|---|---|"]
    for name, field in cls.model_fields.items():
        flag = _extra(field)["flag"]
        shown_flag = "" if flag is None else f"`{flag or flag_name(name)}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(cls, name)}` | {shown_flag} | {meaning} | {shown_default(field)} |")
    return "\n".join(rows)


def environment_variables() -> list[dict[str, Any]]:
    """``server.json`` entries for the options a registry user sets (``registry=True``)."""
    entries: list[dict[str, Any]] = []
    for name, field in Settings.model_fields.items():
        if not _extra(field)["registry"]:
            continue
        kind = _plain(field.annotation)
        entry: dict[str, Any] = {"name": env_name(Settings, name), "description": field.description}
        # A variable without a default is the one the server cannot work without: the API key.
        entry["isRequired"] = kind is SecretStr
        if kind is SecretStr:
            entry["isSecret"] = True
        entry["format"] = FORMATS.get(kind, "string")
        if field.default is not None:
            entry["default"] = shown_default(field)
        entries.append(entry)
    return entries


def render_readme(text: str) -> str:
    for label, cls in TABLES.items():
        begin, end = BEGIN.format(label), END.format(label)
        found = re.search(re.escape(begin) + r".*?" + re.escape(end), text, re.S)
        if found is None:
            raise ValueError(f"README.md has no {begin} ... {end} markers")
        text = f"{text[: found.start()]}{begin}\n{readme_table(cls)}\n{end}{text[found.end() :]}"
    return text


def render_server_json(text: str) -> str:
    manifest = json.loads(text)
    for package in manifest["packages"]:
        package["environmentVariables"] = environment_variables()
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def generated(root: Path) -> dict[Path, tuple[str, str]]:
    """Each generated file: (its text now, the text the declarations give)."""
    readme, manifest = root / "README.md", root / "server.json"
    now = {path: path.read_text(encoding="utf-8") for path in (readme, manifest)}
    return {
        readme: (now[readme], render_readme(now[readme])),
        manifest: (now[manifest], render_server_json(now[manifest])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaser_mcp.config_docs", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the files that differ")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: here)")
    args = parser.parse_args(argv)
    stale = [path for path, (now, wanted) in generated(args.root).items() if now != wanted]
    for path in stale:
        if args.write:
            path.write_text(generated(args.root)[path][1], encoding="utf-8")
        print(f"{'rewrote' if args.write else 'differs from the declarations'}: {path}")
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
