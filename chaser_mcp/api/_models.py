"""Typed views of the API's JSON bodies.

Every model ignores fields it does not know, so a new field in the API never
breaks the client, and every field the reference marks as conditional is optional.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _APIModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Session(_APIModel):
    """One browser session, as ``GET /v1/sessions/:id`` returns it."""

    id: str
    status: str = Field(description="creating, ready, closed or error")
    cdp_url: str | None = Field(default=None, description="CDP websocket URL of the browser")
    device: str | None = None
    bytes_up: int | None = None
    bytes_down: int | None = None
    proxy_ip: str | None = None
    proxy_region: str | None = None
    created_at: datetime | None = None
    ready_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether the session may still cost money (it is creating or ready)."""
        return self.status in ("creating", "ready")


class SessionPage(_APIModel):
    """One page of ``GET /v1/sessions``, newest first."""

    data: list[Session]
    next_cursor: str | None = None
    has_more: bool = False


class PreviewToken(_APIModel):
    """A live-view link minted by ``POST /v1/sessions/:id/preview-token``."""

    url: str
    expires_at: datetime | None = None
    input_enabled: bool = False
    fps: int | None = None
