"""app.lib.crypto.derive_key: HKDF-SHA256 of SECRET_KEY, one key per purpose."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.lib.crypto import KeyPurpose, derive_key
from app.settings import load_settings

SECRET = "Zq7-Lm2_Rv9xKc4WpT8nHb3YjF6sDg1A"


def _rfc5869_hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with the standard library (no salt: HashLen zero bytes)."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


@pytest.mark.parametrize("purpose", list(KeyPurpose))
def test_is_hkdf_sha256_with_the_purpose_as_info(purpose: KeyPurpose) -> None:
    expected = _rfc5869_hkdf_sha256(SECRET.encode(), f"zhifa-qualification/{purpose.value}".encode(), 32)
    assert derive_key(SECRET, purpose) == expected
    assert derive_key(SECRET, purpose, length=48) == _rfc5869_hkdf_sha256(
        SECRET.encode(), f"zhifa-qualification/{purpose.value}".encode(), 48
    )


def test_the_sealing_key_is_pinned() -> None:
    """Signing keys sealed in databases depend on this value: changing the derivation (or the purpose's
    name) makes every stored key unreadable unless a fallback is added as in app.certificates.keys."""
    assert derive_key("t" * 40, KeyPurpose.SIGNING_KEY_SEAL).hex() == (
        "02c378a444ec271eff36437fd0167c2f72e4debcaf9032df2691b92f5962332b"
    )


def test_each_purpose_and_each_secret_gets_its_own_key() -> None:
    keys = {derive_key(SECRET, p) for p in KeyPurpose} | {derive_key(SECRET + "x", p) for p in KeyPurpose}
    assert len(keys) == 2 * len(KeyPurpose)
    assert all(len(k) == 32 for k in keys)
    assert derive_key(SECRET, KeyPurpose.SESSION) == derive_key(SECRET, KeyPurpose.SESSION)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        derive_key("", KeyPurpose.SESSION)


def test_settings_derive_the_session_and_csrf_keys_with_it() -> None:
    s = load_settings({"SECRET_KEY": SECRET, "APP_ENV": "test"})
    assert s.session_key == derive_key(SECRET, KeyPurpose.SESSION)
    assert s.csrf_secret == derive_key(SECRET, KeyPurpose.CSRF).hex()
    # No longer the sha256(prefix + secret) of before (sessions and CSRF tokens issued under it end).
    assert s.session_key != hashlib.sha256(b"session:" + SECRET.encode()).digest()
    assert s.csrf_secret != hashlib.sha256(b"csrf:" + SECRET.encode()).hexdigest()
