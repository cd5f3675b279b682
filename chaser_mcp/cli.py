"""Command line: flags and environment into one Settings, then the chosen transport.

This is the only place that decides how the server is served.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio

from . import __version__
from .config import Settings, SettingsError
from .conversations import Conversations
from .server import ServerState, build_server, make_client

if TYPE_CHECKING:
    from .store import SessionJournal

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
        "--auth-token",
        help="bearer token callers must send; required off loopback. A flag is visible to every local "
        "user in the process list (/proc/<pid>/cmdline): prefer CHASER_AUTH_TOKEN or --auth-token-file",
    )
    parser.add_argument(
        "--auth-token-file",
        metavar="PATH",
        help="read the bearer token from this file once at start (CHASER_AUTH_TOKEN_FILE)",
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
        help="extra Host header value to accept, e.g. mcp.example.com:443, or '*' for any (the Origin "
        "check still applies) (repeatable; CHASER_ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--max-connections-per-caller",
        type=int,
        help="with --multi-tenant: open MCP sessions plus SSE streams one key may hold "
        "(CHASER_MAX_CONNECTIONS_PER_CALLER; 32)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        help="extra Origin to accept (repeatable; CHASER_ALLOWED_ORIGINS)",
    )
    parser.add_argument("--journal", help="crash journal path, or 'off' (CHASER_JOURNAL)")
    parser.add_argument(
        "--local",
        action="store_true",
        default=None,
        help="no account needed: serve sessions from real headless Chromium on this machine (CHASER_LOCAL)",
    )
    parser.add_argument(
        "--max-sessions", type=int, help="with --local: browsers open at once (CHASER_LOCAL_MAX_SESSIONS; 3)"
    )
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
        auth_token_file=args.auth_token_file,
        max_connections_per_caller=args.max_connections_per_caller,
        multi_tenant=args.multi_tenant,
        session_idle_timeout=args.session_idle_timeout,
        lease_seconds=args.lease,
        allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None,
        allowed_origins=tuple(args.allowed_origin) if args.allowed_origin else None,
        journal_path=args.journal if args.journal and args.journal.lower() != "off" else None,
        journal_enabled=False if args.journal and args.journal.lower() == "off" else None,
        local=args.local,
        local_max_sessions=args.max_sessions,
    )


def configure_logging(level: str) -> None:
    # stdout carries the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=level, format="chaser-mcp %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx2", "httpcore2", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def open_journal(settings: Settings) -> SessionJournal | None:
    if not settings.journal_enabled:
        return None
    from .store import SessionJournal

    return SessionJournal(settings.journal_path)


async def run(settings: Settings) -> None:
    if not settings.local:
        await serve(settings)
        return
    from .local import running_local_api

    # The embedded API listens on loopback only and takes a key minted for this process alone.
    local_key = secrets.token_urlsafe(24)
    async with running_local_api(api_key=local_key, max_sessions=settings.local_max_sessions) as local:
        log.info(
            "local backend on %s (headless Chromium, at most %d sessions)",
            local.base_url,
            settings.local_max_sessions,
        )
        # Local browsers die with this process, so there is nothing for a crash journal to reap.
        await serve(
            settings.with_(base_url=local.base_url, api_key=local_key, journal_enabled=False),
            closers=[local.backend.aclose],
        )


async def serve(settings: Settings, closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
    journal = open_journal(settings)
    conversations = Conversations(
        cleanup_timeout=settings.cleanup_timeout, sweep_interval=settings.sweep_interval, store=journal
    )
    state = ServerState(settings, make_client(settings), conversations, closers=list(closers))
    if not settings.api_key and not settings.multi_tenant:
        log.warning(
            "CHASER_KEY is not set: every tool will answer with an error saying how to set it "
            "(or restart with --local to use local Chromium sessions)"
        )
    async with anyio.create_task_group() as tg:
        if journal is not None:
            from .store import reap_periodically

            # Sessions left behind by a server that died without cleaning up (kill -9, OOM).
            tg.start_soon(
                partial(reap_periodically, journal, state.clients_by_key_id, timeout=settings.cleanup_timeout)
            )
        if settings.transport == "stdio":
            from .transports.stdio import serve_stdio

            await serve_stdio(state, build_server(state))
        else:
            from .transports.http import serve_http

            await serve_http(state)
        tg.cancel_scope.cancel()
    if journal is not None:
        await journal.aclose()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["local-api"]:
        from .local.__main__ import main as local_api_main

        local_api_main(arguments[1:], prog="chaser-mcp local-api")
        return
    args = parse_args(arguments)
    try:
        settings = load_settings(args, os.environ if env is None else env)
    except SettingsError as exc:
        print(f"chaser-mcp: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    anyio.run(run, settings)
