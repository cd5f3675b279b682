"""``chaser-mcp local-api [--host H] [--port N] [--max-sessions N]``: serve the local API.

Prints ``CHASER_BASE_URL=<url>`` on stdout once it accepts requests (scripts and tests
read that line), preceded by ``CHASER_KEY=<key>`` when it minted the key itself. The
``chaser-mcp local-api`` command is the user-facing way in.

Every option is declared once, in ``LocalAPISettings`` below (flags and ``CHASER_LOCAL_*``
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
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ..config import MAX_SESSIONS, DeclaredSettings, Names, SettingsError, option, warm_browsers_option
from .app import LocalAPIServer, serve_local_api


class LocalAPISettings(DeclaredSettings):
    """The standalone local API's configuration (``chaser-mcp local-api``)."""

    # Declared here, not in chaser_mcp.config, so building it stays off the MCP server's start path.
    model_config = SettingsConfigDict(env_prefix="CHASER_LOCAL_")

    key: SecretStr | None = option(
        None, "API key callers must send.", flag=None, shown_default="a new one per run, printed on stdout"
    )
    host: str = option("127.0.0.1", "Address to listen on.")
    port: int = option(8932, "Port to listen on; 0 picks a free one.", ge=0, le=65535)
    max_sessions: int = option(3, "Browsers open at once.", ge=1, le=MAX_SESSIONS)
    warm_browsers: int = warm_browsers_option()
    base_dir: Path | None = option(None, "Where browser profiles go.", shown_default="the system temp dir")
    allowed_hosts: Names = option(
        (),
        "Also answer requests with this Host header (loopback names always work; '*' turns the Host check "
        "off, the Origin check stays).",
        flag="--allowed-host",
        shown_default="loopback only",
    )
    allowed_origins: Names = option(
        (), "Also accept browser requests from this Origin.", flag="--allowed-origin", shown_default="none"
    )
    public_url: str | None = option(
        None,
        "The base URL clients reach this server at (behind a proxy); cdp_url and live-view links use it.",
        shown_default="the address the connection came in on",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = option("warning", "Log level.")
    chrome: str | None = option(
        None,
        "Chromium binary (a path or a name on PATH).",
        env="CHASER_CHROME",
        shown_default="found on PATH",
    )

    @property
    def api_key(self) -> str | None:
        return self.key.get_secret_value() if self.key else None


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
                warm_browsers=settings.warm_browsers,
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
