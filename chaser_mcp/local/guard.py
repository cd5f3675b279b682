"""Host and Origin allow-lists for the local API, against DNS rebinding and foreign pages.

A web page can make a browser send requests to 127.0.0.1 under its own host name (DNS
rebinding) or from its own origin. Every request to the local API, websockets included,
must therefore name an allowed ``Host``, and an ``Origin`` (sent by browsers only) must
be an allowed one. Loopback names are allowed by default; more come from configuration.

Entries: a host entry is ``name`` or ``name:port`` (no port: any port; ``[::1]`` for IPv6),
or ``*`` to turn the Host check off; an origin entry is ``scheme://name[:port]`` (no port:
any port), or ``*``. The two lists are independent: ``*`` for hosts keeps the Origin check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BIND = frozenset({"0.0.0.0", "::", ""})


def _split_host(value: str) -> tuple[str, str | None] | None:
    """``name[:port]`` (IPv6 in brackets) to (lower-case name, port or None); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] or None
    else:
        name, _, port_text = value.partition(":")
        port = port_text or None
    if port is not None and port != "*" and not port.isdigit():
        return None
    return name, port


def host_entry(host: str) -> str:
    """A bind address or host name as an allow-list entry (IPv6 literals get their brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class HostRules:
    """Which ``Host`` and ``Origin`` values the local API answers."""

    hosts: tuple[str, ...]
    origins: tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        public_base_url: str | None = None,
        bind_host: str | None = None,
    ) -> HostRules:
        """Loopback names, plus the public URL's and a specific bind address's, plus the configured."""
        hosts = list(LOOPBACK_NAMES)
        origins = [f"http://{name}" for name in LOOPBACK_NAMES]
        if bind_host is not None and bind_host not in WILDCARD_BIND:
            hosts.append(host_entry(bind_host))
            origins.append(f"http://{host_entry(bind_host)}")
        if public_base_url:
            parts = urlsplit(public_base_url)
            if parts.netloc:
                hosts.append(parts.netloc)
                origins.append(f"{parts.scheme}://{parts.netloc}")
        hosts.extend(entry.strip() for entry in allowed_hosts if entry.strip())
        origins.extend(entry.strip().rstrip("/") for entry in allowed_origins if entry.strip())
        return cls(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(origins)))

    def host_allowed(self, host: str | None) -> bool:
        if "*" in self.hosts:
            return True
        given = _split_host(host or "")
        return given is not None and any(_matches(given, entry) for entry in self.hosts)

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin (a non-browser client) is fine; a browser's must be on the list."""
        if origin is None:
            return True
        if "*" in self.origins:
            return True
        scheme, sep, rest = origin.strip().lower().partition("://")
        given = _split_host(rest) if sep and "/" not in rest else None
        if given is None:
            return False  # includes "null", sent by sandboxed frames and file: pages
        for entry in self.origins:
            entry_scheme, entry_sep, entry_rest = entry.lower().partition("://")
            if entry_sep and entry_scheme == scheme and _matches(given, entry_rest):
                return True
        return False

    def refusal(self, headers: Headers) -> tuple[int, str, str] | None:
        """Why a request is refused (status, code, message), or None if it may proceed."""
        if not self.host_allowed(headers.get("host")):
            return (
                421,
                "invalid_host",
                "this server does not answer to that Host name; add it with --allowed-host "
                "(or use the address the server printed)",
            )
        if not self.origin_allowed(headers.get("origin")):
            return (
                403,
                "invalid_origin",
                "requests from that Origin are refused; add it with --allowed-origin",
            )
        return None


def _matches(given: tuple[str, str | None], entry: str) -> bool:
    wanted = _split_host(entry)
    if wanted is None:
        return False
    name, port = wanted
    if given[0] != name:
        return False
    return port in (None, "*") or given[1] == port


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def deny_websocket(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse a websocket handshake with an HTTP status (and a JSON body when the server can)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, code, message))
    else:
        await websocket.close(code=1008)


class HostGuard:
    """ASGI middleware: refuse every HTTP request and websocket whose Host or Origin is not allowed."""

    def __init__(self, app: ASGIApp, rules: HostRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.rules.refusal(Headers(scope=scope))
            if refusal is not None:
                if scope["type"] == "http":
                    await error_response(*refusal)(scope, receive, send)
                else:
                    await deny_websocket(WebSocket(scope, receive, send), *refusal)
                return
        await self.app(scope, receive, send)


__all__ = ["LOOPBACK_NAMES", "HostGuard", "HostRules", "deny_websocket", "error_response", "host_entry"]
