"""Sealing the QR signing keys: HKDF-derived key now, keys sealed with the old derivation still open."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.certificates import keys, signing

SECRET = "Zq7-Lm2_Rv9xKc4WpT8nHb3YjF6sDg1A"


def seal_the_old_way(pem: bytes, secret_key: str) -> str:
    """What app.certificates.keys.seal wrote before the HKDF derivation (written out, not imported)."""
    key = hashlib.sha256(b"signing-key:" + secret_key.encode()).digest()
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, pem, b"zhifa-signing-key/1")).decode()


def test_a_key_sealed_now_opens_and_is_not_legacy() -> None:
    _, pem, _ = signing.generate_key()
    sealed = keys.seal(pem, SECRET)
    assert keys.unseal_checked(sealed, SECRET) == (pem, False)
    assert keys.unseal(sealed, SECRET) == pem
    assert keys.sealing_key(SECRET) != hashlib.sha256(b"signing-key:" + SECRET.encode()).digest()


def test_a_key_sealed_the_old_way_still_opens_and_says_so() -> None:
    _, pem, _ = signing.generate_key()
    sealed = seal_the_old_way(pem, SECRET)
    assert keys.unseal_checked(sealed, SECRET) == (pem, True)
    assert keys.unseal(sealed, SECRET) == pem


@pytest.mark.parametrize("seal", [keys.seal, seal_the_old_way], ids=["hkdf", "legacy"])
def test_another_secret_opens_neither(seal: object) -> None:
    _, pem, _ = signing.generate_key()
    sealed = seal(pem, SECRET)  # type: ignore[operator]
    with pytest.raises(InvalidTag):
        keys.unseal(sealed, SECRET + "-rotated")
