"""Command line: flags and environment into one Settings, then the chosen transport.

This is the only place that decides how the server is served.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from . import __version__, user_agent
from ._ids import key_fingerprint
from .api import ChaserClient
from .config import Settings, SettingsError

if TYPE_CHECKING:
    from .server import ServerState
    from .store import OwnershipStore
    from .store.ownership import JournalEntry

log = logging.getLogger("chaser_mcp")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chaser-mcp",
        description="MCP server for Chaser browser sessions. Configuration comes from CHASER_* "
        "environment variables; flags override them. `chaser-mcp local-api --help` for the local API.",
    )
    parser.add_argument("--version", action="version", version=f"chaser-mcp {__version__}")
    Settings.add_flags(parser)
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    return Settings.from_args(args, env)


def configure_logging(level: str) -> None:
    # stdout carries the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=level, format="chaser-mcp %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx2", "httpcore2", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def open_journal(settings: Settings) -> OwnershipStore | None:
    """The store of owned sessions: Redis when CHASER_STORE names one, else the SQLite crash journal."""
    if settings.store is not None:
        from .store.redis_store import RedisStore
        from .store.sealing import StateCipher

        secret = settings.state_secret.get_secret_value() if settings.state_secret else None
        return RedisStore(
            settings.store,
            prefix=settings.store_prefix,
            heartbeat=settings.store_heartbeat,
            cipher=StateCipher(secret) if secret else None,
        )
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
    executable = shutil.which(settings.chrome) if settings.chrome else None
    async with running_local_api(
        api_key=local_key,
        max_sessions=settings.local_max_sessions,
        executable=executable,
        warm_browsers=settings.local_warm_browsers,
    ) as local:
        log.info(
            "local backend on %s (headless Chromium, at most %d sessions, %d warm)",
            local.base_url,
            settings.local_max_sessions,
            settings.local_warm_browsers,
        )
        # Local browsers die with this process, so there is nothing for a crash journal to reap.
        await serve(
            settings.with_(base_url=local.base_url, api_key=local_key, journal_enabled=False, store=None),
            closers=[local.backend.aclose],
        )


def make_client(settings: Settings) -> ChaserClient:
    """The one API client of this process."""
    return ChaserClient(
        settings.api_key, base_url=settings.base_url, timeout=settings.timeout, user_agent=user_agent()
    )


async def serve(settings: Settings, closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
    client = make_client(settings)
    async with anyio.create_task_group() as preparing:
        # Its HTTP stack and TLS trust store load in a worker thread while the MCP SDK imports.
        preparing.start_soon(client.prepare)
        await anyio.lowlevel.checkpoint()  # let it reach the thread before the import holds the loop
        # Imported here, not at the top: with --local the backend (and its warm browser) starts
        # first, so Chromium boots while the SDK, the slowest import by far, loads.
        from .conversations import Conversations
        from .server import ServerState, build_server

    journal = open_journal(settings)
    conversations = Conversations(
        cleanup_timeout=settings.cleanup_timeout,
        sweep_interval=settings.sweep_interval,
        store=journal,
        # Only HTTP and SSE conversations are graceful; on stdio the one conversation is the process.
        reconnect_grace=settings.reconnect_grace,
    )
    state = ServerState(settings, client, conversations, closers=list(closers))
    if settings.store is not None:
        from .store import SharedOwnership

        assert isinstance(journal, SharedOwnership)
        state.store = journal
    if not settings.api_key and not settings.multi_tenant:
        log.warning(
            "CHASER_KEY is not set: every tool will answer with an error saying how to set it "
            "(or restart with --local to use local Chromium sessions)"
        )
    async with anyio.create_task_group() as tg:
        if journal is not None:
            tg.start_soon(keep_reaping, journal, state)
        if settings.transport == "stdio":
            from .transports.stdio import serve_stdio

            await serve_stdio(state, build_server(state))
        else:
            from .transports.http import serve_http

            await serve_http(state)
        tg.cancel_scope.cancel()
    if journal is not None:
        await journal.aclose()


async def keep_reaping(journal: OwnershipStore, state: ServerState) -> None:
    """Delete what dead owners left behind (kill -9, OOM), now and periodically, until cancelled."""
    from .store import reap_periodically

    settings = state.settings
    if settings.store is None:
        await reap_periodically(
            journal, state.clients_by_key_id, interval=300.0, timeout=settings.cleanup_timeout
        )
        return
    from .store.redis_store import REAP_BEATS, RedisStore

    assert isinstance(journal, RedisStore)
    store = journal

    async def open_sealed(entry: JournalEntry) -> ChaserClient | None:
        # A key the replicas sealed with their shared secret: a dead replica's caller's, multi-tenant.
        key = await store.sealed_key(entry.session_id)
        if key is None or key_fingerprint(key) != entry.key_id:
            return None
        return state.client.for_key(key)

    async with anyio.create_task_group() as tg:
        # Replicas: this one's heartbeat, and reaps often enough that a dead one's sessions go within
        # a minute (three missed beats, then at most one interval), and an expired lease's or
        # grace's within one sweep interval, as on a single server.
        tg.start_soon(store.keep_alive)
        await reap_periodically(
            store,
            state.clients_by_key_id,
            interval=min(settings.sweep_interval, settings.store_heartbeat * REAP_BEATS),
            timeout=settings.cleanup_timeout,
            open_key=open_sealed,
        )


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


def entry_point() -> None:
    """``chaser-mcp`` and ``python -m chaser_mcp``: ``main``, then a prompt exit."""
    main()
    # Everything is closed by now (sessions deleted, browsers stopped). The interpreter's teardown would
    # run its collector over every object the MCP SDK built at import (~600 pydantic models): ~260 ms of
    # each shutdown, measured; frozen objects are skipped. atexit handlers and stream flushes still run.
    gc.freeze()
