"""The viewer page a person opens: the session's screen, touch input, a typing field and Done.

One self-contained HTML document (its script and style inline, allowed by hash), made for a
phone as much as a desktop: the viewport meta, pointer events mapped to touches (a mouse
drags like a finger), and a text field that brings up the soft keyboard. It holds no secret:
the websocket it opens is ``<its own path>/ws``, on its own origin, and the server behind it
keeps the API key.

Websocket protocol (server -> page): text ``{"type": "meta", "width", "height", "input_enabled",
"fps", "url", "title"}`` whenever one of them changes (and before the first frame), binary JPEG
frames. Page -> server (ignored unless input is enabled), CSS pixels: ``touch`` (``phase``
start/move/end/cancel, ``x``, ``y``), ``wheel``, ``text`` and ``key`` messages
(``browser/screencast.py`` reads them).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["page_headers", "render_page"]

VIEWER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, maximum-scale=1, user-scalable=no">
<meta name="referrer" content="no-referrer">
<title>Live view</title>
<style>
  html, body { margin: 0; height: 100%; background: #1d1f23; color: #ddd; font: 14px system-ui, sans-serif; }
  body { display: flex; flex-direction: column; }
  #bar { display: flex; gap: 8px; align-items: center; padding: 6px 8px; flex-wrap: wrap; }
  #where { flex: 1 1 100%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; color: #9ab; }
  #status { flex: 1; min-width: 6em; }
  #keys { flex: 2; min-width: 8em; font-size: 16px; padding: 6px; border-radius: 6px; border: 1px solid #555;
          background: #2a2d33; color: #eee; }
  #done { font-size: 16px; padding: 6px 14px; border-radius: 6px; border: 0; background: #2e7d32;
          color: #fff; }
  #done:disabled { background: #555; }
  #stage { flex: 1; min-height: 0; display: flex; justify-content: center; }
  #screen { max-width: 100%; max-height: 100%; object-fit: contain; background: #000; touch-action: none;
            user-select: none; -webkit-user-select: none; -webkit-touch-callout: none; }
</style>
</head>
<body>
<div id="bar">
  <div id="where"></div>
  <span id="status">connecting…</span>
  <input id="keys" type="text" placeholder="Type here" autocomplete="off" autocapitalize="off"
         autocorrect="off" spellcheck="false" enterkeyhint="send" disabled>
  <button id="done" type="button">Done</button>
</div>
<div id="stage"><img id="screen" alt="live view of the browser session" draggable="false"></div>
<script>
"use strict";
(() => {
  const img = document.getElementById("screen");
  const status = document.getElementById("status");
  const where = document.getElementById("where");
  const keys = document.getElementById("keys");
  const done = document.getElementById("done");
  const base = location.pathname.replace(/\\/+$/, "");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + base + "/ws");
  ws.binaryType = "blob";
  let meta = null, frames = 0, lastUrl = null, ended = false;
  const live = () => ws.readyState === WebSocket.OPEN && meta !== null && meta.input_enabled;
  const send = (message) => { if (live()) ws.send(JSON.stringify(message)); };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      meta = JSON.parse(event.data);
      keys.disabled = !meta.input_enabled;
      where.textContent = (meta.title ? meta.title + " \\u2014 " : "") + (meta.url || "");
      return;
    }
    const next = URL.createObjectURL(event.data);
    img.onload = () => { if (lastUrl) URL.revokeObjectURL(lastUrl); lastUrl = next; };
    img.src = next;
    frames += 1;
  };
  ws.onopen = () => { status.textContent = "live"; };
  ws.onclose = (event) => {
    ended = true;
    keys.disabled = true;
    status.textContent = "disconnected" + (event.reason ? ": " + event.reason : " (" + event.code + ")");
  };
  setInterval(() => {
    if (!ended && ws.readyState === WebSocket.OPEN) status.textContent = "live, " + frames + " fps";
    frames = 0;
  }, 1000);
  // A point on the scaled picture, in the page's CSS pixels.
  const toPage = (event) => {
    const box = img.getBoundingClientRect();
    return { x: (event.clientX - box.left) / box.width * meta.width,
             y: (event.clientY - box.top) / box.height * meta.height };
  };
  // One finger (or the mouse) at a time, as touches: a tap is start + end, a swipe moves between.
  let finger = null, pendingMove = null;
  img.addEventListener("pointerdown", (event) => {
    if (!live() || finger !== null) return;
    event.preventDefault();
    finger = event.pointerId;
    img.setPointerCapture(finger);
    send({ type: "touch", phase: "start", ...toPage(event) });
  });
  img.addEventListener("pointermove", (event) => {
    if (event.pointerId !== finger) return;
    event.preventDefault();
    const first = pendingMove === null;
    pendingMove = toPage(event);
    if (first) requestAnimationFrame(() => {
      if (pendingMove !== null && finger !== null) send({ type: "touch", phase: "move", ...pendingMove });
      pendingMove = null;
    });
  });
  const lift = (phase) => (event) => {
    if (event.pointerId !== finger) return;
    event.preventDefault();
    finger = null;
    pendingMove = null;
    send({ type: "touch", phase: phase, ...toPage(event) });
  };
  img.addEventListener("pointerup", lift("end"));
  img.addEventListener("pointercancel", lift("cancel"));
  img.addEventListener("contextmenu", (event) => event.preventDefault());
  img.addEventListener("wheel", (event) => {
    if (!live()) return;
    event.preventDefault();
    send({ type: "wheel", ...toPage(event), dx: event.deltaX, dy: event.deltaY });
  }, { passive: false });
  // Typing goes to whatever has focus in the session's page (tap a field there first).
  const NAMED = ["Enter", "Tab", "Backspace", "Delete", "Escape", "ArrowUp", "ArrowDown", "ArrowLeft",
                 "ArrowRight", "Home", "End", "PageUp", "PageDown"];
  keys.addEventListener("keydown", (event) => {
    if (event.isComposing || !NAMED.includes(event.key)) return;
    event.preventDefault();
    send({ type: "key", key: (event.shiftKey ? "Shift+" : "") + event.key });
  });
  keys.addEventListener("beforeinput", (event) => {
    if (event.isComposing || event.inputType === "insertCompositionText") return;
    event.preventDefault();
    if (event.data && event.inputType.startsWith("insert")) send({ type: "text", text: event.data });
    else if (event.inputType === "deleteContentBackward") send({ type: "key", key: "Backspace" });
    else if (event.inputType === "deleteContentForward") send({ type: "key", key: "Delete" });
    else if (event.inputType === "insertLineBreak") send({ type: "key", key: "Enter" });
  });
  keys.addEventListener("compositionend", (event) => {
    if (event.data) send({ type: "text", text: event.data });
    keys.value = "";
  });
  keys.addEventListener("paste", (event) => {
    event.preventDefault();
    const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    if (text) send({ type: "text", text: text });
  });
  done.addEventListener("click", async () => {
    done.disabled = true;
    try {
      const answer = await fetch(base + "/done", { method: "POST", cache: "no-store" });
      status.textContent = answer.ok ? "handed back: you can close this page"
                                     : "could not say done (" + answer.status + ")";
      if (!answer.ok) done.disabled = false;
    } catch (error) {
      status.textContent = "could not say done; try again";
      done.disabled = false;
    }
  });
})();
</script>
</body>
</html>
"""


def _inline_hash(tag: str) -> str:
    """CSP source for the page's one inline ``<tag>`` block: its sha256, so nothing else may run."""
    body = VIEWER_PAGE.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


_SCRIPT = _inline_hash("script")
_STYLE = _inline_hash("style")


def page_headers(frame_ancestors: tuple[str, ...] = (), *, embeddable: bool = False) -> dict[str, str]:
    """The page's security headers. It loads nothing but itself (its script and style by hash),
    shows frames as ``blob:`` images, talks only to its own origin, and leaks its path (the token)
    through no Referer. No site may frame it (clickjacking a view that forwards taps) unless
    ``frame_ancestors`` names the origins that may, for a host that shows it inline. An
    ``embeddable`` link's page may be framed anywhere (an MCP App host's sandbox origin is unknown)."""
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    csp = "; ".join(
        directive
        for directive in (
            "default-src 'none'",
            f"script-src {_SCRIPT}",
            f"style-src {_STYLE}",
            "img-src blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            None if embeddable else f"frame-ancestors {ancestors}",
        )
        if directive
    )
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": csp,
    }
    if not frame_ancestors and not embeddable:
        headers["X-Frame-Options"] = "DENY"
    return headers


def render_page() -> str:
    """The page: the same for every link (it learns everything it shows over its websocket)."""
    return VIEWER_PAGE
