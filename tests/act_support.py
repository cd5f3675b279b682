"""Helpers for the act tests: call ``act`` the way a model would and read the page back.

The page's own state is read with ``read_page`` (what a person would see), never by a script,
so a test checks what the action did to the page, not what the server says it did.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
from mcp import Client

from tests.mcp_support import error_text, structured, text_of
from tests.page_support import call


def _arguments(session: str, action: str, target: str | None, value: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"session_id": session, "action": action}
    if target is not None:
        arguments["target"] = target
    if value is not None:
        arguments["value"] = value
    return arguments


async def act(
    client: Client, session: str, action: str, target: str | None = None, value: str | None = None
) -> str:
    """A successful act's answer (fails the test, showing the error, otherwise)."""
    result = await call(client, "act", **_arguments(session, action, target, value))
    assert not result.is_error, text_of(result)
    return text_of(result)


async def act_error(
    client: Client, session: str, action: str, target: str | None = None, value: str | None = None
) -> str:
    """A failed act's one sentence (fails the test if the act succeeded)."""
    return error_text(await call(client, "act", **_arguments(session, action, target, value)))


async def page_text(client: Client, session: str) -> str:
    """The page's visible text, as read_page gives it."""
    return str(structured(await call(client, "read_page", session_id=session))["text"])


async def text_appears(client: Client, session: str, text: str, *, timeout: float = 10.0) -> str:
    """The page's text once it holds ``text`` (for what a page does a moment after an action), bounded."""
    seen = ""
    with anyio.move_on_after(timeout):
        for _ in range(int(timeout * 20)):
            seen = await page_text(client, session)
            if text in seen:
                break
            await anyio.sleep(0.05)
    return seen


def ref_in(answer: str) -> str:
    """The first ``[ref=…]`` an answer names."""
    found = re.search(r"\[ref=([a-z]{2}[0-9]+)\]", answer)
    assert found, f"no ref in {answer!r}"
    return found.group(1)


def assert_one_sentence(text: str) -> None:
    """One sentence: a single line that ends once, with a full stop."""
    assert "\n" not in text, text
    assert text.endswith("."), text
    body = re.sub(r'"[^"]*"', '""', text[:-1])  # quoted page text may hold full stops
    assert not re.search(r"\. [A-Z]", body), text
