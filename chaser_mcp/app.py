"""The live view as an MCP App: a ``ui://`` page a host that renders MCP Apps shows inline in the chat.

Offered only to a client that declared the extension (``io.modelcontextprotocol/ui`` with the
``text/html;profile=mcp-app`` MIME type): for it, the attached tools carry ``_meta.ui.resourceUri``,
``resources/list`` names the page and ``resources/read`` serves it; for any other client nothing
differs, not even ``tools/list`` (the SDK's ``Apps`` extension would stamp every client's list, so
the server filters per request instead; see ``ChaserMCPServer``).

The page receives the tool's result from the host (``ui/notifications/tool-result``) and frames the
viewer URL in it; it frames nothing else and loads nothing. Its CSP (``_meta.ui.csp``) allows one
nested-frame origin, the viewer's: the server's public origin, or over stdio the loopback viewer's,
opened when the page is read. Links minted by an attached tool for such a client are embeddable
(``Viewers.embedding``), so the viewer page lets the host's sandbox frame it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, client_supports_apps
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import Resource, Tool

from .viewer import Viewers, ViewerUnavailable

__all__ = ["APP_MIME_TYPE", "EXTENSION_ID", "LIVE_VIEW_URI", "LiveViewApp", "attach_live_view", "render_app"]

LIVE_VIEW_URI = "ui://chaser/live-view.html"


class LiveViewApp:
    """The live-view page, and which tools show their result in it."""

    def __init__(self, viewers: Viewers) -> None:
        self.viewers = viewers
        self.tools: set[str] = set()

    def attach(self, tool_name: str) -> None:
        self.tools.add(tool_name)

    def for_clients(self, ctx: Context[Any, Any] | ServerRequestContext[Any, Any] | None) -> bool:
        """Whether this request's client is offered the app."""
        return ctx is not None and supports(ctx)

    def for_tool(self, name: str, ctx: Context[Any, Any] | ServerRequestContext[Any, Any] | None) -> bool:
        """Whether a call of ``name`` renders in the app for this client (its links must be embeddable)."""
        return name in self.tools and self.for_clients(ctx)

    def stamp(self, tools: list[Tool]) -> list[Tool]:
        """The listed tools with ``_meta.ui.resourceUri`` on the attached ones (for a declaring client)."""
        return [
            tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": {"resourceUri": LIVE_VIEW_URI}}})
            if tool.name in self.tools
            else tool
            for tool in tools
        ]

    def listing(self) -> Resource:
        return Resource(
            uri=LIVE_VIEW_URI,
            name="live-view",
            title="Live view",
            description="The session's live screen, inline, for a tool result that carries a viewer link.",
            mime_type=APP_MIME_TYPE,
        )

    async def read(self) -> Iterable[ReadResourceContents]:
        try:
            origin = await self.viewers.serving_origin()
        except ViewerUnavailable as exc:
            raise ResourceError(f"The live view cannot be served here ({exc}).") from exc
        meta = {"ui": {"csp": {"frameDomains": [origin]}, "prefersBorder": True}}
        return [ReadResourceContents(content=render_app(origin), mime_type=APP_MIME_TYPE, meta=meta)]


def supports(ctx: Context[Any, Any] | ServerRequestContext[Any, Any]) -> bool:
    """Whether the client declared MCP Apps with the HTML MIME type (False outside a request)."""
    try:
        return client_supports_apps(ctx)
    except (AttributeError, LookupError, ValueError):  # a Context outside any request has no session
        return False


def attach_live_view(server: MCPServer, tool_name: str) -> None:
    """Show ``tool_name``'s result (one that carries a viewer ``url``) in the live-view app, for the
    clients that render MCP Apps. A no-op on a server without the app."""
    app: LiveViewApp | None = getattr(server, "live_view", None)
    if app is not None:
        app.attach(tool_name)


def render_app(viewer_origin: str) -> str:
    """The page, bound to the one origin it may frame."""
    return _APP_PAGE.replace("__VIEWER_ORIGIN__", json.dumps(viewer_origin).replace("</", "<\\/"))


# Inline script and style only: the host's CSP for the page comes from ``_meta.ui.csp``, which names
# nothing but the viewer's origin as a frame source. The page speaks the MCP Apps postMessage protocol
# (ui/initialize, then the host's tool-input and tool-result notifications).
_APP_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Live view</title>
<style>
  html, body { margin: 0; padding: 0; font: 14px/1.4 var(--font-sans, system-ui, sans-serif);
    color: var(--color-text-primary, #1a1a1a); background: transparent; }
  #frame { display: none; width: 100%; height: 680px; border: 0; border-radius: 8px; background: #000; }
  #bar { display: flex; gap: 12px; align-items: center; padding: 6px 2px; }
  #status { flex: 1; color: var(--color-text-secondary, #555); }
  #open { display: none; }
  button { font: inherit; cursor: pointer; }
</style>
</head>
<body>
<iframe id="frame" title="Live view of the browser session" referrerpolicy="no-referrer"
  allow="clipboard-write"></iframe>
<div id="bar"><span id="status">Waiting for the live view link&hellip;</span>
  <button id="open" type="button">Open in a new tab</button></div>
<script>
(function () {
  "use strict";
  const VIEWER_ORIGIN = __VIEWER_ORIGIN__;
  const frame = document.getElementById("frame");
  const statusLine = document.getElementById("status");
  const openButton = document.getElementById("open");
  let nextId = 1;
  const pending = new Map();
  let viewerUrl = null;

  function send(message) { window.parent.postMessage(Object.assign({ jsonrpc: "2.0" }, message), "*"); }
  function request(method, params) {
    const id = nextId++;
    send({ id: id, method: method, params: params });
    return new Promise(function (resolve, reject) { pending.set(id, { resolve: resolve, reject: reject }); });
  }
  function notify(method, params) { send({ method: method, params: params || {} }); }
  function say(text) { statusLine.textContent = text; reportSize(); }
  function reportSize() {
    notify("ui/notifications/size-changed",
      { width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight });
  }

  // A viewer link of this server, and nothing else, is ever framed.
  function viewerLink(value) {
    if (typeof value !== "string") { return null; }
    let url;
    try { url = new URL(value); } catch (e) { return null; }
    return url.origin === VIEWER_ORIGIN && /\\/viewer\\/[^/]+$/.test(url.pathname) ? url.href : null;
  }
  function findLink(result) {
    const data = result && result.structuredContent;
    if (data && typeof data === "object") {
      for (const key of ["url", "viewer_url", "link"]) {
        const found = viewerLink(data[key]);
        if (found) { return found; }
      }
    }
    for (const block of (result && result.content) || []) {
      if (block && block.type === "text" && typeof block.text === "string") {
        for (const word of block.text.split(/[\\s"'<>()]+/)) {
          const found = viewerLink(word);
          if (found) { return found; }
        }
      }
    }
    return null;
  }
  function textOf(result) {
    return ((result && result.content) || [])
      .filter(function (b) { return b && b.type === "text"; })
      .map(function (b) { return b.text; }).join(" ");
  }

  function show(result) {
    const link = findLink(result);
    if (!link) {
      frame.style.display = "none";
      say(result && result.isError ? (textOf(result) || "The tool failed.") : "No live view in this result.");
      return;
    }
    viewerUrl = link;
    frame.src = link;
    frame.style.display = "block";
    openButton.style.display = "inline-block";
    say("Live view. Tap and type in it as on the phone; it stops when the link expires.");
  }

  openButton.addEventListener("click", function () {
    if (!viewerUrl) { return; }
    request("ui/open-link", { url: viewerUrl }).catch(function () {
      say("The host did not open the link; copy it from the tool's result instead.");
    });
  });

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) { return; }
    const message = event.data;
    if (!message || message.jsonrpc !== "2.0") { return; }
    if (message.id !== undefined && message.method === undefined) {
      const waiter = pending.get(message.id);
      if (waiter) {
        pending.delete(message.id);
        if (message.error) { waiter.reject(message.error); } else { waiter.resolve(message.result); }
      }
      return;
    }
    switch (message.method) {
      case "ui/notifications/tool-result": show(message.params); break;
      case "ui/notifications/tool-cancelled": say("The call was cancelled."); break;
      case "ui/resource-teardown":
        frame.src = "about:blank";
        send({ id: message.id, result: {} });
        break;
      case "ping": if (message.id !== undefined) { send({ id: message.id, result: {} }); } break;
      default:
        if (message.id !== undefined) {
          send({ id: message.id, error: { code: -32601, message: "Method not found" } });
        }
    }
  });

  request("ui/initialize", {
    appInfo: { name: "chaser-live-view", version: "1" },
    appCapabilities: { availableDisplayModes: ["inline"] },
    protocolVersion: "2026-01-26"
  }).then(function () {
    notify("ui/notifications/initialized");
    reportSize();
  }, function () { say("This host did not start the app."); });
})();
</script>
</body>
</html>
"""
