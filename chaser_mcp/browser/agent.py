"""The page agent: a script kept in the page's main world that snapshots, finds and targets elements.

Its source is every ``js/*.js`` file of this package in name order (``00-core.js`` first),
each adding functions to one namespace object ``A``. It is installed once per document under
a symbol whose name carries a hash of the source, so a page that outlives a server upgrade
gets the new agent, and found again by every later call, whichever CDP connection makes it.
That is what lets refs outlive a connection: they live in the page (``A.refs``), not in the
server.

Calling convention: ``call_agent(page, "name", *args)`` runs ``A.name(...args)`` with JSON
arguments and returns its JSON value (promises are awaited). A function that cannot do what
was asked returns ``{"error": "<code>", "message": "<one sentence>"}``, which becomes
``AgentError``; a script that throws becomes ``PageScriptError``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from .page import PageError

if TYPE_CHECKING:
    from .page import Page

__all__ = ["AgentError", "agent_source", "call_agent"]


class AgentError(PageError):
    """The agent could not do what was asked; ``code`` says what kind of failure (``stale_ref``, …)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@functools.cache
def _files() -> tuple[tuple[str, str], ...]:
    folder = resources.files(__package__).joinpath("js")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".js"))
    return tuple((name, folder.joinpath(name).read_text(encoding="utf-8")) for name in names)


@functools.cache
def _key() -> str:
    digest = hashlib.sha256("".join(text for _, text in _files()).encode()).hexdigest()[:12]
    return f"chaser.agent/{digest}"


@functools.cache
def agent_source() -> str:
    """The expression that installs the agent (idempotent: a second run finds the first)."""
    key = json.dumps(_key())
    body = "\n".join(f"// --- {name}\n{text}" for name, text in _files())
    return (
        f"(() => {{\nconst KEY = Symbol.for({key});\nif (globalThis[KEY]) return true;\nconst A = {{}};\n"
        f"{body}\n"
        "Object.defineProperty(globalThis, KEY, {value: A, configurable: true});\nreturn true;\n})()"
    )


_MISSING = "__chaser_agent_missing__"


def _call_expression(function: str, args: tuple[Any, ...]) -> str:
    return (
        f"(() => {{ const A = globalThis[Symbol.for({json.dumps(_key())})]; "
        f"if (!A) return {json.dumps(_MISSING)}; "
        f"return A[{json.dumps(function)}](...{json.dumps(list(args))}); }})()"
    )


async def call_agent(page: Page, function: str, *args: Any, timeout: float) -> Any:
    """``A.<function>(*args)`` in the page, installing the agent on first use in this document."""
    expression = _call_expression(function, args)
    value = await page.evaluate(expression, timeout=timeout)
    if value == _MISSING:
        await page.evaluate(agent_source(), timeout=timeout)
        value = await page.evaluate(expression, timeout=timeout)
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        raise AgentError(value["error"], str(value.get("message") or value["error"]))
    return value
