"""Network leaf helpers, importable from every layer."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) names this machine only.

    One rule for every caller: ``localhost``, all of 127.0.0.0/8 and ``::1``.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":  # not *.localhost: whether that resolves to loopback depends on the resolver
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
