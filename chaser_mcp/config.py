"""Every configuration option, declared once: type, bounds, default, description, env name and flag.

The ``CHASER_*`` variables, the command-line flags, the README table and ``server.json``'s
environment variables are all derived from the declarations below (``chaser_mcp.config_docs``
writes the documents; a test fails when they drift). Values come from an injected mapping, never
``os.environ`` at import time, which keeps tests hermetic; flags override the mapping.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from ._net import is_loopback
from .api import DEFAULT_BASE_URL, redact_url


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the variable and the flag."""


def option(
    default: Any,
    description: str,
    *,
    flag: str | None = "",
    env: str | None = None,
    shown_default: str | None = None,
    registry: bool = False,
    **bounds: Any,
) -> Any:
    """One option's declaration: a pydantic ``Field`` plus how it is named on the command line.

    ``flag`` "" means ``--field-name``; None means no flag (the API key: a flag is readable by every
    local user in the process list). ``env`` replaces ``CHASER_<FIELD>`` where the historical name
    differs. ``registry`` lists the variable in ``server.json`` (what a registry user sets).
    """
    extra: JsonDict = {"flag": flag, "shown_default": shown_default, "registry": registry}
    alias = AliasChoices(env) if env else None
    return Field(default, description=description, validation_alias=alias, json_schema_extra=extra, **bounds)


# Comma-separated in the environment, repeated flags on the command line.
Names = Annotated[tuple[str, ...], NoDecode]
MAX_SESSIONS = 64  # browsers at once, for both the embedded and the standalone local API
# The embedded (--local) and the standalone (local-api) local API read the same variable and flag.
WARM_BROWSERS_HELP = (
    "Browsers kept launched for the next session (0 or 1), so it is ready at once; counted against "
    "max sessions."
)


def warm_browsers_option() -> Any:
    """``CHASER_LOCAL_WARM_BROWSERS`` / ``--warm-browsers``: one declaration for both command lines."""
    return option(1, WARM_BROWSERS_HELP, flag="--warm-browsers", ge=0, le=1)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class DeclaredSettings(BaseSettings):
    """What both command lines share: reading a mapping, flags, and one-sentence errors."""

    model_config = SettingsConfigDict(
        env_prefix="CHASER_", frozen=True, extra="forbid", populate_by_name=True, env_ignore_empty=True
    )
    # Constructor keywords kept for callers that predate the secret fields (``Settings(api_key=...)``).
    renamed: ClassVar[Mapping[str, str]] = {}
    # Options given by one source as a whole: one of them as a flag replaces all of them from the environment.
    replaced_together: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments only: ``from_env`` reads the mapping it is given, never ``os.environ`` itself.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {cls.renamed.get(k, k): v for k, v in data.items()}
        # A blank variable or flag means "not set": the default applies.
        return cls._prepare({k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())})

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Rules between raw values, before each is validated (subclasses add theirs)."""
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _from_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Text as the environment and flags give it: trimmed, lists comma-separated, choices any case."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        kind = _plain(cls.model_fields[info.field_name or ""].annotation)
        if get_origin(kind) is tuple:
            return tuple(item.strip() for item in value.split(",") if item.strip())
        if get_origin(kind) is Literal:
            return value.upper() if str(get_args(kind)[0]).isupper() else value.lower()
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Self:
        """Settings from ``env`` (``CHASER_*`` names); keyword overrides (flags) win when not None."""
        source = _EnvMapping(cls, env)
        values = {_field_name(cls, k): v for k, v in source().items()}
        if any(overrides.get(name) is not None for name in cls.replaced_together):
            for name in cls.replaced_together:
                values.pop(_field_name(cls, name), None)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_sentence(cls, exc)) from None

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per declared option; help is the description, the variable and the default, once."""
        for name, field in cls.model_fields.items():
            flag = _extra(field)["flag"]
            if flag is None:
                continue
            kwargs: dict[str, Any] = {"dest": name, "default": None}
            kind = _plain(field.annotation)
            if kind is bool:
                kwargs["action"] = "store_true"
            elif get_origin(kind) is tuple:
                kwargs["action"] = "append"
            elif get_origin(kind) is Literal:
                choices = get_args(kind)
                kwargs["choices"] = choices
                kwargs["type"] = str.upper if choices[0].isupper() else str.lower
            elif kind in (int, float):
                kwargs["type"] = kind
            if "choices" not in kwargs and kind is not bool:
                kwargs["metavar"] = _METAVARS.get(
                    kind, (flag or flag_name(name)).lstrip("-").upper().replace("-", "_")
                )
            kwargs["help"] = f"{field.description} ({env_name(cls, name)}; default: {shown_default(field)})"
            parser.add_argument(flag or flag_name(name), **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str]) -> Self:
        """The flags parsed by ``add_flags`` over ``env``."""
        return cls.from_env(env, **{name: getattr(args, name, None) for name in cls.model_fields})

    def with_(self, **changes: Any) -> Self:
        """A copy with options changed by the program itself (``--local`` wiring, tests).

        Not validated again: the bounds are for what users type, and a token file was read already.
        """
        data = self._prepare({self.renamed.get(k, k): v for k, v in changes.items()})
        for name, value in data.items():
            if isinstance(value, str) and _plain(type(self).model_fields[name].annotation) is SecretStr:
                data[name] = SecretStr(value)
        return self.model_copy(update=data)


# Every float option is a duration in seconds.
_METAVARS: dict[Any, str] = {Path: "PATH", int: "N", float: "SECONDS", tuple[str, ...]: "VALUE"}


class _EnvMapping(EnvSettingsSource):
    """pydantic-settings' own environment parsing, over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class Settings(DeclaredSettings):
    """The MCP server's configuration (``chaser-mcp``)."""

    renamed: ClassVar[Mapping[str, str]] = {"api_key": "key", "auth_token": "token"}
    replaced_together: ClassVar[tuple[str, ...]] = ("token", "auth_token", "auth_token_file")

    key: SecretStr | None = option(
        None,
        "Chaser API key, sent as a Bearer token. Every tool refuses to run without it.",
        flag=None,
        shown_default="none: every tool says how to set it",
        registry=True,
    )
    base_url: str = option(DEFAULT_BASE_URL, "Root URL of the Chaser Sessions API.", registry=True)
    timeout: float = option(
        30.0,
        "Seconds allowed for one API request (also a page load in navigate).",
        registry=True,
        ge=0.1,
        le=600,
    )
    profile: str | None = option(
        None,
        "Internal session profile label, for operators only. Leave unset unless Chaser tells you otherwise.",
        registry=True,
    )
    ready_timeout: float = option(
        60.0, "Seconds create_session waits for a new session to become ready.", registry=True, ge=1, le=3600
    )
    screenshot_max_bytes: int = option(
        1_000_000,
        "Budget in bytes for a screenshot's base64 in a tool result; larger screenshots are shrunk to fit.",
        registry=True,
        ge=10_000,
        le=100_000_000,
    )
    cleanup_timeout: float = option(10.0, "Bound in seconds on cleaning up one conversation.", ge=0.1, le=300)
    resource_poll: float = option(
        5.0,
        "Seconds between checks of the owned sessions a 2026-07-28 subscriptions/listen stream watches.",
        ge=0.05,
        le=3600,
    )
    log_level: LogLevel = option("INFO", "Log level; logs go to stderr.")
    transport: Literal["stdio", "http", "sse"] = option(
        "stdio", "How clients connect: stdio, http (streamable HTTP) or sse."
    )
    host: str = option("127.0.0.1", "Address http/sse listen on.")
    port: int = option(8931, "Port http/sse listen on.", ge=0, le=65535)
    public_url: str | None = option(
        None,
        "URL people reach this server at (behind a proxy), for the live viewer's links; http/sse only.",
        shown_default="http://<host>:<port> as bound",
    )
    token: SecretStr | None = option(
        None,
        "Bearer token HTTP callers must send; required off loopback. A flag is visible to every local user "
        "in the process list (/proc/<pid>/cmdline): prefer CHASER_AUTH_TOKEN or --auth-token-file.",
        flag="--auth-token",
        env="CHASER_AUTH_TOKEN",
    )
    auth_token_file: Path | None = option(
        None, "Read the bearer token from this file, once at start (trimmed; it must not be empty)."
    )
    multi_tenant: bool = option(False, "Hold no key: each caller's bearer token is its own Chaser key.")
    max_connections_per_caller: int = option(
        32, "With multi-tenant: open MCP sessions plus SSE streams one key may hold.", ge=1, le=10_000
    )
    session_idle_timeout: float = option(
        1800.0, "Seconds before an abandoned Mcp-Session-Id is cleaned up.", ge=0.1, le=86400
    )
    lease_seconds: float = option(
        900.0,
        "Seconds a stateless (2026-07-28) caller may idle before cleanup.",
        flag="--lease",
        ge=0.1,
        le=86400,
    )
    reconnect_grace: float = option(
        60.0,
        "Seconds an ended HTTP/SSE conversation's sessions wait for their caller to reconnect (0: none).",
        ge=0,
        le=3600,
    )
    allowed_hosts: Names = option(
        (),
        "Extra Host header values to accept (reverse proxies), e.g. mcp.example.com:443; '*' turns the Host "
        "check off, never the Origin check. Comma-separated; the flag repeats.",
        flag="--allowed-host",
        shown_default="loopback only",
    )
    allowed_origins: Names = option(
        (),
        "Extra Origin values to accept; '*' turns the Origin check off, never the Host check. "
        "Comma-separated; the flag repeats.",
        flag="--allowed-origin",
        shown_default="loopback only",
    )
    max_body_bytes: int = option(1_000_000, "Largest HTTP request body accepted.", ge=1024, le=100_000_000)
    journal: str | None = option(
        None, "Crash journal path, or 'off'.", shown_default="~/.local/state/chaser-mcp/sessions.sqlite3"
    )
    store: str | None = option(
        None,
        "Shared state store of several replicas: redis://host:port/db. Unset: the crash journal above.",
        shown_default="embedded (SQLite journal)",
    )
    store_prefix: str = option(
        "chaser-mcp:", "Prefix of every key in the store (deployments sharing one Redis)."
    )
    store_heartbeat: float = option(
        10.0,
        "Seconds between a replica's heartbeats in the store; three missed and the others reap its sessions.",
        ge=0.1,
        le=60,
    )
    state_secret: SecretStr | None = option(
        None,
        "Secret every replica shares; seals the callers' keys a replica reaps with. Needed for multi-tenant "
        "on Redis.",
        flag=None,
    )
    local: bool = option(False, "No account needed: serve sessions from real headless Chromium here.")
    local_max_sessions: int = option(
        3, "With local: browsers open at once.", flag="--max-sessions", ge=1, le=MAX_SESSIONS
    )
    local_warm_browsers: int = warm_browsers_option()
    chrome: str | None = option(
        None, "Chromium binary for local (a path or a name on PATH).", shown_default="found on PATH"
    )

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.pop("journal_enabled", True) is False:
            data["journal"] = "off"
        data.pop("journal_path", None)
        if data.get("auth_token_file") is not None:
            if data.get("token") is not None:
                raise SettingsError(
                    "CHASER_AUTH_TOKEN (--auth-token) and CHASER_AUTH_TOKEN_FILE (--auth-token-file) are "
                    "both set; keep only one of them"
                )
            data["token"] = _read_token_file(str(data["auth_token_file"]))
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise SettingsError(f"must start with http:// or https://, got {redact_url(value)[:100]!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise SettingsError(f"must be an http:// or https:// URL with no query, got {value[:100]!r}")
        return value.rstrip("/")

    @field_validator("store")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"must be a redis://host:port/db URL, got {redact_url(value)[:100]!r}")
        return value

    @field_validator("state_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise SettingsError(
                "must be at least 16 characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @field_validator("token")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        # Callers send it in an HTTP header, where only printable ASCII without spaces survives.
        if value is not None and not all(0x21 <= ord(c) <= 0x7E for c in value.get_secret_value()):
            raise SettingsError(
                "must be printable ASCII without spaces (make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @model_validator(mode="after")
    def _safe_combination(self) -> Settings:
        if (
            self.transport != "stdio"
            and not self.multi_tenant
            and not self.token
            and not is_loopback(self.host)
        ):
            raise SettingsError(
                f"refusing to listen on {self.host} without an inbound token: anyone who can reach it "
                "could spend your Chaser key. Set --auth-token (CHASER_AUTH_TOKEN), use --multi-tenant "
                "so callers bring their own keys, or bind to 127.0.0.1."
            )
        if self.multi_tenant and self.transport == "stdio":
            raise SettingsError("--multi-tenant needs an HTTP transport (--transport http or sse)")
        if self.store is not None and self.multi_tenant and not self.state_secret:
            raise SettingsError(
                "--multi-tenant on a shared store (CHASER_STORE) needs CHASER_STATE_SECRET, the secret every "
                "replica shares to seal the callers' keys it may reap with; set it (at least 16 characters)"
            )
        if self.local and self.chrome and shutil.which(self.chrome) is None:
            raise SettingsError(f"CHASER_CHROME (--chrome) {self.chrome!r} is not an executable file")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # SecretStr already masks the key and token; credentials in the base URL are masked here.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("base_url", "store") and value else value

    @property
    def api_key(self) -> str | None:
        return self.key.get_secret_value() if self.key else None

    @property
    def auth_token(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

    @property
    def journal_enabled(self) -> bool:
        return (self.journal or "").lower() not in ("off", "none", "0")

    @property
    def journal_path(self) -> str | None:
        return self.journal if self.journal_enabled else None

    @property
    def sweep_interval(self) -> float:
        """How often idle conversations are looked for: a quarter of the shortest idle limit."""
        limits = [self.lease_seconds, self.session_idle_timeout]
        if self.reconnect_grace > 0:  # a grace ends in a sweep too
            limits.append(self.reconnect_grace)
        return min(30.0, max(0.1, min(limits) / 4))


def _field_name(cls: type[BaseSettings], key: str) -> str:
    """The field an environment source key belongs to (the source keys aliased fields by alias)."""
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if key == name or (isinstance(alias, AliasChoices) and key in alias.choices):
            return name
    return cls.renamed.get(key, key) if issubclass(cls, DeclaredSettings) else key


def env_name(cls: type[BaseSettings], name: str) -> str:
    alias = cls.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def option_names(cls: type[BaseSettings], name: str) -> str:
    """``CHASER_X (--x)``: how a user sets the option, for error messages."""
    flag = _extra(cls.model_fields[name])["flag"]
    return env_name(cls, name) + ("" if flag is None else f" ({flag or flag_name(name)})")


def shown_default(field: FieldInfo) -> str:
    shown = _extra(field)["shown_default"]
    if shown is not None:
        return str(shown)
    default = field.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    return "unset" if default is None else str(default)


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {"flag": "", "shown_default": None, "registry": False}


def _plain(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``Annotated[tuple[str, ...], ...]`` -> ``tuple[str, ...]``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Annotated or (args and type(None) in get_args(annotation)):
        return _plain(args[0])
    return annotation


def _sentence(cls: type[BaseSettings], exc: ValidationError) -> str:
    """The first problem as one sentence naming the variable and the flag (not pydantic's report)."""
    error = exc.errors(include_url=False)[0]
    location = [str(part) for part in error["loc"]]
    name = location[0] if location and location[0] in cls.model_fields else None
    context = error.get("ctx", {})
    kind = error["type"]
    if kind == "value_error":
        message = str(context.get("error", error["msg"]))
        return f"{option_names(cls, name)} {message}" if name and message.startswith("must") else message
    if name is None:
        return str(error["msg"])
    field = cls.model_fields[name]
    # A rejected key or token is still a secret: the message names the option, never the value.
    secret = _plain(field.annotation) is SecretStr
    shown = "a value that is not shown" if secret else repr(str(error.get("input", ""))[:40])
    if kind in ("greater_than_equal", "less_than_equal"):
        low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
        high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
        problem = f"must be between {low:g} and {high:g}"
    elif kind == "literal_error":
        problem = f"must be one of {context.get('expected', '')}"
    elif kind.startswith("bool"):
        problem = "must be true or false"
    elif kind.startswith("int"):
        problem = "must be a whole number"
    elif kind.startswith("float"):
        problem = "must be a number"
    else:
        problem = f"is not usable ({error['msg']})"
    return f"{option_names(cls, name)} {problem}, got {shown}"


def _read_token_file(path: str) -> str:
    source = f"the auth token file {path!r}"
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"cannot read {source}: {reason}") from None
    if not token:
        raise SettingsError(f"{source} is empty; put the token on its first line")
    if not all(0x21 <= ord(char) <= 0x7E for char in token):
        raise SettingsError(
            f"the token in {source} may only contain printable ASCII characters without spaces "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


__all__ = [
    "MAX_SESSIONS",
    "WARM_BROWSERS_HELP",
    "DeclaredSettings",
    "Names",
    "Settings",
    "SettingsError",
    "env_name",
    "flag_name",
    "option",
    "shown_default",
    "warm_browsers_option",
]
