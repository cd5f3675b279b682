"""``chaser-mcp local-api [--host H] [--port N] [--max-sessions N]``: serve the local API.

Prints ``CHASER_BASE_URL=<url>`` on stdout once it accepts requests (scripts and tests
read that line). The ``chaser-mcp local-api`` command is the user-facing way in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)

    def ready(server: LocalAPIServer) -> None:
        print(f"CHASER_BASE_URL={server.base_url}", flush=True)

    asyncio.run(
        serve_local_api(
            args.host,
            args.port,
            api_key=os.environ.get("CHASER_LOCAL_KEY") or None,
            log_level=args.log_level,
            on_ready=ready,
            max_sessions=args.max_sessions,
            base_dir=args.base_dir,
        )
    )


if __name__ == "__main__":
    main()
