"""Which requests may come in at all: the Host and Origin allow-lists (DNS-rebinding defence)."""

from __future__ import annotations

from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from ..config import Settings

__all__ = ["HostOriginPolicy", "transport_security"]

LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    """Exact match, or ``name:*`` matching ``name:<port>``."""
    for pattern in patterns:
        if value == pattern:
            return True
        if pattern.endswith(":*"):
            base, _, port = value.rpartition(":")
            if base == pattern[:-2] and port.isdigit():
                return True
    return False


class HostOriginPolicy:
    """DNS-rebinding defence: the Host and Origin allow-lists, each checked on its own.

    ``--allowed-host '*'`` (behind a proxy that rewrites Host) turns off only the Host
    check; a browser page from a foreign Origin is still refused (``--allowed-origin '*'``
    is the separate, explicit way to accept any).
    """

    def __init__(self, settings: Settings) -> None:
        self._any_host = "*" in settings.allowed_hosts
        self._any_origin = "*" in settings.allowed_origins
        self._hosts = (*LOOPBACK_HOSTS, *settings.allowed_hosts)
        self._origins = (*LOOPBACK_ORIGINS, *settings.allowed_origins)

    def host_refusal(self, scope: Scope) -> Response | None:
        """The Host check alone (the live viewer applies its own, stricter, Origin rule)."""
        if not self._any_host and not _matches(Headers(scope=scope).get("host", ""), self._hosts):
            return Response("Invalid Host header", status_code=421)
        return None

    def refusal(self, scope: Scope) -> Response | None:
        if (refused := self.host_refusal(scope)) is not None:
            return refused
        origin = Headers(scope=scope).get("origin")
        # Origin is absent on same-origin and non-browser requests.
        if origin and not self._any_origin and not _matches(origin, self._origins):
            return Response("Invalid Origin header", status_code=403)
        return None


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The same allow-lists for the SDK's own check, behind the gate's (which alone applies the
    Origin list when the Host check is off: the SDK can only switch both off together)."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in settings.allowed_hosts,
        allowed_hosts=[*LOOPBACK_HOSTS, *settings.allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *settings.allowed_origins],
    )
