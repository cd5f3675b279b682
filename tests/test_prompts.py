"""Prompts from markdown files: served through a real MCP client in both protocol eras, and strict loading."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, TextContent

import chaser_mcp
from chaser_mcp.prompts import PromptFileError, default_prompts_dir, load_prompts, register_prompts

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
# Every tool this server lists, as the golden tools/list records it.
TOOLS = {tool["name"] for tool in json.loads((REPO / "tests" / "golden" / "tools_list.json").read_text())}
SCREENSHOT_ARGS = {"url": "https://shop.example/cart", "what_to_verify": "the total reads $9"}


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    server = MCPServer("chaser", log_level="WARNING")
    register_prompts(server)
    async with Client(server, mode=request.param) as c:
        yield c


async def _text(client: Client, name: str, arguments: dict[str, str]) -> str:
    result = await client.get_prompt(name, arguments)
    assert len(result.messages) == 1
    content = result.messages[0].content
    assert result.messages[0].role == "user" and isinstance(content, TextContent)
    return content.text


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """---
name: probe
title: Probe
description: A prompt for tests.
arguments:
  - name: target
    description: What to probe.
    required: true
---
Probe {{target}}.
"""


# --- served through a client ---------------------------------------------------------------------------


async def test_list_prompts_shows_the_shipped_prompts_with_titles_and_descriptions(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}

    assert set(prompts) == {"screenshot_check", "hand_off_to_person", "tidy_up"}
    for prompt in prompts.values():
        assert prompt.title and prompt.description
        assert all(arg.description for arg in prompt.arguments or [])


async def test_list_prompts_marks_required_and_optional_arguments(client: Client) -> None:
    listed = {
        p.name: {a.name: a.required for a in p.arguments or []} for p in (await client.list_prompts()).prompts
    }

    assert listed == {
        "screenshot_check": {"url": True, "what_to_verify": True, "keep_session": False},
        "hand_off_to_person": {"reason": True, "session_id": False},
        "tidy_up": {"include_unowned": False},
    }


async def test_optional_argument_description_states_its_default(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    keep = next(a for a in prompts["screenshot_check"].arguments or [] if a.name == "keep_session")

    assert keep.description is not None and keep.description.endswith("(default: no)")


async def test_get_prompt_fills_every_placeholder_with_the_given_values(client: Client) -> None:
    text = await _text(client, "screenshot_check", {**SCREENSHOT_ARGS, "keep_session": "yes"})

    assert "Check https://shop.example/cart in a real mobile browser" in text
    assert "decide whether this holds: the total reads $9" in text
    assert "Keep the session: yes." in text
    assert "{{" not in text and "}}" not in text


async def test_missing_required_argument_is_invalid_params_naming_it(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("screenshot_check", {"url": "https://shop.example/"})

    assert caught.value.error.code == INVALID_PARAMS
    message = caught.value.error.message
    assert "missing required argument(s) 'what_to_verify'" in message
    assert "url (required)" in message and "keep_session (optional)" in message  # what the prompt takes
    assert "internal" not in message.lower()


async def test_unknown_prompt_name_is_invalid_params_listing_the_valid_prompts(
    mcp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(MCPError) as caught:
        await mcp_client.get_prompt("screenshot_chek", {})

    assert caught.value.error.code == INVALID_PARAMS
    message = caught.value.error.message
    assert "'screenshot_chek'" in message
    assert all(f"'{name}'" in message for name in ("hand_off_to_person", "screenshot_check", "tidy_up"))
    assert not [r for r in caplog.records if r.exc_info], "an unknown prompt name is no server error"


async def test_every_missing_required_argument_is_named(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("screenshot_check", {})

    assert caught.value.error.code == INVALID_PARAMS
    assert "'url', 'what_to_verify'" in caught.value.error.message


async def test_blank_required_argument_counts_as_missing(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("hand_off_to_person", {"reason": "   "})

    assert caught.value.error.code == INVALID_PARAMS
    assert "'reason'" in caught.value.error.message


async def test_unknown_argument_is_invalid_params_naming_it(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("tidy_up", {"include_unowed": "yes"})

    assert caught.value.error.code == INVALID_PARAMS
    assert "unknown argument(s) 'include_unowed'" in caught.value.error.message


async def test_absent_optional_argument_renders_its_default(client: Client) -> None:
    text = await _text(client, "hand_off_to_person", {"reason": "solve the CAPTCHA"})

    assert "Session: `new`." in text


async def test_blank_optional_argument_renders_its_default(client: Client) -> None:
    text = await _text(client, "tidy_up", {"include_unowned": ""})

    assert "Sessions this conversation does not own: no." in text


async def test_value_that_looks_like_a_placeholder_is_inserted_verbatim(client: Client) -> None:
    text = await _text(client, "screenshot_check", {"url": "{{keep_session}}", "what_to_verify": "it loads"})

    assert "Check {{keep_session}} in a real mobile browser" in text


# --- the shipped files ---------------------------------------------------------------------------------


def test_shipped_prompts_call_only_tools_this_server_has() -> None:
    for path in sorted((REPO / "prompts").glob("*.md")):
        called = set(re.findall(r"call `(\w+)`", path.read_text(encoding="utf-8"), flags=re.IGNORECASE))
        assert called, path.name
        assert called <= TOOLS, f"{path.name} calls unknown tools {sorted(called - TOOLS)}"


def test_default_directory_is_the_repository_prompts_directory_in_a_checkout() -> None:
    # The test run uses the editable install (or the bare checkout); a wheel install uses package data.
    assert Path(str(default_prompts_dir())).resolve() == (REPO / "prompts").resolve()


def test_every_package_is_listed_for_the_wheel() -> None:
    """pyproject lists packages by hand (to map prompts/ into the wheel): a forgotten one is left out."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    package_root = Path(chaser_mcp.__file__).resolve().parent
    on_disk = {
        ".".join(("chaser_mcp", *init.parent.relative_to(package_root).parts))
        for init in package_root.rglob("__init__.py")
    }

    assert on_disk | {"chaser_mcp.prompts_data"} == set(setuptools["packages"])
    assert setuptools["package-dir"] == {"chaser_mcp.prompts_data": "prompts"}
    assert setuptools["package-data"]["chaser_mcp.prompts_data"] == ["*.md"]


# --- strict loading ------------------------------------------------------------------------------------


def test_well_formed_file_loads(tmp_path: Path) -> None:
    _write(tmp_path, "probe", GOOD)

    [prompt] = load_prompts(tmp_path)

    assert (prompt.name, prompt.title, prompt.description) == ("probe", "Probe", "A prompt for tests.")


def test_directory_without_markdown_files_loads_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a prompt", encoding="utf-8")

    assert load_prompts(tmp_path) == []


def test_missing_directory_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="prompts directory not found"):
        load_prompts(tmp_path / "nope")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("Probe {{target}}.\n", "no front matter", id="no-front-matter"),
        pytest.param(GOOD.replace("title: Probe", "title: [Probe"), "not valid YAML", id="bad-yaml"),
        pytest.param("---\n- a\n---\nbody\n", "must be a YAML mapping", id="front-matter-not-a-mapping"),
        pytest.param(GOOD.replace("title: Probe\n", ""), "title: required field missing", id="no-title"),
        pytest.param(
            GOOD.replace("title: Probe", "title: Probe\ncolour: red"), "colour: unknown field", id="extra"
        ),
        pytest.param(GOOD.replace("name: probe", "name: other"), "does not match the file name", id="name"),
        pytest.param(
            GOOD.replace("Probe {{target}}.", "Probe {{target}} {{depth}}."),
            "'depth' not declared",
            id="undeclared-placeholder",
        ),
        pytest.param(
            GOOD.replace("Probe {{target}}.", "Probe it."),
            "'target' declared but never used",
            id="unused-argument",
        ),
        pytest.param(
            GOOD.replace("{{target}}", "{{the target}}").replace("- name: target", "- name: the target"),
            "arguments.0.name: String should match pattern",
            id="argument-name-not-identifier",
        ),
        pytest.param(
            GOOD.replace("Probe {{target}}.", "Probe {{target}} {{9x}}."),
            "{{9x}} is not an argument name",
            id="placeholder-not-identifier",
        ),
        pytest.param(
            GOOD.replace("Probe {{target}}.", "Probe {{target}} }}."), "unmatched", id="stray-braces"
        ),
        pytest.param(
            GOOD.replace("required: true", "required: false"),
            "'target' needs a non-empty default",
            id="optional-without-default",
        ),
        pytest.param(
            GOOD.replace("required: true", "required: true\n    default: x"),
            "cannot have a default",
            id="required-with-default",
        ),
        pytest.param(
            GOOD.replace("required: true", "required: false\n    default: no"),
            "quote it in YAML",
            id="unquoted-yaml-boolean-default",
        ),
        pytest.param(
            GOOD.replace("Probe {{target}}.\n", ""), "body after the front matter is empty", id="empty-body"
        ),
    ],
)
def test_malformed_file_fails_load_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = _write(tmp_path, "probe", text)

    with pytest.raises(PromptFileError) as caught:
        load_prompts(tmp_path)

    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_every_malformed_file_is_reported_at_once(tmp_path: Path) -> None:
    first = _write(
        tmp_path, "alpha", GOOD.replace("name: probe", "name: alpha").replace("{{target}}", "{{x}}")
    )
    second = _write(tmp_path, "beta", "no front matter here\n")
    _write(tmp_path, "probe", GOOD)

    with pytest.raises(PromptFileError) as caught:
        load_prompts(tmp_path)

    assert [line.split(": ")[0] for line in str(caught.value).splitlines()] == [str(first), str(second)]


async def test_malformed_file_stops_registration_before_any_prompt_is_added(tmp_path: Path) -> None:
    _write(tmp_path, "probe", GOOD)
    _write(tmp_path, "zeta", "---\nname: zeta\n---\n")
    server = MCPServer("chaser", log_level="WARNING")

    with pytest.raises(PromptFileError, match=r"zeta\.md"):
        register_prompts(server, tmp_path)

    assert await server.list_prompts() == []
