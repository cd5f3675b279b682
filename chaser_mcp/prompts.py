"""MCP prompts loaded from markdown files with YAML front matter.

Each ``prompts/*.md`` file is one prompt. Its front matter declares ``name`` (the file's stem), ``title``,
``description`` and ``arguments`` (``name``, ``description``, ``required``, and for optional arguments a
``default``); its body is the instruction text, with ``{{argument}}`` placeholders. Files are checked
strictly at start-up, so a typo stops the server with a message naming the file instead of reaching a
model as a broken instruction.

A call that lacks a required argument is answered with JSON-RPC ``-32602`` naming what is missing and
what the prompt takes. The SDK's own check raises a bare ``ValueError`` there, which clients see as
``-32603 Internal error`` (or, on the handshake era, an error with code 0), so ``MarkdownPrompt`` checks
first and raises ``MCPError`` itself, which the SDK passes through untouched. A name no prompt has gets
the same treatment from ``unknown_prompt`` (raised by the server's ``get_prompt``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Message, Prompt, PromptArgument, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, InputRequiredResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

if TYPE_CHECKING:
    from mcp.server.context import LifespanContextT, RequestT
    from mcp.server.mcpserver.context import Context

__all__ = [
    "ArgumentSpec",
    "MarkdownPrompt",
    "PromptFileError",
    "PromptFrontMatter",
    "default_prompts_dir",
    "load_prompts",
    "register_prompts",
    "unknown_prompt",
]

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Front matter: a first line of exactly '---', the YAML, then a line of exactly '---'; the rest is the body.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?(.*)\Z", re.DOTALL | re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")


class PromptFileError(ValueError):
    """A prompt file is malformed; the message names the file and every problem found in it."""


class ArgumentSpec(BaseModel):
    """One entry of a prompt file's ``arguments`` list."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(pattern=_IDENTIFIER)
    description: str = Field(min_length=1)
    required: bool = False
    default: str | None = None

    @model_validator(mode="after")
    def _default_only_when_optional(self) -> ArgumentSpec:
        if self.required and self.default is not None:
            raise ValueError(f"argument {self.name!r} is required, so it cannot have a default")
        # The default is what the instructions say when the caller leaves the argument out, so it must
        # exist: rendering an empty string or a placeholder word into a directive reads as nonsense.
        if not self.required and not self.default:
            raise ValueError(f"optional argument {self.name!r} needs a non-empty default")
        return self

    def listed_description(self) -> str:
        """The description clients show; an optional argument's says what leaving it out means."""
        return self.description if self.default is None else f"{self.description} (default: {self.default})"


class PromptFrontMatter(BaseModel):
    """The YAML front matter of a prompt file."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(pattern=_IDENTIFIER)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    arguments: list[ArgumentSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_argument_names(self) -> PromptFrontMatter:
        names = [arg.name for arg in self.arguments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"argument(s) declared more than once: {', '.join(duplicates)}")
        return self


class MarkdownPrompt(Prompt):
    """A prompt whose arguments are checked here, so a caller's mistake is a clean ``-32602``."""

    defaults: dict[str, str] = Field(default_factory=dict, exclude=True)

    async def render(
        self,
        arguments: dict[str, Any] | None,
        context: Context[LifespanContextT, RequestT],
    ) -> list[Message] | InputRequiredResult:
        values = self._resolve_arguments(arguments or {})
        return await super().render(values, context)

    def _resolve_arguments(self, given: Mapping[str, Any]) -> dict[str, str]:
        """Every declared argument's value: given (trimmed) or its default; raises ``MCPError`` -32602."""
        declared = self.arguments or []
        unknown = sorted(set(given) - {arg.name for arg in declared})
        if unknown:
            raise self._invalid(f"unknown argument(s) {_names(unknown)}", unknown=unknown)
        not_text = sorted(name for name, value in given.items() if not isinstance(value, str))
        if not_text:
            raise self._invalid(f"argument(s) {_names(not_text)} must be text")
        values: dict[str, str] = {}
        missing: list[str] = []
        for arg in declared:
            # An empty or blank value counts as absent: form-based clients send "" for fields left blank.
            value = str(given.get(arg.name, "")).strip()
            if value:
                values[arg.name] = value
            elif arg.required:
                missing.append(arg.name)
            else:
                values[arg.name] = self.defaults[arg.name]
        if missing:
            raise self._invalid(f"missing required argument(s) {_names(missing)}", missing=missing)
        return values

    def _invalid(self, problem: str, **data: list[str]) -> MCPError:
        takes = "; ".join(
            f"{arg.name} ({'required' if arg.required else 'optional'}): {arg.description or ''}".rstrip(". ")
            for arg in self.arguments or []
        )
        message = f"Prompt {self.name!r}: {problem}. It takes: {takes or 'no arguments'}."
        return MCPError(code=INVALID_PARAMS, message=message, data={"prompt": self.name, **data})


def unknown_prompt(name: str, known: list[str]) -> MCPError:
    """The ``-32602`` for ``prompts/get`` with a name no prompt has (the SDK answers a bare ``ValueError``,
    which reaches clients as ``-32603`` or code 0, with a logged traceback)."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    valid = ", ".join(repr(n) for n in sorted(known)) or "none"
    return MCPError(
        code=INVALID_PARAMS,
        message=f"Unknown prompt {shown!r}. Valid prompts: {valid} (prompts/list describes them).",
        data={"prompt": shown, "valid": sorted(known)},
    )


def default_prompts_dir() -> Traversable:
    """The shipped prompts: package data in an installed wheel, the top-level ``prompts/`` in a checkout.

    The wheel maps the repository's ``prompts/`` to ``chaser_mcp/prompts_data`` (see pyproject.toml). An
    editable install or a bare checkout has no such directory, and there ``prompts/`` sits beside the
    package. Looking the directory up (rather than importing it as a package) works in all three cases.
    """
    packaged = files("chaser_mcp") / "prompts_data"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "prompts"


def load_prompts(directory: Path | None = None) -> list[Prompt]:
    """Every ``*.md`` prompt in ``directory`` (default: the shipped prompts), sorted by name.

    Raises ``PromptFileError`` naming each malformed file and its problems; nothing is returned then.
    """
    root: Traversable = default_prompts_dir() if directory is None else directory
    if not root.is_dir():
        raise PromptFileError(f"{root}: prompts directory not found")
    prompts: list[Prompt] = []
    problems: list[str] = []
    for entry in sorted((e for e in root.iterdir() if e.name.endswith(".md") and e.is_file()), key=_name):
        try:
            prompts.append(_load_file(entry))
        except PromptFileError as exc:
            problems.append(str(exc))
    if problems:
        raise PromptFileError("\n".join(problems))
    return prompts


def register_prompts(server: MCPServer, directory: Path | None = None) -> None:
    """Load the prompts in ``directory`` (default: the shipped prompts) and add them to ``server``."""
    for prompt in load_prompts(directory):
        server.add_prompt(prompt)


def _load_file(entry: Traversable) -> MarkdownPrompt:
    source = str(entry)
    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{source}: cannot be read as UTF-8 text ({exc})") from None
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise PromptFileError(
            f"{source}: no front matter; the file must start with a '---' line, then YAML, then a '---' line"
        )
    front, body = match.group(1), match.group(2).strip()
    try:
        raw = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        raise PromptFileError(
            f"{source}: front matter is not valid YAML: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(raw, dict):
        raise PromptFileError(f"{source}: front matter must be a YAML mapping (name, title, description, …)")
    try:
        meta = PromptFrontMatter.model_validate(raw)
    except ValidationError as exc:
        raise PromptFileError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None

    problems: list[str] = []
    stem = _name(entry).removesuffix(".md")
    if meta.name != stem:
        problems.append(f"name {meta.name!r} does not match the file name {stem!r}")
    if not body:
        problems.append("the body after the front matter is empty")
    used: set[str] = set()
    for inner in _PLACEHOLDER.findall(body):
        name = inner.strip()
        if re.match(_IDENTIFIER, name):
            used.add(name)
        else:
            problems.append(f"placeholder {{{{{inner}}}}} is not an argument name")
    if "{{" in _PLACEHOLDER.sub("", body) or "}}" in _PLACEHOLDER.sub("", body):
        problems.append("unmatched '{{' or '}}' in the body")
    declared = {arg.name for arg in meta.arguments}
    if undeclared := sorted(used - declared):
        problems.append(f"placeholder(s) {_names(undeclared)} not declared in arguments")
    if unused := sorted(declared - used):
        problems.append(f"argument(s) {_names(unused)} declared but never used in the body")
    if problems:
        raise PromptFileError(f"{source}: " + "; ".join(problems))

    return MarkdownPrompt(
        name=meta.name,
        title=meta.title,
        description=meta.description,
        arguments=[
            PromptArgument(
                name=arg.name,
                description=arg.listed_description(),
                required=arg.required,
            )
            for arg in meta.arguments
        ],
        fn=_renderer(body),
        defaults={arg.name: arg.default for arg in meta.arguments if arg.default is not None},
        context_kwarg=None,
    )


def _renderer(body: str) -> Callable[..., Awaitable[list[Message]]]:
    async def render(**values: str) -> list[Message]:
        # One pass over the body: a value that itself contains '{{x}}' is inserted as text, never expanded.
        text = _PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], body)
        return [UserMessage(text)]

    return render


def _describe(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "front matter"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_type":
        message += " (quote it in YAML: yes, no, true and numbers are not text there)"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field missing"
    return f"{where}: {message}"


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _name(entry: Traversable) -> str:
    return entry.name
