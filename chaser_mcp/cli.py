"""Command line: flags and environment into one Settings, then the chosen transport.

This is the only place that decides how the server is served.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio

from . import __version__
from .conversations import Conversations
from .server import ServerState, build_server, make_client
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .journal import SessionJournal

log = logging.getLogger("chaser_mcp")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chaser-mcp",
        description="MCP server for Chaser browser sessions. Configuration comes from CHASER_* "
        "environment variables; flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"chaser-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "http", "sse"],
        help="how clients connect (CHASER_TRANSPORT; default stdio)",
    )
    parser.add_argument("--host", help="address to listen on for http/sse (CHASER_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port for http/sse (CHASER_PORT; default 8931)")
    parser.add_argument(
        "--auth-token", help="bearer token callers must send (CHASER_AUTH_TOKEN); required off loopback"
    )
    parser.add_argument(
        "--multi-tenant",
        action="store_true",
        default=None,
        help="hold no key: each caller sends its own Chaser key as its bearer token (CHASER_MULTI_TENANT)",
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=float,
        help="seconds before an abandoned Mcp-Session-Id is cleaned up (CHASER_SESSION_IDLE_TIMEOUT; 1800)",
    )
    parser.add_argument(
        "--lease",
        type=float,
        help="seconds a stateless caller may idle before cleanup (CHASER_LEASE_SECONDS; 900)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        help="extra Host header value to accept, e.g. mcp.example.com:443 (repeatable; CHASER_ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        help="extra Origin to accept (repeatable; CHASER_ALLOWED_ORIGINS)",
    )
    parser.add_argument("--journal", help="crash journal path, or 'off' (CHASER_JOURNAL)")
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
        transport=args.transport,
        host=args.host,
        port=args.port,
        auth_token=args.auth_token,
        multi_tenant=args.multi_tenant,
        session_idle_timeout=args.session_idle_timeout,
        lease_seconds=args.lease,
        allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None,
        allowed_origins=tuple(args.allowed_origin) if args.allowed_origin else None,
        journal_path=args.journal if args.journal and args.journal.lower() != "off" else None,
        journal_enabled=False if args.journal and args.journal.lower() == "off" else None,
    )


def configure_logging(level: str) -> None:
    # stdout carries the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=level, format="chaser-mcp %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def open_journal(settings: Settings) -> SessionJournal | None:
    if not settings.journal_enabled:
        return None
    from .journal import SessionJournal

    return SessionJournal(settings.journal_path)


async def run(settings: Settings) -> None:
    journal = open_journal(settings)
    conversations = Conversations(
        cleanup_timeout=settings.cleanup_timeout, sweep_interval=settings.sweep_interval, store=journal
    )
    state = ServerState(settings, make_client(settings), conversations)
    if not settings.api_key and not settings.multi_tenant:
        log.warning("CHASER_KEY is not set: every tool will answer with an error saying how to set it")
    async with anyio.create_task_group() as tg:
        if journal is not None:
            from .journal import reap_periodically

            # Sessions left behind by a server that died without cleaning up (kill -9, OOM).
            tg.start_soon(
                partial(reap_periodically, journal, state.clients_by_key_id, timeout=settings.cleanup_timeout)
            )
        if settings.transport == "stdio":
            from .stdio import serve_stdio

            await serve_stdio(state, build_server(state))
        else:
            from .http import serve_http

            await serve_http(state)
        tg.cancel_scope.cancel()
    if journal is not None:
        await journal.aclose()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = load_settings(args, os.environ if env is None else env)
    except SettingsError as exc:
        print(f"chaser-mcp: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    anyio.run(run, settings)
