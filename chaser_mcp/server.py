"""Build the MCP server: tools and prompts on top of shared, process-level state.

The API client and the conversation registry are created once per process by the
caller and passed in, never in an SDK lifespan: SSE runs the lifespan once per
stream, and the 2026-07-28 protocol makes a fresh connection for every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.request_state import RequestStateSecurity
from mcp_types import (
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
)
from pydantic import AnyUrl, ValidationError

from . import __version__
from ._ids import key_fingerprint
from .api import ChaserClient
from .app import LIVE_VIEW_URI, LiveViewApp, attach_live_view
from .browser.links import PageLinks
from .config import Settings
from .conversations import Conversation, Conversations
from .prompts import register_prompts, unknown_prompt
from .resources import ConversationBus, SessionResources, StatusWatch, read_with
from .store import SharedOwnership
from .tools import (
    ActTools,
    ConversationOf,
    HandOffTools,
    OneCallTools,
    PageTools,
    SessionPages,
    SessionTools,
    SnapshotTools,
    WaitTools,
)
from .tools.hand_off import HAND_OFF_SECONDS
from .viewer import Viewers

INSTRUCTIONS = """\
Real mobile browser sessions (Chaser). create_session starts one (billed while open) and waits until
it is ready; take_screenshot shows its screen; get_preview_link hands it to a person. Sessions this
conversation creates are deleted when it ends unless created with persist=true; delete them yourself
with delete_session as soon as you are done."""

STDIO_CONVERSATION = "stdio"


@dataclass
class ServerState:
    """What a running server shares across every transport and conversation."""

    settings: Settings
    client: ChaserClient
    conversations: Conversations
    # The keys this process can clean up with, by fingerprint: the server's own and, when
    # multi-tenant, every caller's key seen since start (the crash reaper reads it each pass).
    clients_by_key_id: dict[str, ChaserClient] = field(default_factory=dict)
    # Run at shutdown after every conversation is cleaned up (the local backend's browsers).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The open CDP links to sessions' pages; the transport runs ``links.run()`` for the process's life.
    links: PageLinks = field(default_factory=PageLinks)
    # The store shared with other replicas (CHASER_STORE), whose health is this server's too.
    store: SharedOwnership | None = None
    # The live viewer's links; the transport serves its routes (or ``viewers.run()`` opens a loopback port).
    viewers: Viewers = field(default_factory=Viewers)

    def __post_init__(self) -> None:
        if self.client.api_key:
            self.clients_by_key_id[key_fingerprint(self.client.api_key)] = self.client


def single_conversation(state: ServerState, conversation_id: str = STDIO_CONVERSATION) -> ConversationOf:
    """Every request belongs to one conversation: the stdio process (or an in-memory client)."""

    async def conversation_of(ctx: Context) -> Conversation:
        return state.conversations.open(conversation_id, state.client)

    return conversation_of


class ChaserMCPServer(MCPServer[Any]):
    """MCPServer whose argument errors read as one plain sentence per bad field, whose unknown
    prompt names are a ``-32602`` naming the valid ones, and whose resources can read the request's
    context and type their blobs (``resources.read_with``); and which offers its MCP App (``app.py``)
    only to a client that declared the extension, deciding per request what the client sees."""

    live_view: LiveViewApp | None = None

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        result = await super()._handle_list_tools(ctx, params)
        if self.live_view is not None and self.live_view.for_clients(ctx):
            result.tools = self.live_view.stamp(result.tools)
        return result

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        result = await super()._handle_list_resources(ctx, params)
        if self.live_view is not None and self.live_view.for_clients(ctx):
            result.resources = [*result.resources, self.live_view.listing()]
        return result

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        if str(uri) == LIVE_VIEW_URI and self.live_view is not None and self.live_view.for_clients(context):
            return await self.live_view.read()
        return await read_with(context, lambda: super(ChaserMCPServer, self).read_resource(uri, context))

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        known = [prompt.name for prompt in await self.list_prompts()]
        if name not in known:
            raise unknown_prompt(name, known)
        return await super().get_prompt(name, arguments, context)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            if self.live_view is not None and self.live_view.for_tool(name, context):
                with self.live_view.viewers.embedding():  # the host frames this call's viewer link
                    return await super().call_tool(name, arguments, context)
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(describe_invalid_arguments(name, exc.__cause__)) from exc.__cause__
            raise


def describe_invalid_arguments(tool: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "missing":
            problems.append(f"{field} is required")
            continue
        given = repr(item.get("input"))
        given = given if len(given) <= 60 else given[:57] + "..."
        problems.append(f"{field}: {item['msg']} (got {given})")
    return (
        f"Invalid arguments for {tool}: "
        + "; ".join(problems)
        + f". Nothing was sent; fix and call {tool} again."
    )


def request_state_security(settings: Settings) -> RequestStateSecurity | None:
    """How a 2026-07-28 round trip's ``request_state`` is sealed (hand_off): with the replicas' shared
    secret when there is one, so any replica opens what another sealed; else the SDK's key, which is
    this process's alone."""
    if settings.state_secret is None:
        return None
    secret = settings.state_secret.get_secret_value()
    return RequestStateSecurity(keys=[secret], ttl=HAND_OFF_SECONDS)


def build_server(state: ServerState, conversation_of: ConversationOf | None = None) -> MCPServer:
    # Ours, not the SDK's default: status changes are published outside requests too (the listen
    # poller), and a conversation's session updates reach only its own listen streams.
    bus = ConversationBus()
    server = ChaserMCPServer(
        "chaser",
        title="Chaser browser sessions",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://chaser.sh",
        log_level=state.settings.log_level,
        subscriptions=bus,
        request_state_security=request_state_security(state.settings),
    )
    resolve = conversation_of or single_conversation(state)
    pages = SessionPages(state.settings, state.links)
    watch = StatusWatch(bus)
    sessions = SessionTools(state.settings, state.conversations, resolve, pages, state.viewers, watch.seen)
    sessions.register(server)
    PageTools(state.settings, resolve, pages).register(server)
    SnapshotTools(state.settings, resolve, pages).register(server)
    ActTools(state.settings, resolve, pages).register(server)
    WaitTools(state.settings, resolve, pages).register(server)
    OneCallTools(state.settings, state.conversations, resolve, pages).register(server)
    HandOffTools(state.settings, state.conversations, resolve, pages, state.viewers).register(server)
    register_prompts(server)
    server.live_view = LiveViewApp(state.viewers)
    attach_live_view(server, "get_preview_link")
    attach_live_view(server, "hand_off")
    SessionResources(state.settings, sessions, resolve, watch).register(server, bus)
    return server
