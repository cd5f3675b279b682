"""What every tool module shares: how a tool is registered, the session-id argument, compact output
schemas, and the ``ToolError`` a failed API call becomes.

Kept apart from the tools themselves so that adding a tool module (page interaction, a viewer)
takes these as they are, and the golden ``tools/list`` stays one shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, Field

from .._ids import key_fingerprint
from ..api import SESSION_ID_PATTERN, ChaserError
from ..config import Settings
from ..conversations import Conversation
from .errors import explain

if TYPE_CHECKING:
    from ..browser.links import PageLink, PageLinks
    from ..browser.page import Page

__all__ = [
    "CHANGE",
    "COMPACT",
    "DESTROY",
    "READ",
    "BrowserUnreachable",
    "ConversationOf",
    "SessionId",
    "SessionPages",
    "StatusSeen",
    "add_tool",
    "api_error",
    "call_api",
]

T = TypeVar("T")

ConversationOf = Callable[[Context], Awaitable[Conversation]]
"""How a tool finds the conversation a request belongs to (one per stdio process, or per HTTP caller)."""

StatusSeen = Callable[[Conversation, str, str], Awaitable[None]]
"""Told ``(conversation, session_id, status)`` whenever a tool learns a session's status, so a layer
above (the resources' update notifications) can tell a change; the tools know nothing of who listens."""

SessionId = Annotated[
    str,
    Field(
        pattern=SESSION_ID_PATTERN,
        max_length=133,
        description="From create_session or list_sessions, like 'sess_019ec0d0-…'",
    ),
]


def _compact_schema(schema: dict[str, Any]) -> None:
    """Shrink a tool's output schema, which every prompt pays for, by dropping the per-field titles
    pydantic derives from the names. Nullable fields keep their ``anyOf`` form: ``type`` arrays
    are shorter but some clients (single-``type`` dialects) reject them."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


COMPACT = ConfigDict(json_schema_extra=_compact_schema)
"""``model_config`` of every tool result model."""


def _one_line(doc: str | None) -> str:
    """A docstring as a tool description: single-spaced, since every prompt pays for its indentation."""
    return " ".join((doc or "").split())


def _hints(
    *, read_only: bool = False, destructive: bool = False, idempotent: bool = False
) -> ToolAnnotations:
    """All four hints, always explicit; every tool talks to the outside world."""
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


READ = _hints(read_only=True, idempotent=True)
CHANGE = _hints()
DESTROY = _hints(destructive=True, idempotent=True)


def add_tool(
    server: MCPServer,
    fn: Callable[..., Awaitable[Any]],
    title: str,
    annotations: ToolAnnotations,
    *,
    text_only: bool = False,
) -> None:
    """Register ``fn`` with its docstring, on one line, as the description.

    ``text_only``: ``fn`` returns a ``str`` that is the whole answer (a page outline, what an
    action changed), sent as one text block with no output schema; the SDK would otherwise
    send it twice, once wrapped as ``{"result": ...}``, and the agent would pay for both.
    """
    server.add_tool(
        fn,
        title=title,
        description=_one_line(fn.__doc__),
        annotations=annotations,
        structured_output=False if text_only else None,
    )
    # The input schema's titles ("Session Id" for session_id, "navigateArguments") repeat the names
    # a model already reads, in every prompt: about a seventh of what a model reads of a tool. The
    # SDK offers no hook for the argument model's schema, so they are dropped from the registered one.
    tool = server._tool_manager.get_tool(fn.__name__)
    if tool is not None:
        _drop_titles(tool.parameters)


def _drop_titles(schema: dict[str, Any]) -> None:
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


def api_error(exc: ChaserError, *, base_url: str, session_id: str | None = None) -> ToolError:
    """The tool error a model reads for a failed API call: what went wrong and what to do next."""
    return ToolError(explain(exc, session_id=session_id, base_url=base_url))


async def call_api(call: Awaitable[T], *, base_url: str, session_id: str | None = None) -> T:
    """Await an API call, turning its failure into ``api_error``."""
    try:
        return await call
    except ChaserError as exc:
        raise api_error(exc, base_url=base_url, session_id=session_id) from exc


class BrowserUnreachable(ToolError):
    """A ready session whose browser cannot be reached over CDP (no ``cdp_url``, or the connection
    failed): the screen can still come from the API's screenshot endpoint."""


class SessionPages:
    """How a page tool reaches a session's page: look the session up with the conversation's key
    (which is what decides access), then open its page over the session's ``cdp_url``."""

    def __init__(self, settings: Settings, links: PageLinks | None = None) -> None:
        """``links`` is the server's pool (kept open across calls); without one, each call links anew."""
        self._settings = settings
        self._links = links

    async def cdp_target(self, conversation: Conversation, session_id: str) -> tuple[str, dict[str, str]]:
        """The session's CDP URL, and the headers its websocket handshake needs."""
        session = await call_api(
            conversation.api.get_session(session_id), base_url=self._settings.base_url, session_id=session_id
        )
        if session.status == "ready" and not session.cdp_url:
            raise BrowserUnreachable(
                f"Session {session_id} is ready but has no CDP endpoint, so its page cannot be used; "
                "try again in a moment, or create a new session."
            )
        if session.status == "creating":
            raise ToolError(
                f"Session {session_id} is still starting (status 'creating'): wait a few seconds and "
                "try again, or call get_session until its status is 'ready'."
            )
        if session.status != "ready" or not session.cdp_url:
            reason = f", ended_reason '{session.ended_reason}'" if session.ended_reason else ""
            raise ToolError(
                f"Session {session_id} has ended (status '{session.status}'{reason}): "
                "create a new session with create_session."
            )
        headers: dict[str, str] = {}
        # The cloud's CDP endpoint wants the API key; only ever send it over TLS.
        if session.cdp_url.startswith("wss://") and conversation.api.api_key:
            headers["Authorization"] = f"Bearer {conversation.api.api_key}"
        return session.cdp_url, headers

    @contextlib.asynccontextmanager
    async def open_link(self, conversation: Conversation, session_id: str) -> AsyncIterator[PageLink]:
        """The session's page link (``browser/links.py``), held by this call for the block.

        A failure to reach the browser is a ToolError; so is anything else a page operation
        raises past the block, for it to read as one sentence.
        """
        from ..browser.cdp import CDPException
        from ..browser.links import PageLinks
        from ..browser.page import PageError

        cdp_url, headers = await self.cdp_target(conversation, session_id)
        links = self._links if self._links is not None else PageLinks()
        key = f"{key_fingerprint(conversation.api.api_key or '')}/{session_id}"
        async with contextlib.AsyncExitStack() as stack:
            try:
                link = await stack.enter_async_context(
                    links.use(key, cdp_url, headers=headers, timeout=self._settings.timeout)
                )
            except (CDPException, PageError, TimeoutError) as exc:
                raise BrowserUnreachable(
                    f"Could not reach the browser of {session_id} ({exc}). Try again; if it keeps failing, "
                    "call get_session to check that it is still ready."
                ) from exc
            yield link

    @contextlib.asynccontextmanager
    async def open(self, conversation: Conversation, session_id: str) -> AsyncIterator[Page]:
        """The session's current page for the block; a dialog blocking it is a ToolError saying so."""
        from ..browser.links import DialogOpen

        async with self.open_link(conversation, session_id) as link:
            try:
                link.check_no_dialog()
            except DialogOpen as exc:
                raise ToolError(str(exc)) from exc
            yield link.page
