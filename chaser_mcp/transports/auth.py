"""Who is calling: a Starlette authentication backend that turns a request into a principal.

Single-tenant, the server holds ``CHASER_KEY`` and callers may have to show an inbound
bearer token; multi-tenant, each caller's bearer *is* its Chaser key, checked against
the API once (concurrent checks of one key share that call) and cached briefly in
bounded caches. The principal is a hash of the key, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field

import anyio
from cachetools import TTLCache
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.authentication import AuthenticationError as Unauthenticated
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from .._ids import key_fingerprint
from ..api import AuthenticationError, ChaserClient, ChaserError
from ..config import Settings
from ..server import ServerState
from ..store import SharedOwnership

__all__ = ["Caller", "CallerBackend", "KeyVerifier", "refusal_response"]

log = logging.getLogger("chaser_mcp.transports.auth")


class Caller(AuthenticatedUser):
    """The authenticated caller, as the SDK's own transports understand it (they refuse, 404,
    any request for a session or stream made under another principal: a second lock behind the
    gate's own), plus the API client view it acts with."""

    def __init__(self, principal: str, api: ChaserClient) -> None:
        super().__init__(AccessToken(token=principal, client_id=principal, scopes=[]))
        self.principal = principal
        self.api = api  # multi-tenant: a view that sends the caller's own key


class Refused(Unauthenticated):
    """The request is refused before it reaches the SDK; ``response`` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def refusal_response(conn: HTTPConnection, exc: Unauthenticated) -> Response:
    """``AuthenticationMiddleware``'s ``on_error``: the response the backend chose."""
    if isinstance(exc, Refused):
        return exc.response
    return _unauthorized("a valid bearer token is required")


# -- the key verifier -----------------------------------------------------------------------------


@dataclass
class _PendingCheck:
    done: anyio.Event = field(default_factory=anyio.Event)
    valid: bool | None = None
    error: ChaserError | None = None


class KeyVerifier:
    """Checks a caller's Chaser key against the API once, then trusts the answer briefly.

    Both caches are bounded (a flood of made-up keys costs upstream calls, never memory),
    and refused keys live in their own smaller cache, so they cannot evict good ones.
    Concurrent checks of one key share a single upstream call. With replicas on a shared store
    (``shared``), a verdict one replica got is every replica's for as long (kept there by the key's
    SHA-256, never the key), so a caller spread over N replicas costs one upstream check, not N.
    """

    def __init__(
        self,
        client: ChaserClient,
        *,
        shared: SharedOwnership | None = None,
        ttl: float = 60.0,
        negative_ttl: float = 10.0,
        maxsize: int = 10_000,
        negative_maxsize: int = 1_000,
    ) -> None:
        self._client = client
        self._shared = shared
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._valid: TTLCache[bytes, bool] = TTLCache(maxsize, ttl)
        self._invalid: TTLCache[bytes, bool] = TTLCache(negative_maxsize, negative_ttl)
        self._checking: dict[bytes, _PendingCheck] = {}

    def __len__(self) -> int:
        """Keys remembered or being checked right now."""
        return len(self._valid) + len(self._invalid) + len(self._checking)

    async def is_valid(self, api_key: str) -> bool:
        # The full digest, not the 64-bit fingerprint: a cache hit grants access.
        digest = hashlib.sha256(api_key.encode()).digest()
        while True:
            if digest in self._valid:
                return True
            if digest in self._invalid:
                return False
            pending = self._checking.get(digest)
            if pending is None:
                return await self._check(digest, api_key)
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.valid is not None:
                return pending.valid
            # The request that was checking went away before the answer came: check again.

    async def _check(self, digest: bytes, api_key: str) -> bool:
        pending = self._checking[digest] = _PendingCheck()
        try:
            verdict = await self._shared.key_verdict(digest.hex()) if self._shared is not None else None
            if verdict is None:
                verdict = await self._ask_api(digest, api_key)
            pending.valid = verdict
            (self._valid if verdict else self._invalid)[digest] = True
        except ChaserError as exc:
            pending.error = exc
            raise
        finally:
            del self._checking[digest]
            pending.done.set()
        return pending.valid

    async def _ask_api(self, digest: bytes, api_key: str) -> bool:
        try:
            await self._client.for_key(api_key).list_sessions(limit=1)
            valid = True
        except AuthenticationError:
            valid = False
        if self._shared is not None:
            await self._shared.remember_key(digest.hex(), valid, self._ttl if valid else self._negative_ttl)
        return valid


# -- the backend ----------------------------------------------------------------------------------


class _MalformedToken(Exception):
    """The Authorization header carries a bearer token no key or token can ever equal."""


def _bearer(conn: HTTPConnection) -> str | None:
    """The bearer token of a request, None without one; raises ``_MalformedToken`` for a token
    with characters outside printable ASCII (no key has them, and they cannot be sent on)."""
    for name, value in conn.scope.get("headers", []):
        if name == b"authorization":
            raw: bytes = value
            scheme, _, token = raw.partition(b" ")
            token = token.strip()
            if scheme.lower() != b"bearer" or not token:
                return None
            if not all(0x21 <= byte <= 0x7E for byte in token):
                raise _MalformedToken
            return token.decode("ascii")
    return None


def _unauthorized(description: str) -> Response:
    return JSONResponse(
        {"error": {"code": "unauthorized", "message": description}},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="chaser-mcp", error="invalid_token", '
            f'error_description="{description}"'
        },
    )


class CallerBackend(AuthenticationBackend):
    """Authenticates every request to the MCP endpoints as a ``Caller``, or refuses it (401, or
    503 when the API cannot be reached to check a key)."""

    def __init__(self, state: ServerState, settings: Settings) -> None:
        self._state = state
        self._auth_token = settings.auth_token
        self._verifier = KeyVerifier(state.client, shared=state.store) if settings.multi_tenant else None

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Caller]:
        try:
            token = _bearer(conn)
        except _MalformedToken:
            raise Refused(
                _unauthorized("the bearer token may only contain printable ASCII characters")
            ) from None
        if self._verifier is not None:
            return AuthCredentials(), await self._tenant(token, self._verifier)
        if self._auth_token:
            if token is None or not hmac.compare_digest(token.encode(), self._auth_token.encode()):
                raise Refused(_unauthorized("a valid bearer token is required"))
            return AuthCredentials(), Caller("token", self._state.client)
        return AuthCredentials(), Caller("local", self._state.client)

    async def _tenant(self, token: str | None, verifier: KeyVerifier) -> Caller:
        if token is None:
            raise Refused(_unauthorized("send your Chaser API key as 'Authorization: Bearer <key>'"))
        try:
            valid = await verifier.is_valid(token)
        except ChaserError as exc:
            log.warning("could not verify a caller's key: %s", type(exc).__name__)
            raise Refused(
                JSONResponse(
                    {
                        "error": {
                            "code": "upstream_unavailable",
                            "message": "the Chaser API could not be reached to check the key; retry",
                        }
                    },
                    status_code=503,
                )
            ) from None
        if not valid:
            raise Refused(_unauthorized("the Chaser API refused this key"))
        fingerprint = key_fingerprint(token)
        # One view per key, also what the crash reaper deletes this caller's leftovers with.
        api = self._state.clients_by_key_id.setdefault(fingerprint, self._state.client.for_key(token))
        return Caller(f"key:{fingerprint}", api)
