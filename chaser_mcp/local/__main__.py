"""``chaser-mcp local-api [--host H] [--port N] [--max-sessions N]``: serve the local API.

Prints ``CHASER_BASE_URL=<url>`` on stdout once it accepts requests (scripts and tests
read that line), preceded by ``CHASER_KEY=<key>`` when it minted the key itself. The
``chaser-mcp local-api`` command is the user-facing way in.

Every option is declared in ``chaser_mcp.config.LocalAPISettings`` (flags and ``CHASER_LOCAL_*``
variables). The API key comes from ``CHASER_LOCAL_KEY``; without it a random one is minted per run
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
import shutil
import sys

from ..config import LocalAPISettings, SettingsError
from .app import LocalAPIServer, serve_local_api


def main(argv: list[str] | None = None, prog: str = "python -m chaser_mcp.local") -> None:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the Chaser Sessions API on this machine, backed by real headless Chromium. "
        "Configuration comes from CHASER_LOCAL_* environment variables; flags override them.",
    )
    LocalAPISettings.add_flags(parser)
    args = parser.parse_args(argv)
    try:
        settings = LocalAPISettings.from_args(args, os.environ)
    except SettingsError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    api_key = settings.api_key or secrets.token_urlsafe(24)
    executable = shutil.which(settings.chrome) if settings.chrome else None

    def ready(server: LocalAPIServer) -> None:
        if settings.key is None:
            print(f"CHASER_KEY={api_key}", flush=True)
        print(f"CHASER_BASE_URL={server.base_url}", flush=True)

    try:
        asyncio.run(
            serve_local_api(
                settings.host,
                settings.port,
                api_key=api_key,
                log_level=settings.log_level,
                on_ready=ready,
                max_sessions=settings.max_sessions,
                base_dir=settings.base_dir,
                allowed_hosts=settings.allowed_hosts,
                allowed_origins=settings.allowed_origins,
                public_base_url=settings.public_url,
                executable=executable,
            )
        )
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")


if __name__ == "__main__":
    main()
