"""Command line: flags and environment into one Settings, then the chosen transport.

This is the only place that decides how the server is served.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import anyio

from . import __version__
from .conversations import Conversations
from .server import ServerState, build_server, make_client
from .settings import Settings, SettingsError

log = logging.getLogger("chaser_mcp")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chaser-mcp",
        description="MCP server for Chaser browser sessions. Configuration comes from CHASER_* "
        "environment variables; flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"chaser-mcp {__version__}")
    parser.add_argument("--transport", choices=["stdio"], default="stdio", help="how clients connect")
    parser.add_argument("--base-url", help="API root (CHASER_BASE_URL)")
    parser.add_argument("--timeout", type=float, help="seconds for one API request (CHASER_TIMEOUT)")
    parser.add_argument(
        "--ready-timeout", type=float, help="seconds create_session waits (CHASER_READY_TIMEOUT)"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (CHASER_LOG_LEVEL)")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    return Settings.from_env(
        env,
        base_url=args.base_url,
        timeout=args.timeout,
        ready_timeout=args.ready_timeout,
        log_level=args.log_level.upper() if args.log_level else None,
    )


def configure_logging(level: str) -> None:
    # stdout carries the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=level, format="chaser-mcp %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


async def run(settings: Settings) -> None:
    client = make_client(settings)
    state = ServerState(settings, client, Conversations(cleanup_timeout=settings.cleanup_timeout))
    if not settings.api_key:
        log.warning("CHASER_KEY is not set: every tool will answer with an error saying how to set it")
    from .stdio import serve_stdio

    await serve_stdio(state, build_server(state))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = load_settings(args, os.environ if env is None else env)
    except SettingsError as exc:
        print(f"chaser-mcp: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    anyio.run(run, settings)
