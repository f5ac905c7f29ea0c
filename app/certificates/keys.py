"""The signing keys of QR payloads: storage (private part encrypted), rotation, retirement, the JWK set.

The private PEM is sealed with AES-GCM under a key derived from SECRET_KEY (``sealing_key``, HKDF
through ``app.lib.crypto``), so a database dump alone cannot sign cards; changing SECRET_KEY
therefore needs a key rotation first. The PEM never leaves this module except as a loaded key object
handed to ``signing.sign_payload``.

Keys sealed before the HKDF derivation (under ``sha256("signing-key:" + secret)``) still unseal:
``unseal`` falls back to that derivation, and ``current_signer`` seals such a key again under the
HKDF key, in the caller's transaction, the first time it signs with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_record
from app.certificates import signing
from app.certificates.models import SigningKey
from app.lib.actor import Actor
from app.lib.crypto import KeyPurpose, derive_key
from app.lib.errors import Conflict, NotFound

_AAD = b"zhifa-signing-key/1"


def sealing_key(secret_key: str) -> bytes:
    return derive_key(secret_key, KeyPurpose.SIGNING_KEY_SEAL)


def _legacy_sealing_key(secret_key: str) -> bytes:
    """The derivation before HKDF: only to read keys sealed with it, never to seal."""
    return hashlib.sha256(b"signing-key:" + secret_key.encode()).digest()


def seal(pem: bytes, secret_key: str) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(sealing_key(secret_key)).encrypt(nonce, pem, _AAD)).decode()


def unseal_checked(sealed: str, secret_key: str) -> tuple[bytes, bool]:
    """The PEM, and whether it was sealed under the legacy derivation (then it should be sealed again).

    Raises ``InvalidTag`` when neither derivation of ``secret_key`` opens it (another SECRET_KEY)."""
    raw = base64.b64decode(sealed)
    nonce, box = raw[:12], raw[12:]
    try:
        return AESGCM(sealing_key(secret_key)).decrypt(nonce, box, _AAD), False
    except InvalidTag:
        return AESGCM(_legacy_sealing_key(secret_key)).decrypt(nonce, box, _AAD), True


def unseal(sealed: str, secret_key: str) -> bytes:
    return unseal_checked(sealed, secret_key)[0]


@dataclass(frozen=True)
class Signer:
    """The current key, loaded: what issuance needs to sign QR payloads. Its repr hides the key."""

    kid: str
    key: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid!r})"


async def key_rotate(db: AsyncSession, *, secret_key: str, actor: Actor) -> SigningKey:
    """A new current key; the previous one keeps verifying its cards until retired. Caller commits."""
    kid, pem, jwk = signing.generate_key()
    await db.execute(update(SigningKey).where(SigningKey.is_current.is_(True)).values(is_current=False))
    await db.flush()
    row = SigningKey(kid=kid, public_x=jwk["x"], private_key_enc=seal(pem, secret_key), is_current=True)
    db.add(row)
    await db.flush()
    await audit_record(
        db, actor=actor, action="certificate.key_rotate", entity_type="signing_key", entity_id=kid, data={}
    )
    return row


async def key_retire(db: AsyncSession, *, kid: str, on: dt.date, actor: Actor) -> SigningKey:
    """停用: cards signed with this key no longer verify offline. The current key cannot be retired."""
    row = await db.scalar(select(SigningKey).where(SigningKey.kid == kid))
    if row is None:
        raise NotFound(f"密钥“{kid}”不存在", field="kid")
    if row.retired_on is not None:
        raise Conflict(f"密钥“{kid}”已于 {row.retired_on} 停用")
    if row.is_current:
        raise Conflict("正在使用的签名密钥不能停用，请先轮换出新密钥")
    row.retired_on = on
    await audit_record(
        db,
        actor=actor,
        action="certificate.key_retire",
        entity_type="signing_key",
        entity_id=kid,
        data={"retired_on": on.isoformat()},
    )
    return row


async def key_list(db: AsyncSession) -> list[SigningKey]:
    return list((await db.scalars(select(SigningKey).order_by(SigningKey.id))).all())


async def current_signer(db: AsyncSession, *, secret_key: str, actor: Actor | None = None) -> Signer:
    """The current signing key; the first one is made on first use (so a fresh install can issue)."""
    row = await db.scalar(select(SigningKey).where(SigningKey.is_current.is_(True)))
    if row is None:
        from app.lib.actor import SYSTEM

        row = await key_rotate(db, secret_key=secret_key, actor=actor or SYSTEM)
    try:
        pem, legacy = unseal_checked(row.private_key_enc, secret_key)
    except Exception as e:  # InvalidTag: sealed under another SECRET_KEY
        raise Conflict("无法读取签名密钥（SECRET_KEY 已更改？），请运行 app certificates keys rotate") from e
    if legacy:
        # Sealed before the HKDF derivation: seal it again, so the legacy one can one day be dropped.
        # Committed with the caller's issuance; if that rolls back, the next issuance tries again.
        row.private_key_enc = seal(pem, secret_key)
    return Signer(kid=row.kid, key=signing.load_private_key(pem))


async def jwks(db: AsyncSession) -> dict[str, object]:
    rows = await key_list(db)
    return signing.jwks_document(
        signing.PublishedKey(kid=r.kid, x=r.public_x, retired_on=r.retired_on) for r in rows
    )
