"""Sealing the API keys a shared store must hold, so that no key is ever stored in plain text.

A replica that reaps the sessions of a dead one (multi-tenant: every caller brings its own key)
needs each caller's key to send the DELETE. The store keeps it sealed with AES-GCM under a key
derived (HKDF-SHA256) from ``CHASER_STATE_SECRET``, which every replica shares and Redis never
sees. The session id is the associated data: a sealed key copied onto another entry does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "StateCipher"]

_VERSION = "v1."  # a prefix, so a later scheme can be told apart from this one
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value does not open: another secret sealed it, or it was altered or moved."""


class StateCipher:
    """AES-256-GCM under a key derived from the replicas' shared secret."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the state secret must be at least 16 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"chaser-mcp state v1").derive(
            secret.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, bound_to: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SealError("not a sealed value of this version")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError("the sealed value does not open with this secret") from exc
        return plain.decode()
