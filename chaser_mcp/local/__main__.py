"""``chaser-mcp local-api [--host H] [--port N] [--max-sessions N]``: serve the local API.

Prints ``CHASER_BASE_URL=<url>`` on stdout once it accepts requests (scripts and tests
read that line), preceded by ``CHASER_KEY=<key>`` when it minted the key itself. The
``chaser-mcp local-api`` command is the user-facing way in.

The API key comes from ``CHASER_LOCAL_KEY``; without it a random one is minted per run
and printed on stdout (which only the launching user sees): a loopback port is open to
every local user, and whoever holds a key can drive the browsers, which run as this
process's user.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path

from .app import LocalAPIServer, serve_local_api


def main(argv: list[str] | None = None, prog: str = "python -m chaser_mcp.local") -> None:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the Chaser Sessions API on this machine, backed by real headless Chromium.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8932, help="0 picks a free port (default 8932)")
    parser.add_argument("--max-sessions", type=int, default=3)
    parser.add_argument("--base-dir", type=Path, default=None, help="where browser profiles go (system temp)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="also answer requests with this Host header (loopback names always work; '*' turns the "
        "Host check off, the Origin check stays); repeatable",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="SCHEME://NAME[:PORT]",
        help="also accept browser requests from this Origin; repeatable",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the base URL clients reach this server at (behind a proxy); cdp_url and live-view links "
        "are built on it (default: the address the connection came in on)",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    configured_key = os.environ.get("CHASER_LOCAL_KEY") or None
    api_key = configured_key or secrets.token_urlsafe(24)

    def ready(server: LocalAPIServer) -> None:
        if configured_key is None:
            print(f"CHASER_KEY={api_key}", flush=True)
        print(f"CHASER_BASE_URL={server.base_url}", flush=True)

    try:
        asyncio.run(
            serve_local_api(
                args.host,
                args.port,
                api_key=api_key,
                log_level=args.log_level,
                on_ready=ready,
                max_sessions=args.max_sessions,
                base_dir=args.base_dir,
                allowed_hosts=args.allowed_host,
                allowed_origins=args.allowed_origin,
                public_base_url=args.public_url,
            )
        )
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")


if __name__ == "__main__":
    main()
