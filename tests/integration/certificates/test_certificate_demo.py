"""Demo data: certificates in every status, verifiable, with eligibility holding for the demo officers."""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates import keys, signing
from app.certificates.models import Certificate, CertificateEvent, NumberSequence, ReapplicationBar
from app.certificates.rules import effective_status
from app.demo.province import generate_demo
from app.exams.models import ExamQualification
from app.lib.clock import today


async def test_demo_certificates_in_every_status(db: AsyncSession, database_url: str) -> None:
    report = await generate_demo(
        officers=1500, seed=7, if_empty=False, progress=False, database_url=database_url
    )
    assert "执法证件" in report and "/v/" in report
    certs = list((await db.scalars(select(Certificate))).all())
    statuses = {effective_status(c.status, c.valid_until, today()).value for c in certs}
    assert statuses == {"valid", "suspended", "revoked", "cancelled", "expired", "lost"}
    assert len({c.number for c in certs}) == len(certs)
    jwks = await keys.jwks(db)
    for c in certs[:50]:
        assert c.token == signing.token_of(c.qr_text)
        v = signing.verify_payload(c.qr_text, jwks, now=c.valid_from)
        assert v.ok and v.fields is not None and v.fields.number == c.number, v.reason_zh
    assert await db.scalar(select(func.count()).select_from(ExamQualification)) > 1000
    revoked = sum(1 for c in certs if c.status == "revoked")
    assert await db.scalar(select(func.count()).select_from(ReapplicationBar)) == revoked
    assert await db.scalar(select(func.count()).select_from(CertificateEvent)) >= len(certs)
    # Numbers continue past the demo's: the counters hold the last value of each scope.
    assert await db.scalar(select(func.max(NumberSequence.last_value))) >= 1
    # Ids continue after the bulk load (the PostgreSQL sequences were moved past them).
    db.add(
        CertificateEvent(
            certificate_id=certs[0].id,
            action="suspend",
            to_status="suspended",
            effective_on=today(),
            actor_name="t",
        )
    )
    await db.commit()


async def test_demo_cards_signed_in_worker_processes_verify(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A province-sized load signs in a forkserver pool (never a fork of the threaded loader): the
    cards it writes carry the same verifiable QR texts as those signed in process."""
    from app.certificates import demo

    monkeypatch.setattr(demo, "POOL_FROM", 1)
    monkeypatch.setattr(demo, "CHUNK", 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # "fork() may lead to deadlocks"
        await generate_demo(officers=200, seed=11, if_empty=False, progress=False, database_url=database_url)
    certs = list((await db.scalars(select(Certificate).order_by(Certificate.id))).all())
    assert len(certs) > 2 * 40  # several chunks, each signed by a worker
    jwks = await keys.jwks(db)
    for c in certs:
        assert c.token == signing.token_of(c.qr_text)
        v = signing.verify_payload(c.qr_text, jwks, now=c.valid_from)
        assert v.ok and v.fields is not None and v.fields.number == c.number, v.reason_zh
    await db.rollback()
