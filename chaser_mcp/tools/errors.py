"""Turn API failures into the one sentence a model reads: what went wrong, and what to do next.

Every message names the API's error code and HTTP status when there was one, so a
model (or the person reading over its shoulder) can tell a bad id from an outage.
Messages are built from typed fields only, never from request headers, so the API
key cannot leak through them.
"""

from __future__ import annotations

from ..api import (
    APIStatusError,
    AuthenticationError,
    ChaserError,
    InvalidResponse,
    RateLimited,
    RequestTimeout,
    ServerError,
    SessionNotFound,
    SessionNotOpen,
    TransportError,
    redact_url,
)

__all__ = ["MISSING_KEY", "explain"]

MISSING_KEY = (
    "No Chaser API key is configured: set CHASER_KEY in the MCP server's environment "
    "(see the README's client snippets) and restart the server, "
    "or start it with --local to use local Chromium sessions without an account."
)


def _status(exc: APIStatusError) -> str:
    return f"HTTP {exc.status}" + (f" {exc.code}" if exc.code else "")


def explain(exc: ChaserError, *, session_id: str | None = None, base_url: str = "") -> str:
    """One actionable sentence for a failed API call."""
    subject = f"Session {session_id}" if session_id else "The request"
    if isinstance(exc, AuthenticationError):
        if exc.code == "missing_api_key":
            return MISSING_KEY
        return (
            f"The Chaser API refused the API key ({_status(exc)}: {exc.message}). "
            "Check that CHASER_KEY holds a valid, unrevoked key, then try again."
        )
    if isinstance(exc, SessionNotFound):
        return (
            f"{subject} was not found ({_status(exc)}): it does not exist or belongs to another "
            "workspace. Check the id with list_sessions."
        )
    if isinstance(exc, SessionNotOpen):
        return (
            f"{subject} is not open ({_status(exc)}): it is still starting or has already ended. "
            "Call get_session to see its status."
        )
    if isinstance(exc, RateLimited):
        wait = f"{exc.retry_after:g} s" if exc.retry_after is not None else "a few seconds"
        return f"The Chaser API is rate limiting requests ({_status(exc)}): wait {wait}, then try again."
    if isinstance(exc, ServerError):
        return (
            f"The Chaser API failed ({_status(exc)}: {exc.message}) even after retries. "
            "Try again in a minute; if it persists, check https://chaser.sh for an outage."
        )
    if isinstance(exc, APIStatusError):
        return (
            f"The Chaser API rejected the request ({_status(exc)}: {exc.message}). "
            "Fix the arguments and try again."
        )
    if isinstance(exc, RequestTimeout):
        return (
            f"The Chaser API did not answer in time ({exc}). Try again; if it keeps happening, "
            "raise CHASER_TIMEOUT."
        )
    if isinstance(exc, TransportError):
        where = f" at {redact_url(base_url)}" if base_url else ""  # never the URL's user:password
        return (
            f"Could not reach the Chaser API{where} ({exc}). Check the network and CHASER_BASE_URL, "
            "then try again."
        )
    if isinstance(exc, InvalidResponse):
        return f"The Chaser API sent an answer that could not be read ({exc}). Try again."
    return f"The Chaser API call failed ({exc})."
