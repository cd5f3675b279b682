"""Run as another local user against a local API: what can it reach? (stdlib only, no project imports)

Usage: python3 local_attacker.py '<json plan>'; prints one JSON object with what happened.
The plan names TCP ports to try, websocket and page URLs (without their tokens) and the API.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return True
    except OSError:
        return False


def websocket_status(url: str) -> int:
    """The HTTP status a websocket handshake to ``url`` gets (101 means it was accepted)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request.encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def http_status(url: str, method: str = "GET", key: str | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def cdp_urls_in_command_lines() -> int:
    """How many readable process command lines carry a CDP token (none should)."""
    found = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    found += b"/cdp?token=" in handle.read()
            except OSError:
                pass
    return found


def main() -> None:
    plan = json.loads(sys.argv[1])
    report = {
        "uid": os.getuid(),
        "open_ports": [port for port in plan["ports"] if port_open(port)],
        "cdp_without_token": websocket_status(plan["cdp_url"]),
        "cdp_with_wrong_token": websocket_status(plan["cdp_url"] + "?token=" + "A" * 43),
        "preview_page_without_token": http_status(plan["preview_url"]),
        "preview_socket_without_token": websocket_status(plan["preview_socket_url"]),
        "create_with_a_guessed_key": http_status(plan["api_url"] + "/v1/sessions", "POST", "sk-guessed"),
        "list_without_a_key": http_status(plan["api_url"] + "/v1/sessions"),
        "tokens_in_command_lines": cdp_urls_in_command_lines(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
