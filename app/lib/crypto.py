"""Keys derived from SECRET_KEY: one secret, a separate key for each purpose.

HKDF (RFC 5869) with SHA-256, and a distinct ``info`` per purpose, so that no two purposes share a
key and knowing one derived key tells nothing about the secret or the others. Every key the service
derives from SECRET_KEY goes through ``derive_key`` with one of the purposes below; a new purpose
gets a new name here, never a reused one.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO_PREFIX = "zhifa-qualification/"


class KeyPurpose(StrEnum):
    SESSION = "session-cookie/v1"
    """AES-GCM key of the session cookie."""
    CSRF = "csrf-token/v1"
    """HMAC key of the CSRF token."""
    SIGNING_KEY_SEAL = "signing-key-seal/v1"
    """AES-GCM key that seals the QR signing keys stored in the database (app.certificates.keys)."""


def derive_key(secret: str, purpose: KeyPurpose, length: int = 32) -> bytes:
    """``length`` bytes for ``purpose``, derived from ``secret`` (the SECRET_KEY)."""
    if not secret:
        raise ValueError("cannot derive a key from an empty secret")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        # No salt (RFC 5869 §3.1: optional; the input is already a random secret). The purpose goes
        # into info, which is what separates the keys.
        salt=None,
        info=(_INFO_PREFIX + purpose.value).encode(),
    )
    return hkdf.derive(secret.encode())
