"""A database whose current signing key was sealed before the HKDF derivation keeps issuing cards,
and the first issuance seals the key again under the new derivation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates import keys, signing
from app.certificates import services as svc
from app.certificates.models import Certificate, CertificateApplication, SigningKey
from app.lib.security import Principal
from tests.factories import World
from tests.integration.certificates.conftest import ON, SECRET, make_eligible
from tests.unit.certificates.test_key_seal import seal_the_old_way


async def test_a_legacy_sealed_key_signs_and_is_sealed_again(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    kid, pem, jwk = signing.generate_key()
    db.add(
        SigningKey(kid=kid, public_x=jwk["x"], private_key_enc=seal_the_old_way(pem, SECRET), is_current=True)
    )
    await db.commit()

    await make_eligible(db, world.officer_a)
    await svc.certificate_apply(db, principal=admin_a, officer_ids=[world.officer_a.id], on=ON)
    app_id = await db.scalar(
        select(CertificateApplication.id).where(CertificateApplication.officer_id == world.officer_a.id)
    )
    assert app_id is not None
    (decided,) = await svc.application_decide(
        db, principal=authority, application_ids=[app_id], approve=True, ctx=ctx, on=ON
    )
    cert = await db.get(Certificate, decided.certificate_id)
    assert cert is not None and cert.kid == kid  # signed with the existing key, not a new one
    assert signing.verify_payload(cert.qr_text, await keys.jwks(db), now=ON).ok

    db.expire_all()
    row = await db.scalar(select(SigningKey).where(SigningKey.kid == kid))
    assert row is not None
    assert keys.unseal_checked(row.private_key_enc, SECRET) == (pem, False)
    assert len((await db.scalars(select(SigningKey))).all()) == 1
