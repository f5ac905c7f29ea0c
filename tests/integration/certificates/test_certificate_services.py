"""Eligibility, applications, issuance and the lifecycle through the services, on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts.models import Officer
from app.audit.models import AuditEvent
from app.certificates import keys, signing
from app.certificates.models import (
    Certificate,
    CertificateApplication,
    CertificateEvent,
    ReapplicationBar,
)
from app.certificates.rules import CancelReason, CertificateAction, CertificateKind, CertificateStatus
from app.certificates.schemas import ActionIn, ReissueIn
from app.certificates.selectors import certificate_list
from app.certificates.services.applications import application_decide, certificate_apply
from app.certificates.services.eligibility import ApplicationRefused, eligibility_check
from app.certificates.services.issuance import certificate_reissue, number_next
from app.certificates.services.status import certificate_act, certificates_withdraw_for_officer
from app.db import make_sessionmaker
from app.lib.enums import EmploymentStatus, StaffType
from app.lib.errors import Conflict, DomainError
from app.lib.policy import Policy, policy_to_json
from app.lib.security import Principal
from tests.factories import World, add_officer
from tests.integration.certificates.conftest import ON, SECRET, make_eligible


async def _issue(
    db: AsyncSession, admin: Principal, authority: Principal, ctx: Any, officer: Officer
) -> Certificate:
    await certificate_apply(db, principal=admin, officer_ids=[officer.id], on=ON)
    app_id = await db.scalar(
        select(CertificateApplication.id).where(
            CertificateApplication.officer_id == officer.id, CertificateApplication.status == "pending"
        )
    )
    assert app_id is not None
    (decided,) = await application_decide(
        db, principal=authority, application_ids=[app_id], approve=True, ctx=ctx, on=ON
    )
    await db.commit()  # each request's edge commits; here the test is the edge
    cert = await db.get(Certificate, decided.certificate_id)
    assert cert is not None
    return cert


# ---------------------------------------------------------------- eligibility, table-driven

Setup = Callable[[AsyncSession, World, Officer], Awaitable[None]]


async def _nothing(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)


async def _contract(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    o.staff_type = StaffType.CONTRACT.value
    await db.commit()


async def _no_exam(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o, exam=False)


async def _short(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o, hours=25)


async def _retired(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    o.employment_status = EmploymentStatus.RETIRED.value
    await db.commit()


async def _barred(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    cert_id = await _bare_certificate(db, world, o, status="revoked")
    db.add(
        ReapplicationBar(
            officer_id=o.id, certificate_id=cert_id, revoked_on=ON, barred_until=dt.date(2028, 9, 1)
        )
    )
    await db.commit()


async def _barred_for_ever(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    cert_id = await _bare_certificate(db, world, o, status="revoked")
    db.add(ReapplicationBar(officer_id=o.id, certificate_id=cert_id, revoked_on=ON, barred_until=None))
    await db.commit()


async def _bar_over(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    cert_id = await _bare_certificate(db, world, o, status="revoked")
    db.add(
        ReapplicationBar(
            officer_id=o.id, certificate_id=cert_id, revoked_on=ON, barred_until=dt.date(2026, 8, 31)
        )
    )
    await db.commit()


async def _holds(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    await _bare_certificate(db, world, o, status="suspended", number="HOLD-1")


async def _holds_expired(db: AsyncSession, world: World, o: Officer) -> None:
    await make_eligible(db, o)
    await _bare_certificate(db, world, o, status="valid", until=dt.date(2026, 8, 31))


async def _bare_certificate(
    db: AsyncSession,
    world: World,
    o: Officer,
    *,
    status: str,
    number: str | None = None,
    until: dt.date = dt.date(2030, 1, 1),
) -> int:
    c = Certificate(
        number=number or f"T{o.id}{status}",
        kind="enforcement",
        officer_id=o.id,
        authority_id=world.province.id,
        agency_id=o.agency_id,
        holder_name=o.name,
        agency_name="x",
        field=o.field,
        authority_name="x",
        valid_from=dt.date(2025, 1, 1),
        valid_until=until,
        issued_on=dt.date(2025, 1, 1),
        status=status,
        status_changed_on=dt.date(2025, 1, 1),
        qr_text="",
        token="",
        kid="",
    )
    db.add(c)
    await db.commit()
    return c.id


@pytest.mark.parametrize(
    "setup,codes,text",
    [
        (_nothing, [], ""),
        (_contract, ["staff_type"], "劳动合同工"),
        (_no_exam, ["no_exam"], "执法资格考试"),
        (_short, ["training"], "2025年度培训学时未达标（尚差15学时）"),
        (_retired, ["not_in_post"], "退休"),
        (_barred, ["barred"], "2028年09月01日前不得重新申领"),
        (_barred_for_ever, ["barred"], "终身"),
        (_bar_over, [], ""),
        (_holds, ["holds_card"], "HOLD-1"),
        (_holds_expired, [], ""),
    ],
    ids=[
        "eligible",
        "contract",
        "no_exam",
        "training_short",
        "retired",
        "barred",
        "barred_for_ever",
        "bar_over",
        "holds_card",
        "expired_card_does_not_count",
    ],
)
async def test_eligibility_names_the_missing_condition(
    db: AsyncSession, world: World, admin_a: Principal, setup: Setup, codes: list[str], text: str
) -> None:
    await setup(db, world, world.officer_a)
    (out,) = await eligibility_check(db, admin_a, [world.officer_a.id], on=ON)
    assert [m.code for m in out.missing] == codes
    assert out.eligible is (not codes)
    if text:
        assert text in out.missing[0].message


async def test_training_not_required_when_policy_says_so(
    db: AsyncSession, world: World, admin_a: Principal
) -> None:
    await make_eligible(db, world.officer_a, hours=0)
    world.province.policy_json = policy_to_json(Policy(training_required_for_issue=False))
    await db.commit()
    (out,) = await eligibility_check(db, admin_a, [world.officer_a.id], on=ON)
    assert out.eligible, out.missing


async def test_sibling_officer_is_not_found(db: AsyncSession, world: World, admin_a: Principal) -> None:
    (out,) = await eligibility_check(db, admin_a, [world.officer_b.id], on=ON)
    assert [m.code for m in out.missing] == ["not_found"]


# ---------------------------------------------------------------- apply and decide


async def test_batch_is_all_or_nothing_with_a_reason_per_officer(
    db: AsyncSession, world: World, admin_a: Principal
) -> None:
    ok = await add_officer(db, world.dept_a, "赵一")
    short = await add_officer(db, world.dept_a, "钱二")
    await make_eligible(db, ok)
    await make_eligible(db, short, hours=10)
    with pytest.raises(ApplicationRefused) as e:
        await certificate_apply(
            db, principal=admin_a, officer_ids=[ok.id, short.id, world.officer_b.id], on=ON
        )
    messages = e.value.field_messages()
    assert set(messages) == {f"officer:{short.id}", f"officer:{world.officer_b.id}"}
    assert "钱二" in messages[f"officer:{short.id}"] and "尚差30学时" in messages[f"officer:{short.id}"]
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(CertificateApplication)) == 0


async def test_approve_issues_a_signed_card_with_a_template_number(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    assert cert.number == "3200002026000001"  # {region}{year}{seq:06d} of the province
    assert (cert.valid_from, cert.valid_until) == (ON, dt.date(2031, 8, 31))
    assert cert.status == "valid" and cert.holder_name == "李明" and cert.agency_name == "甲市市场监督管理局"
    jwks = await keys.jwks(db)
    v = signing.verify_payload(cert.qr_text, jwks, now=ON)
    assert v.ok, v.reason_zh
    assert v.fields is not None and v.fields.number == cert.number and v.fields.name == "李明"
    assert cert.token == signing.token_of(cert.qr_text)
    assert cert.qr_text.startswith("http://testserver.local/v/3200002026000001#")
    events = (
        await db.scalars(select(CertificateEvent).where(CertificateEvent.certificate_id == cert.id))
    ).all()
    assert [e.action for e in events] == ["issue"]
    assert await db.scalar(select(func.count()).where(AuditEvent.action == "certificate.issue")) == 1
    # A second card of the same kind is refused: already holds one.
    with pytest.raises(ApplicationRefused, match="1 名人员"):
        await certificate_apply(db, principal=admin_a, officer_ids=[world.officer_a.id], on=ON)


async def test_reject_needs_a_reason_and_agency_admin_cannot_decide(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    batch = await certificate_apply(db, principal=admin_a, officer_ids=[world.officer_a.id], on=ON)
    (app,) = (
        await db.scalars(select(CertificateApplication).where(CertificateApplication.batch_id == batch.id))
    ).all()
    assert (app.status, app.purpose, app.reason, app.decided_at) == ("pending", "new", "", None)
    with pytest.raises(DomainError, match="理由"):
        await application_decide(db, principal=authority, application_ids=[app.id], approve=False, ctx=ctx)
    with pytest.raises(DomainError, match="发证机关"):
        await application_decide(db, principal=admin_a, application_ids=[app.id], approve=True, ctx=ctx)
    (done,) = await application_decide(
        db, principal=authority, application_ids=[app.id], approve=False, reason="照片不合格", ctx=ctx
    )
    assert done.status == "rejected" and done.reason == "照片不合格" and done.certificate_id is None
    with pytest.raises(Conflict, match="已驳回"):
        await application_decide(db, principal=authority, application_ids=[app.id], approve=True, ctx=ctx)


async def test_approval_rechecks_conditions(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    batch = await certificate_apply(db, principal=admin_a, officer_ids=[world.officer_a.id], on=ON)
    world.officer_a.employment_status = EmploymentStatus.TRANSFERRED.value
    await db.commit()
    app_id = await db.scalar(
        select(CertificateApplication.id).where(CertificateApplication.batch_id == batch.id)
    )
    assert app_id is not None
    with pytest.raises(ApplicationRefused, match="不符合发证条件"):
        await application_decide(
            db, principal=authority, application_ids=[app_id], approve=True, ctx=ctx, on=ON
        )
    await db.rollback()
    assert await db.scalar(select(func.count()).where(Certificate.kind == "enforcement")) == 0


# ---------------------------------------------------------------- lifecycle


async def test_lifecycle_suspend_restore_revoke_bars_reapplication(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)

    async def act(action: CertificateAction) -> Certificate:
        return await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=action, ground="依据", evidence="文号"),
            on=ON,
        )

    assert (await act(CertificateAction.SUSPEND)).status == "suspended"
    with pytest.raises(Conflict, match="不能重复暂扣"):
        await act(CertificateAction.SUSPEND)
    with pytest.raises(Conflict, match="暂扣期间"):
        await act(CertificateAction.DECLARE_LOST)
    assert (await act(CertificateAction.RESTORE)).status == "valid"
    with pytest.raises(DomainError, match="变更依据"):
        await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.REVOKE, ground=" "),
            on=ON,
        )
    with pytest.raises(DomainError, match="发证机关"):
        await certificate_act(
            db,
            principal=admin_a,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.REVOKE, ground="x"),
            on=ON,
        )
    assert (await act(CertificateAction.REVOKE)).status == "revoked"
    bar = await db.scalar(select(ReapplicationBar).where(ReapplicationBar.certificate_id == cert.id))
    assert bar is not None and bar.barred_until == dt.date(2028, 9, 1)  # policy default: 2 years
    with pytest.raises(Conflict, match="已被吊销"):
        await act(CertificateAction.RESTORE)
    (out,) = await eligibility_check(db, admin_a, [world.officer_a.id], on=ON)
    assert [m.code for m in out.missing] == ["barred"]
    events = (
        await db.scalars(
            select(CertificateEvent.action)
            .where(CertificateEvent.certificate_id == cert.id)
            .order_by(CertificateEvent.id)
        )
    ).all()
    assert list(events) == ["issue", "suspend", "restore", "revoke"]
    audit = (await db.scalars(select(AuditEvent.data).where(AuditEvent.action == "certificate.revoke"))).all()
    assert len(audit) == 1 and "文号" in audit[0] and "2028-09-01" in audit[0]


async def test_stale_version_is_refused(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    with pytest.raises(Conflict, match="他人修改"):
        await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.SUSPEND, ground="x", version=cert.version + 1),
            on=ON,
        )


async def test_cancel_needs_a_reason(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    with pytest.raises(DomainError, match="注销原因"):
        await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.CANCEL, ground="x"),
            on=ON,
        )
    done = await certificate_act(
        db,
        principal=authority,
        certificate_id=cert.id,
        data=ActionIn(action=CertificateAction.CANCEL, ground="退休", cancel_reason=CancelReason.RETIRED),
        on=ON,
    )
    assert done.status == "cancelled"
    assert await db.scalar(select(func.count()).select_from(ReapplicationBar)) == 0


async def test_lost_then_reissue_under_a_new_number(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    with pytest.raises(Conflict, match="只有已挂失"):
        await certificate_reissue(
            db, principal=authority, certificate_id=cert.id, data=ReissueIn(ground="补发"), ctx=ctx, on=ON
        )
    await certificate_act(
        db,
        principal=authority,
        certificate_id=cert.id,
        data=ActionIn(action=CertificateAction.DECLARE_LOST, ground="本人报失"),
        on=ON,
    )
    later = ON + dt.timedelta(days=10)
    new = await certificate_reissue(
        db, principal=authority, certificate_id=cert.id, data=ReissueIn(ground="补发"), ctx=ctx, on=later
    )
    assert new.number == "3200002026000002" and new.number != cert.number
    assert new.replaces_id == cert.id and new.valid_until == cert.valid_until and new.valid_from == later
    assert await db.scalar(select(Certificate.status).where(Certificate.id == cert.id)) == "lost"
    with pytest.raises(Conflict, match="已补发过"):
        await certificate_reissue(
            db, principal=authority, certificate_id=cert.id, data=ReissueIn(ground="补发"), ctx=ctx, on=later
        )


async def test_renew_only_in_the_window_keeps_number_and_resigns(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    old_token = cert.token
    with pytest.raises(Conflict, match="届满前6个月"):
        await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.RENEW, ground="换发"),
            ctx=ctx,
            on=ON,
        )
    in_window = dt.date(2031, 3, 1)
    # Conditions are checked again at renewal: refused by name, each missing condition listed …
    with pytest.raises(ApplicationRefused) as refused:
        await certificate_act(
            db,
            principal=authority,
            certificate_id=cert.id,
            data=ActionIn(action=CertificateAction.RENEW, ground="换发"),
            ctx=ctx,
            on=in_window,
        )
    assert refused.value.message.startswith(f"{world.officer_a.name}：")
    assert refused.value.errors and {e.field for e in refused.value.errors} == {
        f"officer:{world.officer_a.id}"
    }
    assert (await db.get(Certificate, cert.id)).token == old_token
    # … until the officer has a fresh pass and 2030's hours.
    from app.exams.models import ExamQualification

    db.add(
        ExamQualification(
            officer_id=world.officer_a.id,
            passed_on=dt.date(2030, 1, 1),
            valid_until=dt.date(2035, 1, 1),
            source="legacy",
        )
    )
    await make_eligible(db, world.officer_a, exam=False, year=2030)
    old_until, old_kid = cert.valid_until, cert.kid
    # No ground given: 换发 records its own; a cancel reason sent along is not 换发's and is not recorded.
    renewed = await certificate_act(
        db,
        principal=authority,
        certificate_id=cert.id,
        data=ActionIn(action=CertificateAction.RENEW, ground=" ", cancel_reason=CancelReason.RETIRED),
        ctx=ctx,
        on=in_window,
    )
    assert renewed.number == cert.number and renewed.valid_until == dt.date(2036, 8, 31)
    assert renewed.token != old_token and renewed.status == "valid" and renewed.status_changed_on == in_window
    v = signing.verify_payload(renewed.qr_text, await keys.jwks(db), now=in_window)
    assert v.ok and v.fields is not None and v.fields.valid_until == dt.date(2036, 8, 31)
    event = await db.scalar(
        select(CertificateEvent)
        .where(CertificateEvent.certificate_id == cert.id)
        .order_by(CertificateEvent.id.desc())
    )
    assert event is not None
    assert (event.action, event.from_status, event.to_status) == ("renew", "valid", "valid")
    assert (event.ground, event.cancel_reason, event.effective_on) == ("有效期届满换发", "", in_window)
    audit = json.loads(
        await db.scalar(select(AuditEvent.data).where(AuditEvent.action == "certificate.renew")) or "{}"
    )
    assert audit["before"] == {"valid_until": old_until.isoformat(), "kid": old_kid}
    assert (audit["valid_until"], audit["cancel_reason"], audit["ground"]) == (
        "2036-08-31",
        "",
        "有效期届满换发",
    )


async def test_withdraw_for_officer_in_callers_transaction(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    cert_id, officer_id = cert.id, world.officer_a.id  # the rollback below expires every loaded object
    supervision_id = world.cert_a.id  # the world's supervision card
    changed = await certificates_withdraw_for_officer(
        db,
        officer_id=officer_id,
        action="revoke",
        kinds=["enforcement"],
        ground="连续两年考核不称职",
        evidence="决定书",
        actor=authority,
        on=ON,
    )
    assert [c.id for c in changed] == [cert_id]  # the kinds asked for only
    await db.rollback()
    changed = await certificates_withdraw_for_officer(
        db,
        officer_id=officer_id,
        action="revoke",
        kinds=["enforcement", "supervision"],
        ground="连续两年考核不称职",
        evidence="决定书",
        actor=authority,
        on=ON,
    )
    assert [c.id for c in changed] == [supervision_id, cert_id]
    await db.rollback()  # no commit inside: the caller's rollback undoes it all
    assert await db.scalar(select(Certificate.status).where(Certificate.id == cert_id)) == "valid"
    changed = await certificates_withdraw_for_officer(
        db,
        officer_id=officer_id,
        action="cancel",
        kinds=["enforcement", "supervision"],
        ground="取消执法资格",
        evidence="",
        actor=authority,
        on=ON,
    )
    await db.commit()
    assert changed[0].status == "cancelled"
    ev = await db.scalar(select(CertificateEvent).where(CertificateEvent.action == "cancel"))
    assert ev is not None and ev.cancel_reason == CancelReason.QUALIFICATION_REMOVED.value
    again = await certificates_withdraw_for_officer(
        db,
        officer_id=officer_id,
        action="revoke",
        kinds=["enforcement", "supervision"],
        ground="x",
        evidence="",
        actor=authority,
        on=ON,
    )
    assert again == []
    with pytest.raises(DomainError):
        await certificates_withdraw_for_officer(
            db,
            officer_id=officer_id,
            action="suspend",
            kinds=["enforcement"],
            ground="x",
            evidence="",
            actor=authority,
            on=ON,
        )


async def test_effective_status_expired_without_a_job(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    items, total = await certificate_list(
        db,
        authority,
        status=CertificateStatus.EXPIRED,
        kind=CertificateKind.ENFORCEMENT,
        on=dt.date(2031, 9, 1),
    )
    assert total == 1 and items[0].status is CertificateStatus.EXPIRED and items[0].number == cert.number
    items, total = await certificate_list(
        db,
        authority,
        status=CertificateStatus.VALID,
        kind=CertificateKind.ENFORCEMENT,
        on=dt.date(2031, 9, 1),
    )
    assert total == 0


# ---------------------------------------------------------------- numbers under concurrency


async def test_concurrent_issuers_never_share_a_number(
    db: AsyncSession, engine: AsyncEngine, world: World
) -> None:
    maker = make_sessionmaker(engine)  # write-intent sessions, as the app's POST requests get

    async def one() -> str:
        async with maker() as s:
            n = await number_next(
                s,
                template="{region}{year}{seq:06d}",
                region="320000",
                year=2026,
                kind=CertificateKind.ENFORCEMENT,
            )
            await asyncio.sleep(0.01)  # hold the transaction open while the others run
            await s.commit()
            return n

    numbers = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(numbers)) == 20
    assert sorted(numbers) == [f"3200002026{i:06d}" for i in range(1, 21)]


async def test_key_rotation_keeps_old_cards_verifiable_until_retired(
    db: AsyncSession, world: World, admin_a: Principal, authority: Principal, ctx: Any
) -> None:
    await make_eligible(db, world.officer_a)
    cert = await _issue(db, admin_a, authority, ctx, world.officer_a)
    from app.lib.actor import SYSTEM

    new = await keys.key_rotate(db, secret_key=SECRET, actor=SYSTEM)
    await db.commit()
    assert new.kid != cert.kid
    assert signing.verify_payload(cert.qr_text, await keys.jwks(db), now=ON).ok
    with pytest.raises(Conflict, match="正在使用"):
        await keys.key_retire(db, kid=new.kid, on=ON, actor=SYSTEM)
    await keys.key_retire(db, kid=cert.kid, on=ON, actor=SYSTEM)
    await db.commit()
    v = signing.verify_payload(cert.qr_text, await keys.jwks(db), now=ON)
    assert not v.ok and v.outcome is signing.Outcome.RETIRED_KEY
    assert "private" not in repr(new) and "BEGIN" not in repr(new)


async def test_exit_bar_recorded_in_force_then_lifted(
    db: AsyncSession, world: World, authority: Principal
) -> None:
    """重新持证条件: recorded not lifted (no reason yet), refuses the officer a card, then lifted."""
    from app.certificates.models import ExitBar
    from app.certificates.services.bars import exit_bar_lift, exit_bar_record

    await make_eligible(db, world.officer_a)
    bar = await exit_bar_record(
        db,
        officer_id=world.officer_a.id,
        case_id=9001,
        outcome="remove_qualification",
        barred_from=ON,
        barred_until=None,
        conditions="重新参加执法资格考试",
        actor=authority,
    )
    stored = await db.scalar(select(ExitBar).where(ExitBar.case_id == 9001))
    assert stored is bar and (bar.lifted_on, bar.lifted_reason, bar.barred_until) == (None, "", None)
    audit = json.loads(
        await db.scalar(select(AuditEvent.data).where(AuditEvent.action == "certificate.exit_bar_recorded"))
        or "{}"
    )
    assert audit == {
        "case_id": 9001,
        "outcome": "remove_qualification",
        "barred_until": None,
        "conditions": "重新参加执法资格考试",
    }
    (row,) = await eligibility_check(db, authority, [world.officer_a.id], on=ON)
    assert not row.eligible and any("重新参加执法资格考试" in m.message for m in row.missing)
    lifted = await exit_bar_lift(db, case_id=9001, on=ON, reason="复核撤销")
    assert lifted is bar and (bar.lifted_on, bar.lifted_reason) == (ON, "复核撤销")
    (row,) = await eligibility_check(db, authority, [world.officer_a.id], on=ON)
    assert row.eligible, row.missing
    assert await exit_bar_lift(db, case_id=9001, on=ON, reason="again") is None
