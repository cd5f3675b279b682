"""One frozen ``Settings`` object, read from an environment mapping and command-line flags.

Reading from an injected mapping (not ``os.environ`` at import time) keeps tests
hermetic and lets the CLI apply flags on top of the environment in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .api import DEFAULT_BASE_URL


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

    def __repr__(self) -> str:  # the key must never reach a log line, even through repr()
        fields = {k: v for k, v in self.__dict__.items() if k != "api_key"}
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"Settings(api_key={'set' if self.api_key else None}, {shown})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from ``CHASER_*`` variables; keyword overrides (flags) win when not None."""
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
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"CHASER_BASE_URL must start with http:// or https://, got {self.base_url[:100]!r}"
            )
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(
                f"CHASER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


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
