"""A typed async client for the Chaser Sessions API. It knows nothing about MCP."""

from ._client import DEFAULT_BASE_URL, SESSION_ID_PATTERN, ChaserClient, check_session_id, redact_url
from ._errors import (
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
)
from ._models import PreviewToken, Session, SessionPage

__all__ = [
    "DEFAULT_BASE_URL",
    "SESSION_ID_PATTERN",
    "APIStatusError",
    "AuthenticationError",
    "ChaserClient",
    "ChaserError",
    "InvalidResponse",
    "PreviewToken",
    "RateLimited",
    "RequestTimeout",
    "ServerError",
    "Session",
    "SessionNotFound",
    "SessionNotOpen",
    "SessionPage",
    "TransportError",
    "check_session_id",
    "redact_url",
]
