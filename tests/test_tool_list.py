"""The ``tools/list`` answer is a public API: pinned by a golden file, held to inventory-wide rules, and kept
small because every prompt pays for it.

When a change to the tools is intended, regenerate the golden file and review its diff::

    UPDATE_GOLDEN=1 pytest tests/test_tool_list.py

CI never sets UPDATE_GOLDEN, so a missing or stale golden file fails there.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.mcp_support import MODES, TOOL_NAMES, Harness

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).resolve().parent / "golden" / "tools_list.json"
# Measured at 11,424 bytes for the eight session and page tools (compact JSON of the whole tools/list result
# in the 2026-07-28 era, which adds serverInfo in _meta), plus about 15 %. Raising it is a decision, not a
# chore: the list rides along with every prompt. The page tools (snapshot, find, act, wait_for,
# screenshot_url, read_url, take_screenshot's full_page and target) took it to 15.9 KB with the input
# schemas' titles dropped (524 bytes a tool model-facing on average); raised to 16,300 for those alone.
# hand_off (a person takes over; its output schema kept to plain strings) added 0.8 KB: 17,200.
TOOLS_LIST_BYTE_BUDGET = 17_200
READ_TOOLS = {"list_sessions", "get_session", "take_screenshot", "read_page"}
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


async def _tools_list(client: Client) -> dict[str, Any]:
    result = await client.list_tools(cache_mode="refresh")
    assert result.next_cursor is None  # one page: the golden file would miss the rest
    listing: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return listing


def _tools(listing: dict[str, Any]) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = listing["tools"]
    return tools


def render_golden(listing: dict[str, Any]) -> str:
    """Tools sorted by name, keys sorted, two-space indent, UTF-8, one trailing newline."""
    tools = sorted(_tools(listing), key=lambda tool: tool["name"])
    return json.dumps(tools, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def test_tools_list_matches_the_golden_file(mcp_client: Client) -> None:
    live = render_golden(await _tools_list(mcp_client))

    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(live, encoding="utf-8")
        return
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; create it with UPDATE_GOLDEN=1 pytest tests/{Path(__file__).name}")
    golden = GOLDEN.read_text(encoding="utf-8")
    if live != golden:
        diff = "".join(
            difflib.unified_diff(
                golden.splitlines(keepends=True),
                live.splitlines(keepends=True),
                fromfile=f"{GOLDEN.name} (committed)",
                tofile="tools/list (live)",
            )
        )
        pytest.fail(
            "tools/list differs from the golden file. If the change is intended, run "
            f"UPDATE_GOLDEN=1 pytest {Path(__file__).name} and commit the new file.\n{diff}",
            pytrace=False,
        )


async def test_tools_list_is_the_same_in_both_protocol_eras(mcp_harness: Harness) -> None:
    rendered = []
    for mode in MODES:
        async with mcp_harness.connect(mode) as client:
            rendered.append(render_golden(await _tools_list(client)))

    assert rendered[0] == rendered[1]


async def test_the_six_session_tools_are_listed(mcp_client: Client) -> None:
    names = {tool["name"] for tool in _tools(await _tools_list(mcp_client))}

    assert set(TOOL_NAMES) <= names


async def test_every_tool_has_a_title_and_a_single_spaced_description(mcp_client: Client) -> None:
    for tool in _tools(await _tools_list(mcp_client)):
        assert tool.get("title"), tool["name"]
        description = tool.get("description", "")
        assert len(description) >= 20, tool["name"]
        assert description == " ".join(description.split()), f"{tool['name']}: {description!r}"


async def test_every_tool_sets_all_four_annotation_hints_explicitly(mcp_client: Client) -> None:
    for tool in _tools(await _tools_list(mcp_client)):
        annotations = tool.get("annotations", {})
        assert all(isinstance(annotations.get(hint), bool) for hint in HINTS), (tool["name"], annotations)


async def test_reads_are_read_only_delete_is_destructive_and_every_tool_is_open_world(
    mcp_client: Client,
) -> None:
    hints = {tool["name"]: tool["annotations"] for tool in _tools(await _tools_list(mcp_client))}

    assert {name for name, a in hints.items() if a["readOnlyHint"]} >= READ_TOOLS
    assert not any(hints[name]["readOnlyHint"] for name in ("create_session", "delete_session"))
    assert hints["delete_session"]["destructiveHint"] is True
    assert not any(hints[name]["destructiveHint"] for name in READ_TOOLS | {"create_session"})
    assert all(a["openWorldHint"] for a in hints.values())


async def test_no_input_schema_has_a_top_level_combinator(mcp_client: Client) -> None:
    # Some clients reject the whole tool list when a top-level schema is anyOf/oneOf/allOf.
    for tool in _tools(await _tools_list(mcp_client)):
        schema = tool["inputSchema"]
        assert schema.get("type") == "object", tool["name"]
        assert not {"anyOf", "oneOf", "allOf"} & schema.keys(), tool["name"]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


async def test_no_schema_uses_a_type_array(mcp_client: Client) -> None:
    # `"type": ["string", "null"]` is legal but clients that map schemas onto a single-type dialect
    # (Gemini's function declarations, for one) reject it; nullable fields stay anyOf branches.
    for tool in _tools(await _tools_list(mcp_client)):
        for schema in (tool["inputSchema"], tool.get("outputSchema", {})):
            assert not [n for n in _walk(schema) if isinstance(n.get("type"), list)], tool["name"]


async def test_the_whole_tools_list_stays_under_its_byte_budget(mcp_client: Client) -> None:
    size = len(json.dumps(await _tools_list(mcp_client), separators=(",", ":"), ensure_ascii=False).encode())

    assert size <= TOOLS_LIST_BYTE_BUDGET, f"tools/list is {size} bytes, budget {TOOLS_LIST_BYTE_BUDGET}"


# What a model reads of a tool (its name, description and input schema), averaged over the list: the
# page tools made the list long, so each tool pays for its words.
MODEL_FACING_BYTES_PER_TOOL = 600


async def test_what_a_model_reads_of_each_tool_averages_at_most_600_bytes(mcp_client: Client) -> None:
    tools = _tools(await _tools_list(mcp_client))
    sizes = {
        tool["name"]: len(
            json.dumps(
                {key: tool.get(key) for key in ("name", "description", "inputSchema")},
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )
        for tool in tools
    }
    average = sum(sizes.values()) / len(sizes)

    assert average <= MODEL_FACING_BYTES_PER_TOOL, f"{average:.0f} bytes per tool on average: {sizes}"
