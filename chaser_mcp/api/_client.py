"""The Chaser Sessions API client: one pooled ``httpx2.AsyncClient`` per process.

Retries follow one rule: a request is repeated only when repeating it cannot do
more than the caller asked. GET, DELETE, screenshot and preview-token are safe to
repeat; ``POST /v1/sessions`` is repeated only when the connection was never made,
because any later failure may mean the API already created (and is billing) a
session that the caller never heard of. DELETE also repeats a plain 500: it is
idempotent, and giving up on it is how a paid session outlives its conversation.

Nothing from httpx2 crosses this module's boundary: every transport-level failure
(connect, read, reset, an answer that cannot be decoded) becomes a ``ChaserError``,
so a caller that handles ``ChaserError`` handles every way a request can fail.
Credentials written into the base URL (``https://user:pass@host``) are kept out
of every message, log line and repr, like the API key.

Per request, the client sends an absolute ``httpx2.URL`` built once per path and kept in a small LRU
shared by every ``for_key`` view: letting httpx2 merge a relative path into ``base_url`` parses two URLs
on every call (about two thirds of the CPU of building the request).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, unquote

import anyio.to_thread
import httpx2
from cachetools import LRUCache
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

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

log = logging.getLogger("chaser_mcp.api")
M = TypeVar("M", Session, SessionPage, PreviewToken)

DEFAULT_BASE_URL = "https://api.chaser.sh"
SESSION_ID_PATTERN = r"^sess_[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_RETRYABLE_STATUS = frozenset({502, 503, 504})
_RETRYABLE_DELETE_STATUS = _RETRYABLE_STATUS | {500}
_USERINFO = re.compile(r"//.*@", re.DOTALL)
_CONNECT_FAILURES = (httpx2.ConnectError, httpx2.ConnectTimeout)
# Paths the client has sent to, as absolute URLs: a few per live session, so this bound is never felt.
_URL_CACHE_SIZE = 1024


def check_session_id(session_id: str) -> str:
    """Refuse anything that is not a plain session id, so it can never alter a request path."""
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(
            f"{session_id[:80]!r} is not a session id: ids look like 'sess_019ec0d0-a88a-…' "
            "(letters, digits, '-' and '_' after 'sess_')"
        )
    return session_id


def redact_url(url: str) -> str:
    """``url`` without the credentials it may carry (``https://user:pass@host`` -> ``https://***@host``).

    Everything up to the last ``@`` goes, so a password with a raw ``@`` or ``/`` in it goes too.
    """
    return _USERINFO.sub("//***@", url, count=1)


def _url_secrets(url: str) -> tuple[str, ...]:
    """The pieces of ``url``'s userinfo that must not appear anywhere, longest first."""
    found = _USERINFO.search(url)
    if found is None:
        return ()
    userinfo = found.group(0)[2:-1]
    user, _, password = userinfo.partition(":")
    pieces = {userinfo, user, password, unquote(userinfo), unquote(user), unquote(password)}
    return tuple(sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True))


def _base(url: str) -> httpx2.URL:
    """``url`` as an ``httpx2.AsyncClient`` holds its ``base_url``: with a trailing slash on the path."""
    parsed = httpx2.URL(url)
    return parsed if parsed.raw_path.endswith(b"/") else parsed.copy_with(raw_path=parsed.raw_path + b"/")


class _LazyHttp:
    """The ``httpx2.AsyncClient`` of a ChaserClient and its ``for_key`` views, built on first use.

    Building one imports httpcore2 and loads the TLS trust store (~60 ms): a stdio server should
    not spend that on the event loop before it can answer ``tools/list``, nor on its first call;
    ``ChaserClient.prepare`` builds it in a worker thread meanwhile. The lock makes the two safe.
    """

    def __init__(self, build: Callable[[], httpx2.AsyncClient], client: httpx2.AsyncClient | None) -> None:
        self._build = build
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class ChaserClient:
    """Async client for the Chaser Sessions API.

    Create one per process and share it; ``for_key`` gives a view that sends
    another caller's key over the same connection pool (multi-tenant HTTP).
    """

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_after_cap: float = 20.0,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        user_agent: str = "chaser-mcp",
        transport: httpx2.AsyncBaseTransport | None = None,
        _http: httpx2.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self._max_retries = max_retries
        self._retry_after_cap = retry_after_cap
        self._backoff = wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        self._owns_http = _http is None
        self._base_url = _http.base_url if _http is not None else _base(base_url.rstrip("/"))
        self._secrets = _url_secrets(str(self._base_url))
        self._auth = _auth_header(api_key)
        self._urls: LRUCache[str, httpx2.URL] = LRUCache(_URL_CACHE_SIZE)  # shared with for_key views
        self._http = _LazyHttp(
            lambda: httpx2.AsyncClient(
                base_url=base_url.rstrip("/"),
                timeout=httpx2.Timeout(timeout),
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30),
                headers={"User-Agent": user_agent, "Accept": "application/json"},
                transport=transport,
                follow_redirects=False,
            ),
            _http,
        )
        self.timeout = timeout

    @property
    def base_url(self) -> str:
        """The API root without any credentials it carries: safe to log, show and journal."""
        return redact_url(str(self._base_url))

    def __repr__(self) -> str:
        return f"ChaserClient(base_url={self.base_url!r})"

    @property
    def api_key(self) -> str | None:
        """The key this client sends. Callers must keep it out of logs and results."""
        return self._api_key

    def for_key(self, api_key: str) -> ChaserClient:
        """A client that authenticates as ``api_key`` but shares this client's pool."""
        view = ChaserClient.__new__(ChaserClient)
        view.__dict__.update(self.__dict__)
        view._api_key = api_key
        view._auth = _auth_header(api_key)
        view._owns_http = False
        return view

    async def prepare(self) -> None:
        """Build the HTTP client now, in a worker thread, so the first request does not pay for it."""
        await anyio.to_thread.run_sync(lambda: self._http.client)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the API ----------------------------------------------------------------------------------

    async def create_session(self, *, ttl_seconds: int | None = None, profile: str | None = None) -> Session:
        body: dict[str, Any] = {}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        if profile:
            body["profile"] = profile
        response = await self._request("POST", "/v1/sessions", json=body, repeatable=False)
        return self._parse(Session, response)

    async def list_sessions(self, *, limit: int | None = None, cursor: str | None = None) -> SessionPage:
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        response = await self._request("GET", "/v1/sessions", params=params)
        return self._parse(SessionPage, response)

    async def get_session(self, session_id: str, *, wait: float | None = None) -> Session:
        """The session now; with ``wait``, a server that can may hold the answer while it is creating.

        ``wait`` sends ``Prefer: wait=N`` (RFC 7240; whole seconds, at least 1): the local API holds a
        GET of a ``creating`` session until it settles or N seconds pass, so a caller hears of
        ``ready`` the instant it happens. A server that does not know the preference ignores it
        and answers at once (the cloud does), so a caller must still pace its own polls. The read
        timeout is stretched by the wait, so a held answer is never mistaken for a lost one.
        """
        if wait is None:
            response = await self._request("GET", self._session_path(session_id))
        else:
            seconds = max(1, math.ceil(wait))
            response = await self._request(
                "GET",
                self._session_path(session_id),
                headers={"Prefer": f"wait={seconds}"},
                timeout=self.timeout + seconds,
            )
        return self._parse(Session, response)

    async def delete_session(self, session_id: str) -> bool:
        """Stop a session. True if the API answered 204, False if it was already closed (409).

        A retried DELETE whose first 204 was lost reads as False: the session is stopped
        either way, which is all a caller needs to know."""
        try:
            await self._request("DELETE", self._session_path(session_id))
        except SessionNotOpen:
            return False
        return True

    async def screenshot(self, session_id: str) -> bytes:
        """The session's framebuffer as PNG bytes."""
        response = await self._request("POST", self._session_path(session_id, "screenshot"))
        if not response.content:
            raise InvalidResponse(f"POST {response.request.url.path} answered with an empty body")
        return response.content

    async def preview_token(self, session_id: str) -> PreviewToken:
        response = await self._request("POST", self._session_path(session_id, "preview-token"), json={})
        return self._parse(PreviewToken, response)

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _session_path(session_id: str, action: str | None = None) -> str:
        path = "/v1/sessions/" + quote(check_session_id(session_id), safe="")
        return f"{path}/{action}" if action else path

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        repeatable: bool = True,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx2.Response:
        if not self._api_key:
            raise AuthenticationError(
                401, "missing_api_key", "no API key is configured", method=method, path=path
            )

        retryable_status = _RETRYABLE_DELETE_STATUS if method == "DELETE" else _RETRYABLE_STATUS

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, TransportError):  # resets, read errors and undecodable answers too
                return repeatable or isinstance(exc.__cause__, _CONNECT_FAILURES)
            if isinstance(exc, RateLimited):
                return repeatable
            return repeatable and isinstance(exc, ServerError) and exc.status in retryable_status

        # Nearly every request succeeds at once, so the first attempt is made before any retry loop
        # is built (its per-call set-up was most of what this client added to httpx2's CPU). A
        # retryable failure is then replayed as tenacity's first attempt, so its waits, logging and
        # limit stay exactly as if tenacity had made that attempt itself.
        try:
            return await self._send_once(
                method, path, json=json, params=params, headers=headers, timeout=timeout
            )
        except ChaserError as exc:
            if not should_retry(exc):
                raise
            first_failure: ChaserError | None = exc
        retrying = AsyncRetrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                return await self._send_once(
                    method, path, json=json, params=params, headers=headers, timeout=timeout
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: dict[str, str | int] | None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx2.Response:
        # The common case (no headers, no timeout of its own) builds nothing more per request.
        limits = httpx2.USE_CLIENT_DEFAULT if timeout is None else httpx2.Timeout(self.timeout, read=timeout)
        try:
            response = await self._http.client.request(
                method,
                self._url(path),
                json=json,
                params=params,
                headers=self._auth if headers is None else {**self._auth, **headers},
                timeout=limits,
            )
        except (httpx2.HTTPError, httpx2.StreamError) as exc:
            raise self._transport_error(exc, method, path, timeout) from exc
        if response.is_success:
            return response
        raise self._status_error(response, method, path)

    def _url(self, path: str) -> httpx2.URL:
        """``path`` under the base URL, as httpx2 would merge it (the base path keeps its prefix)."""
        url = self._urls.get(path)
        if url is None:
            base = self._base_url
            url = self._urls[path] = base.copy_with(raw_path=base.raw_path + path.lstrip("/").encode())
        return url

    def _transport_error(
        self,
        exc: httpx2.HTTPError | httpx2.StreamError,
        method: str,
        path: str,
        timeout: float | None = None,
    ) -> TransportError:
        """The client's own error for an httpx2 failure, with every secret taken out of its text."""
        if isinstance(exc, httpx2.TimeoutException):
            return RequestTimeout(
                f"{method} {path} got no answer within {timeout or self.timeout:g} s ({type(exc).__name__})"
            )
        if isinstance(exc, httpx2.DecodingError):
            # The answer arrived but its body cannot be decoded (a broken proxy's gzip): nothing
            # says the request took effect, so this is a failure to get an answer, not an answer.
            return TransportError(
                f"{method} {path} got an answer that could not be decoded: {self._redact(str(exc))}"
            )
        return TransportError(f"{method} {path} failed: {type(exc).__name__}: {self._redact(str(exc))}")

    def _status_error(self, response: httpx2.Response, method: str, path: str) -> APIStatusError:
        code, message = _error_fields(response)
        # Both come from the body, and a body may echo the key back: neither may carry it on.
        code = self._redact(code) if code is not None else None
        message = self._redact(message)
        status = response.status_code
        if status == 429:
            return RateLimited(
                status, code, message, method=method, path=path, retry_after=_retry_after(response)
            )
        kind: type[APIStatusError] = APIStatusError
        if status in (401, 403):
            kind = AuthenticationError
        elif status == 404 and code in (None, "session_not_found"):
            kind = SessionNotFound
        elif status == 409 and code in (None, "session_not_open"):
            kind = SessionNotOpen
        elif status >= 500:
            kind = ServerError
        return kind(status, code, message, method=method, path=path)

    def _redact(self, text: str) -> str:
        """``text`` without the API key or the base URL's credentials."""
        for secret in (self._api_key, *self._secrets):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry_after_cap)
        return float(self._backoff(state))

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("retrying after %s (attempt %d, waiting %.2f s)", exc, state.attempt_number, wait)

    @staticmethod
    def _parse(model: type[M], response: httpx2.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise InvalidResponse(
                f"{response.request.method} {response.request.url.path} answered HTTP "
                f"{response.status_code} with a body that is not a valid {model.__name__}: "
                f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
            ) from None  # the ValidationError quotes the body, which could echo a secret


def _auth_header(api_key: str | None) -> dict[str, str]:
    """The header that carries ``api_key``, built once per client and view rather than per request."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _error_fields(response: httpx2.Response) -> tuple[str | None, str]:
    """(code, message) from ``{"error": {...}}``, a flat ``{"code", "message"}`` or any other body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        fields = inner if isinstance(inner, dict) else body
        code = fields.get("code")
        message = fields.get("message")
        if isinstance(inner, str) and not message:
            message = inner
        if code is not None or message is not None:
            return (str(code) if code is not None else None), str(message or response.reason_phrase)
    text = " ".join(response.text.split())[:200]
    return None, text or response.reason_phrase or f"HTTP {response.status_code}"


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


__all__ = [
    "DEFAULT_BASE_URL",
    "SESSION_ID_PATTERN",
    "ChaserClient",
    "ChaserError",
    "check_session_id",
    "redact_url",
]
