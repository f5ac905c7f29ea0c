"""Demo data: certificates in every status, verifiable, with eligibility holding for the demo officers."""

from __future__ import annotations

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
