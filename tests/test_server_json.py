"""server.json, the MCP Registry manifest: the registry's schema, its publishing rules, and agreement with
the project (version, README marker, the environment the server really reads).

``mcp-publisher validate`` cannot run offline, so this does what it does: the draft-07 schema with format
checks, then the registry's extra rules, each of which is also shown to reject a broken manifest.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker

from chaser_mcp.config import Settings

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO.parent / "shared" / "schemas" / "server.schema.json"
CURRENT_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
NAME = "sh.chaser/chaser-mcp"
META_LIMIT = 4096
# A value the server accepts for each documented variable, different from its default.
SAMPLES = {
    "CHASER_KEY": "sample-key",
    "CHASER_BASE_URL": "http://127.0.0.1:9",
    "CHASER_TIMEOUT": "45",
    "CHASER_SCREENSHOT_MAX_BYTES": "500000",
    "CHASER_READY_TIMEOUT": "90",
    "CHASER_PROFILE": "sample-profile",
}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def manifest() -> dict[str, Any]:
    return _load(REPO / "server.json")


def _pyproject() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def registry_problems(manifest: dict[str, Any]) -> list[str]:
    """The registry's rules beyond the JSON schema, as ``mcp-publisher`` applies them when publishing."""
    problems: list[str] = []
    if manifest.get("$schema") != CURRENT_SCHEMA:
        problems.append(f"$schema is not the current {CURRENT_SCHEMA}")
    if not _exact_version(manifest.get("version", "")):
        problems.append(f"version {manifest.get('version')!r} is not an exact version")
    for i, package in enumerate(manifest.get("packages", [])):
        where = f"packages[{i}]"
        if not _exact_version(package.get("version", "")):
            problems.append(f"{where}.version {package.get('version')!r} is not an exact version")
        if re.search(r"\s", package.get("identifier", "")):
            problems.append(f"{where}.identifier contains whitespace")
        if package.get("registryType") == "pypi" and package.get("registryBaseUrl") != "https://pypi.org":
            problems.append(f"{where}.registryBaseUrl must be https://pypi.org for PyPI")
    for i, remote in enumerate(manifest.get("remotes", [])):
        if not str(remote.get("url", "")).startswith("https://"):
            problems.append(f"remotes[{i}].url is not https")
    if "_meta" in manifest:
        size = len(json.dumps(manifest["_meta"], separators=(",", ":")).encode())
        if size > META_LIMIT:
            problems.append(f"_meta is {size} bytes, over {META_LIMIT}")
    return problems


def declares_mcp_name(text: str, name: str) -> bool:
    """PyPI ownership proof: ``mcp-name: <name>`` ended by a non-name character, end of text, or ``-->``."""
    return re.search(rf"mcp-name: {re.escape(name)}(?=-->|[^A-Za-z0-9._-]|\Z)", text) is not None


def _exact_version(version: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+)*([.+-]?[A-Za-z0-9]+(\.[A-Za-z0-9]+)*)*", version) is not None and not (
        re.search(r"(^|\.)[xX*](\.|$)", version)
    )


# --- the registry's schema -----------------------------------------------------------------------------


def test_manifest_matches_the_registry_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"registry schema not found at {SCHEMA} (it lives beside the repository, not in it)")
    validator = Draft7Validator(_load(SCHEMA), format_checker=FormatChecker())

    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]

    assert errors == []


def test_uri_formats_are_really_checked() -> None:
    # Without rfc3986-validator, jsonschema passes every "format": "uri" silently.
    assert not FormatChecker().conforms("not a uri", "uri")


# --- the registry's publishing rules ------------------------------------------------------------------


def test_manifest_follows_the_registry_publishing_rules(manifest: dict[str, Any]) -> None:
    assert registry_problems(manifest) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        pytest.param(
            ("$schema",), CURRENT_SCHEMA.replace("2025-12-11", "2025-10-17"), "$schema", id="old-schema"
        ),
        pytest.param(("version",), "latest", "not an exact version", id="latest"),
        pytest.param(("packages", 0, "version"), "^0.1.0", "not an exact version", id="range"),
        pytest.param(("packages", 0, "version"), "0.1.x", "not an exact version", id="wildcard"),
        pytest.param(("packages", 0, "identifier"), "chaser mcp", "whitespace", id="identifier-space"),
        pytest.param(
            ("packages", 0, "registryBaseUrl"), "https://test.pypi.org", "https://pypi.org", id="test-pypi"
        ),
        pytest.param(
            ("remotes",), [{"type": "sse", "url": "http://chaser.sh/sse"}], "not https", id="http-remote"
        ),
        pytest.param(("_meta",), {"x": "y" * META_LIMIT}, "_meta is", id="meta-too-big"),
    ],
)
def test_publishing_rules_reject_a_broken_manifest(
    manifest: dict[str, Any], path: tuple[str | int, ...], value: Any, problem: str
) -> None:
    broken = copy.deepcopy(manifest)
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    assert any(problem in p for p in registry_problems(broken))


# --- agreement with the project -----------------------------------------------------------------------


def test_manifest_identity(manifest: dict[str, Any]) -> None:
    assert manifest["name"] == NAME
    assert manifest["repository"] == {"url": "https://github.com/chaser-sh/chaser-mcp", "source": "github"}
    assert manifest["websiteUrl"] == "https://chaser.sh"


def test_manifest_version_is_the_project_version(manifest: dict[str, Any]) -> None:
    assert manifest["version"] == _pyproject()["version"]


def test_pypi_package_is_this_project_at_this_version_over_stdio(manifest: dict[str, Any]) -> None:
    [package] = manifest["packages"]

    assert package["registryType"] == "pypi"
    assert package["identifier"] == _pyproject()["name"]
    assert package["version"] == _pyproject()["version"]
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}


def test_api_key_is_the_only_required_variable_and_is_secret(manifest: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in manifest["packages"][0]["environmentVariables"]}

    assert [n for n, v in variables.items() if v.get("isRequired")] == ["CHASER_KEY"]
    assert [n for n, v in variables.items() if v.get("isSecret")] == ["CHASER_KEY"]
    assert "default" not in variables["CHASER_KEY"]


def test_documented_variables_are_the_ones_the_server_reads(manifest: dict[str, Any]) -> None:
    names = [v["name"] for v in manifest["packages"][0]["environmentVariables"]]
    unset = Settings.from_env({})

    assert sorted(names) == sorted(SAMPLES)
    for name in names:
        assert Settings.from_env({name: SAMPLES[name]}) != unset, f"{name} has no effect on the settings"


def test_documented_defaults_are_the_real_defaults(manifest: dict[str, Any]) -> None:
    defaults = {
        v["name"]: v["default"] for v in manifest["packages"][0]["environmentVariables"] if "default" in v
    }
    unset = Settings.from_env({})

    assert set(defaults) == {
        "CHASER_BASE_URL",
        "CHASER_TIMEOUT",
        "CHASER_SCREENSHOT_MAX_BYTES",
        "CHASER_READY_TIMEOUT",
    }
    for name, default in defaults.items():
        assert Settings.from_env({name: default}) == unset, (
            f"{name}'s documented default {default!r} is not the default"
        )


# --- the PyPI ownership marker -------------------------------------------------------------------------


def test_readme_declares_the_server_name_for_pypi() -> None:
    assert declares_mcp_name((REPO / "README.md").read_text(encoding="utf-8"), NAME)


@pytest.mark.parametrize(
    ("text", "declares"),
    [
        pytest.param(f"<!-- mcp-name: {NAME} -->", True, id="comment"),
        pytest.param(f"<!-- mcp-name: {NAME}-->", True, id="comment-close-right-after"),
        pytest.param(f"mcp-name: {NAME}", True, id="end-of-text"),
        pytest.param(f"<!-- mcp-name: {NAME}-pro -->", False, id="longer-name"),
        pytest.param(f"<!-- mcp-name: {NAME}.beta -->", False, id="longer-name-dot"),
        pytest.param(f"<!-- mcp-name: {NAME.upper()} -->", False, id="case"),
        pytest.param(f"<!-- mcp-name:{NAME} -->", False, id="no-space"),
        pytest.param("# chaser-mcp", False, id="absent"),
    ],
)
def test_mcp_name_marker_needs_the_exact_name_then_a_boundary(text: str, declares: bool) -> None:
    assert declares_mcp_name(text, NAME) is declares
