"""Errors raised by the Chaser API client.

The tree keeps "no answer came" apart from "the API answered with an error"::

    ChaserError
    ├── TransportError            no usable HTTP response (connect, read, write)
    │   └── RequestTimeout        a request ran past CHASER_TIMEOUT
    ├── InvalidResponse           the API answered 2xx with a body we cannot read
    └── APIStatusError            the API answered 4xx/5xx: status, code, message
        ├── AuthenticationError   401 / 403: the key is missing, wrong or revoked
        ├── SessionNotFound       404 session_not_found
        ├── SessionNotOpen        409 session_not_open
        ├── RateLimited           429, with the Retry-After the API asked for
        └── ServerError           5xx

Messages never contain the API key: they are built from the method, the path and
what the API said, never from request headers.
"""

from __future__ import annotations


class ChaserError(Exception):
    """Base class for every error the API client raises."""


class TransportError(ChaserError):
    """No usable response arrived: the connection failed or broke."""


class RequestTimeout(TransportError):
    """The API did not answer within the configured timeout."""


class InvalidResponse(ChaserError):
    """The API answered with a success status but a body that does not parse."""


class APIStatusError(ChaserError):
    """The API answered with an error status.

    ``code`` is the API's machine-readable error code (``session_not_found`` …) or
    ``None`` when the body carried none (a proxy's HTML page, an empty body).
    """

    def __init__(self, status: int, code: str | None, message: str, *, method: str, path: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.method} {self.path} -> HTTP {self.status}{code}: {self.message}"


class AuthenticationError(APIStatusError):
    """401/403: the key was refused."""


class SessionNotFound(APIStatusError):
    """404: no such session in this workspace."""


class SessionNotOpen(APIStatusError):
    """409: the session is not ready (still creating, or already closed)."""


class RateLimited(APIStatusError):
    """429: too many requests; ``retry_after`` is the wait the API asked for, in seconds."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        method: str,
        path: str,
        retry_after: float | None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status, code, message, method=method, path=path)


class ServerError(APIStatusError):
    """5xx: the API (or a proxy in front of it) failed."""
