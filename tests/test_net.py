"""One loopback rule for every caller (the MCP server's bind check, the CDP client, the local API)."""

from __future__ import annotations

import pytest

from chaser_mcp._net import is_loopback


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LOCALHOST", "::1", "[::1]"]
)
def test_names_and_addresses_of_this_machine_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "128.0.0.1", "10.0.0.1", "example.com", "localhost.example.com", "evil.localhost", ""],
)
def test_anything_else_is_not_loopback(host: str) -> None:
    assert not is_loopback(host)
