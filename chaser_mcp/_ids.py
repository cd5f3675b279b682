"""Identity leaf helpers, importable from every layer: non-secret names for secrets."""

from __future__ import annotations

import hashlib

__all__ = ["key_fingerprint"]


def key_fingerprint(api_key: str) -> str:
    """A non-secret name for an API key (16 hex digits of its SHA-256), safe to store and log."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
