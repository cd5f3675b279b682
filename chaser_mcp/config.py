"""One frozen ``Settings`` object, read from an environment mapping and command-line flags.

Reading from an injected mapping (not ``os.environ`` at import time) keeps tests
hermetic and lets the CLI apply flags on top of the environment in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._net import is_loopback
from .api import DEFAULT_BASE_URL, redact_url


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 30.0
    profile: str | None = None
    ready_timeout: float = 60.0
    screenshot_max_bytes: int = 1_000_000
    cleanup_timeout: float = 10.0
    log_level: str = "INFO"
    # network transports (issue: SSE and streamable HTTP)
    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = 8931
    auth_token: str | None = None
    multi_tenant: bool = False
    session_idle_timeout: float = 1800.0
    lease_seconds: float = 900.0
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    max_connections_per_caller: int = 32
    journal_path: str | None = None
    journal_enabled: bool = True
    # the embedded local backend (real headless Chromium, no account)
    local: bool = False
    local_max_sessions: int = 3

    def __repr__(self) -> str:  # the key must never reach a log line, even through repr()
        secret = ("api_key", "auth_token")
        fields = {k: v for k, v in self.__dict__.items() if k not in secret}
        fields["base_url"] = redact_url(self.base_url)
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        hidden = ", ".join(f"{k}={'set' if getattr(self, k) else None}" for k in secret)
        return f"Settings({hidden}, {shown})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``CHASER_*`` variables; keyword overrides (flags) win when not None.

        ``auth_token_file`` (flag) / ``CHASER_AUTH_TOKEN_FILE`` is read here, once, into ``auth_token``.
        """
        auth_token = _auth_token(
            env, overrides.pop("auth_token", None), overrides.pop("auth_token_file", None)
        )
        values: dict[str, Any] = {
            "api_key": env.get("CHASER_KEY", "").strip() or None,
            "base_url": env.get("CHASER_BASE_URL", "").strip() or DEFAULT_BASE_URL,
            "timeout": _number(env, "CHASER_TIMEOUT", 30.0, low=0.1, high=600),
            "profile": env.get("CHASER_PROFILE", "").strip() or None,
            "ready_timeout": _number(env, "CHASER_READY_TIMEOUT", 60.0, low=1, high=3600),
            "screenshot_max_bytes": int(
                _number(env, "CHASER_SCREENSHOT_MAX_BYTES", 1_000_000, low=10_000, high=100_000_000)
            ),
            "cleanup_timeout": _number(env, "CHASER_CLEANUP_TIMEOUT", 10.0, low=0.1, high=300),
            "log_level": (env.get("CHASER_LOG_LEVEL", "").strip() or "INFO").upper(),
            "transport": env.get("CHASER_TRANSPORT", "").strip().lower() or "stdio",
            "host": env.get("CHASER_HOST", "").strip() or "127.0.0.1",
            "port": int(_number(env, "CHASER_PORT", 8931, low=0, high=65535)),
            "auth_token": auth_token,
            "multi_tenant": _flag(env, "CHASER_MULTI_TENANT"),
            "session_idle_timeout": _number(env, "CHASER_SESSION_IDLE_TIMEOUT", 1800.0, low=0.1, high=86400),
            "lease_seconds": _number(env, "CHASER_LEASE_SECONDS", 900.0, low=0.1, high=86400),
            "allowed_hosts": _list(env, "CHASER_ALLOWED_HOSTS"),
            "allowed_origins": _list(env, "CHASER_ALLOWED_ORIGINS"),
            "max_body_bytes": int(
                _number(env, "CHASER_MAX_BODY_BYTES", 1_000_000, low=1024, high=100_000_000)
            ),
            "max_connections_per_caller": int(
                _number(env, "CHASER_MAX_CONNECTIONS_PER_CALLER", 32, low=1, high=10_000)
            ),
            "journal_path": env.get("CHASER_JOURNAL", "").strip() or None,
            "journal_enabled": env.get("CHASER_JOURNAL", "").strip().lower() not in ("off", "none", "0"),
            "local": _flag(env, "CHASER_LOCAL"),
            "local_max_sessions": int(_number(env, "CHASER_LOCAL_MAX_SESSIONS", 3, low=1, high=64)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            shown = redact_url(self.base_url)[:100]
            raise SettingsError(f"CHASER_BASE_URL must start with http:// or https://, got {shown!r}")
        if self.transport not in ("stdio", "http", "sse"):
            raise SettingsError(f"the transport must be stdio, http or sse, got {self.transport!r}")
        if (
            self.transport != "stdio"
            and not self.multi_tenant
            and not self.auth_token
            and not is_loopback(self.host)
        ):
            raise SettingsError(
                f"refusing to listen on {self.host} without an inbound token: anyone who can reach it "
                "could spend your Chaser key. Set --auth-token (CHASER_AUTH_TOKEN), use --multi-tenant "
                "so callers bring their own keys, or bind to 127.0.0.1."
            )
        if not 1 <= self.max_connections_per_caller <= 10_000:
            raise SettingsError(
                "CHASER_MAX_CONNECTIONS_PER_CALLER (--max-connections-per-caller) must be between 1 and "
                f"10000, got {self.max_connections_per_caller}"
            )
        if self.multi_tenant and self.transport == "stdio":
            raise SettingsError("--multi-tenant needs an HTTP transport (--transport http or sse)")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(
                f"CHASER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )

    @property
    def sweep_interval(self) -> float:
        """How often idle conversations are looked for: a quarter of the shortest idle limit."""
        return min(30.0, max(0.1, min(self.lease_seconds, self.session_idle_timeout) / 4))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _auth_token(env: Mapping[str, str], flag_token: str | None, flag_file: str | None) -> str | None:
    """The inbound token from exactly one source; flags, when given, replace the environment."""
    if flag_token is not None or flag_file is not None:
        token, path = flag_token, flag_file
        token_name, file_name = "--auth-token", "--auth-token-file"
    else:
        token, path = env.get("CHASER_AUTH_TOKEN"), env.get("CHASER_AUTH_TOKEN_FILE")
        token_name, file_name = "CHASER_AUTH_TOKEN", "CHASER_AUTH_TOKEN_FILE"
    token, path = (token or "").strip() or None, (path or "").strip() or None
    if token and path:
        raise SettingsError(f"{token_name} and {file_name} are both set; keep only one of them")
    source = token_name
    if path:
        source = f"the auth token file {path!r}"
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SettingsError(f"cannot read {source}: {reason}") from None
        if not token:
            raise SettingsError(f"{source} is empty; put the token on its first line")
    # Callers send it in an HTTP header, where only printable ASCII without spaces survives.
    if token and not all(0x21 <= ord(char) <= 0x7E for char in token):
        raise SettingsError(
            f"the token in {source} may only contain printable ASCII characters without spaces "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw[:20]!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value
