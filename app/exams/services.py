"""Use cases of the exam domain. One transaction each: load, apply ``rules``, write, audit.

Scope: an authority administrator runs the exams and sessions of their agency and those above it,
and enrols and sees results of officers in their own subtree only. A candidate sees only their own
enrolments and attempts; anything else answers "not found".

The exam-day paths are kept short on purpose: an autosave is one ``INSERT ... SELECT`` per answer
(the attempt's owner, status and deadline are checked in the same statement), and a paper is served
from the attempt row plus an in-process cache of question versions, which never change.
Saves are recorded in the append-only ``exam_answers`` table (every save, with its sequence number
and time); starts, submissions, time-ups, leaving the page and qualification grants are in the
hash-chained audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from sqlalchemy import ColumnElement, Table, and_, bindparam, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import Agency, Officer
from app.accounts.rules import path_ids
from app.accounts.services import agency_get, agency_policies
from app.exams import rules
from app.exams.bankfile import Bank
from app.exams.models import (
    Exam,
    ExamAnswer,
    ExamAttempt,
    ExamBank,
    ExamEnrolment,
    ExamPartRow,
    ExamQualification,
    ExamQuestion,
    ExamSession,
)
from app.exams.rules import (
    AttemptStatus,
    BlueprintRule,
    ClosedBy,
    ExamPart,
    MultipleScoring,
    QuestionCategory,
    QuestionType,
    ReviewPolicy,
)
from app.exams.schemas import (
    AgencyResult,
    AnswerIn,
    AnswerOut,
    AttemptBrief,
    AttemptOut,
    BankImportReport,
    BankOut,
    CategoryOut,
    EnrolIn,
    EnrolResult,
    ExamIn,
    ExamOut,
    MySession,
    OfficerResult,
    PaperQuestion,
    PartOut,
    PartStats,
    PartStatus,
    Position,
    QualificationOut,
    QuestionStat,
    ResultOut,
    ResultsOut,
    ReviewItem,
    RuleOut,
    SaveOut,
    SessionIn,
    SessionOut,
    StatsOut,
    UnsupportedOut,
)
from app.lib.audit import SYSTEM, Actor, audit_enqueue, audit_record
from app.lib.clock import beijing_date, utcnow
from app.lib.enums import EmploymentStatus, StaffType
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden, NotFound
from app.lib.exports import spreadsheet_safe
from app.lib.security import Principal, actor_of

# ---------------------------------------------------------------- who


def _require_authority(principal: Principal, action: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关管理员可以{action}")


def _officer_id(principal: Principal) -> int:
    if principal.officer_id is None:
        raise NotFound("您的账号未关联执法人员")
    return principal.officer_id


def _visible_owner(principal: Principal) -> ColumnElement[bool]:
    """Exams and sessions run by the principal's agency, one above it, or one below it (``Agency`` joined)."""
    return or_(
        Agency.path.startswith(principal.agency_path), Agency.id.in_(path_ids(principal.agency_path) or [-1])
    )


# ---------------------------------------------------------------- bank import


def _question_values(q: Any) -> dict[str, Any]:
    answer = q.answer if isinstance(q.answer, bool) else list(q.answer)
    weights = getattr(q, "weights", None)
    return {
        "type": q.type,
        "category": q.category,
        "difficulty": q.difficulty,
        "stem": q.stem,
        "options_json": json.dumps(list(q.options), ensure_ascii=False),
        "answer_json": json.dumps(answer),
        "weights_json": None if weights is None else json.dumps(list(weights)),
        "basis": q.basis,
        "explanation": q.explanation,
    }


_METADATA = ("category", "difficulty", "basis", "explanation")


async def bank_import(
    db: AsyncSession,
    *,
    principal: Principal,
    bank: Bank,
    source: str,
    report: BankImportReport | None = None,
    commit: bool = True,
) -> BankImportReport:
    """Load a parsed bank idempotently: new questions, new versions of changed ones, retire removed ones.

    An unchanged bank changes nothing (not even the audit trail). Commits unless told not to
    (the demo data loads banks inside its own transaction).
    """
    _require_authority(principal, "导入题库")
    report = report or BankImportReport(source=source, bank=bank.code)
    report.bank = bank.code
    row = await db.scalar(select(ExamBank).where(ExamBank.code == bank.code))
    changed = False
    if row is None:
        row = ExamBank(
            code=bank.code,
            title=bank.title,
            part=bank.part,
            field=bank.field,
            description=bank.description,
            source=source,
        )
        db.add(row)
        await db.flush()
        changed = True
    else:
        for attr in ("title", "part", "field", "description"):
            if getattr(row, attr) != getattr(bank, attr):
                setattr(row, attr, getattr(bank, attr))
                changed = True
    existing = list((await db.scalars(select(ExamQuestion).where(ExamQuestion.bank_id == row.id))).all())
    by_key = {(q.qid, q.version): q for q in existing}
    current = {q.qid: q for q in existing if q.is_current}
    in_file: set[str] = set()
    inserts: list[ExamQuestion] = []
    promote: list[ExamQuestion] = []
    for q in bank.questions:
        in_file.add(q.id)
        version = q.version
        values = _question_values(q)
        found = by_key.get((q.id, version))
        if found is not None and found.is_current:
            diff = {k: values[k] for k in _METADATA if getattr(found, k) != values[k]}
            if diff:
                for k, v in diff.items():
                    setattr(found, k, v)
                report.updated += 1
            else:
                report.unchanged += 1
            continue
        old = current.get(q.id)
        if old is not None:
            old.is_current = False
        if found is not None:  # back to a version seen before
            promote.append(found)
            for k in _METADATA:
                setattr(found, k, values[k])
        else:
            inserts.append(ExamQuestion(bank_id=row.id, qid=q.id, version=version, is_current=True, **values))
        if old is not None:
            report.new_versions += 1
        else:
            report.loaded += 1
    for qid, cur in current.items():
        if qid not in in_file:
            cur.is_current = False
            report.retired += 1
    # Demote first: the partial unique index allows one current version per question id.
    await db.flush()
    for again in promote:
        again.is_current = True
    await db.flush()
    db.add_all(inserts)
    await db.flush()
    if changed or report.loaded or report.new_versions or report.updated or report.retired:
        row.imported_at = utcnow()
        row.source = source
        await audit_record(
            db,
            actor=actor_of(principal),
            action="exam.bank.import",
            entity_type="exam_bank",
            entity_id=row.id,
            agency_id=principal.agency_id or None,
            data={
                "code": bank.code,
                "source": source,
                "loaded": report.loaded,
                "new_versions": report.new_versions,
                "updated": report.updated,
                "retired": report.retired,
                "unchanged": report.unchanged,
            },
        )
    if commit:
        await db.commit()
    return report


def report_from_parse(
    source: str, errors: Sequence[Any], unsupported: Sequence[Any], duplicates: Sequence[Any] = ()
) -> BankImportReport:
    return BankImportReport(
        source=source,
        bank=None,
        errors=[Position(position=str(e.position), message=str(e.message)) for e in errors],
        unsupported=[
            UnsupportedOut(position=str(u.position), kind=str(u.kind), excerpt=str(u.excerpt))
            for u in unsupported
        ],
        duplicates=[
            Position(position=str(d.position), message=f"{d.first_position}（{d.question_id}）")
            for d in duplicates
        ],
    )


async def bank_list(db: AsyncSession) -> list[BankOut]:
    banks = list((await db.scalars(select(ExamBank).order_by(ExamBank.part, ExamBank.code))).all())
    counts = await db.execute(
        select(ExamQuestion.bank_id, ExamQuestion.category, ExamQuestion.type, func.count())
        .where(ExamQuestion.is_current.is_(True))
        .group_by(ExamQuestion.bank_id, ExamQuestion.category, ExamQuestion.type)
    )
    by_bank: dict[int, dict[str, int]] = {}
    for bank_id, category, qtype, n in counts:
        by_bank.setdefault(bank_id, {})[f"{category}/{qtype}"] = n
    versions = dict(
        (await db.execute(select(ExamQuestion.bank_id, func.count()).group_by(ExamQuestion.bank_id))).all()
    )
    return [
        BankOut(
            id=b.id,
            code=b.code,
            title=b.title,
            part=ExamPart(b.part),
            part_label=ExamPart(b.part).label,
            field=b.field,
            description=b.description,
            source=b.source,
            imported_at=b.imported_at,
            current_questions=sum(by_bank.get(b.id, {}).values()),
            versions=versions.get(b.id, 0),
            by_category_type=by_bank.get(b.id, {}),
        )
        for b in banks
    ]


# ---------------------------------------------------------------- the pool a part draws from


_POOLS: dict[tuple[str, str, Any], tuple[list[rules.Candidate], dict[int, str]]] = {}
_BANKS_STAMP = select(func.max(ExamBank.imported_at)).scalar_subquery()


async def _pool(
    db: AsyncSession, *, part: str, field: str, stamp: Any = None
) -> tuple[list[rules.Candidate], dict[int, str]]:
    """Current questions of the banks a part may use: the public banks, or the specialised banks of a field.

    Cached per process and keyed by the banks' last import time (every import that changes a question
    stamps it), so the exam-start spike does not reload a bank for every candidate.
    """
    if part != ExamPart.SPECIALISED:
        field = ""  # every candidate draws the public part from the same banks
    if stamp is None:
        stamp = await db.scalar(select(_BANKS_STAMP))
    key = (part, field, stamp)
    cached = _POOLS.get(key)
    if cached is not None:
        return cached
    stmt = (
        select(
            ExamQuestion.id,
            ExamQuestion.qid,
            ExamQuestion.type,
            ExamQuestion.category,
            ExamQuestion.options_json,
            ExamBank.code,
        )
        .join(ExamBank, ExamBank.id == ExamQuestion.bank_id)
        .where(ExamQuestion.is_current.is_(True), ExamBank.part == part)
    )
    if part == ExamPart.SPECIALISED:
        stmt = stmt.where(ExamBank.field == field)
    pool: list[rules.Candidate] = []
    banks: dict[int, str] = {}
    for qid_, qkey, qtype, category, options_json, code in await db.execute(stmt):
        pool.append(rules.Candidate(qid_, (code, qkey), qtype, category, len(json.loads(options_json))))
        banks[qid_] = code
    if len(_POOLS) > 64:
        _POOLS.clear()
    _POOLS[key] = (pool, banks)
    return pool, banks


def _blueprint(part: ExamPartRow) -> list[BlueprintRule]:
    return [BlueprintRule(**r) for r in json.loads(part.blueprint_json)]


# ---------------------------------------------------------------- exams


def _rule_out(r: BlueprintRule) -> RuleOut:
    return RuleOut(
        category=QuestionCategory(r.category),
        category_label=QuestionCategory(r.category).label,
        type=QuestionType(r.type),
        type_label=QuestionType(r.type).label,
        count=r.count,
        points=r.points,
        bank=r.bank,
    )


def part_out(p: ExamPartRow) -> PartOut:
    bp = _blueprint(p)
    return PartOut(
        id=p.id,
        position=p.position,
        part=ExamPart(p.part),
        part_label=ExamPart(p.part).label,
        title=p.title,
        duration_minutes=p.duration_minutes,
        question_count=sum(r.count for r in bp),
        blueprint=[_rule_out(r) for r in bp],
    )


def session_state(s: ExamSession, now: dt.datetime) -> str:
    if now < s.opens_at:
        return "upcoming"
    return "open" if now < s.closes_at else "closed"


_STATE_LABELS = {"upcoming": "未开始", "open": "进行中", "closed": "已结束"}


def session_out(s: ExamSession, exam_title: str, enrolled: int, now: dt.datetime | None = None) -> SessionOut:
    state = session_state(s, now or utcnow())
    return SessionOut(
        id=s.id,
        exam_id=s.exam_id,
        exam_title=exam_title,
        title=s.title,
        opens_at=s.opens_at,
        closes_at=s.closes_at,
        review_policy=ReviewPolicy(s.review_policy),
        review_policy_label=ReviewPolicy(s.review_policy).label,
        submit_on_leave=s.submit_on_leave,
        state=state,
        state_label=_STATE_LABELS[state],
        enrolled=enrolled,
    )


async def exam_create(db: AsyncSession, *, principal: Principal, data: ExamIn) -> Exam:
    """定义考试: parts in order, each with a blueprint and a duration; pass mark and retakes."""
    _require_authority(principal, "定义考试")
    agency = await agency_get(db, principal, principal.agency_id)
    policy = (await agency_policies(db, {agency.id: agency.path}))[agency.id]
    errors: list[FieldError] = []
    title = " ".join(data.title.split())
    if not title:
        errors.append(FieldError("title", "考试名称不能为空"))
    seen: set[str] = set()
    for index, part in enumerate(data.parts):
        name = f"parts[{index}]"
        if part.part in seen:
            errors.append(FieldError(name, f"考试部分 {part.part.label} 重复"))
        seen.add(part.part)
        bp = [
            BlueprintRule(r.category.value, r.type.value, r.count, r.points, r.bank.strip())
            for r in part.blueprint
        ]
        bp_errors = rules.blueprint_errors(bp)
        for e in bp_errors:
            errors.append(FieldError(f"{name}.blueprint", f"{part.part.label}：{e}"))
        if not bp_errors:
            problem = await _availability(db, part.part.value, bp)
            if problem:
                errors.append(FieldError(f"{name}.blueprint", f"{part.part.label}：{problem}"))
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    exam = Exam(
        agency_id=agency.id,
        title=title,
        description=data.description.strip(),
        pass_mark=data.pass_mark if data.pass_mark is not None else policy.exam_pass_mark,
        retakes=data.retakes if data.retakes is not None else policy.exam_retakes,
        multiple_scoring=data.multiple_scoring.value,
        created_by_name=principal.username,
    )
    db.add(exam)
    await db.flush()
    for position, part in enumerate(data.parts, start=1):
        stored = [
            {
                "category": r.category.value,
                "type": r.type.value,
                "count": r.count,
                "points": r.points,
                "bank": r.bank.strip(),
            }
            for r in part.blueprint
        ]
        db.add(
            ExamPartRow(
                exam_id=exam.id,
                position=position,
                part=part.part.value,
                title=part.title.strip() or part.part.label,
                duration_minutes=part.duration_minutes,
                blueprint_json=json.dumps(stored, ensure_ascii=False),
            )
        )
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="exam.create",
        entity_type="exam",
        entity_id=exam.id,
        agency_id=agency.id,
        data={
            "title": title,
            "parts": [p.part.value for p in data.parts],
            "pass_mark": exam.pass_mark,
            "retakes": exam.retakes,
        },
    )
    await db.commit()
    return exam


async def _availability(db: AsyncSession, part: str, bp: list[BlueprintRule]) -> str:
    """Why the banks cannot serve this blueprint ('' when they can): public, or at least one field."""
    if part == ExamPart.PUBLIC:
        pool, banks = await _pool(db, part=part, field="")
        try:
            rules.draw_paper(bp, pool, seed=1, banks_of=banks)
        except rules.DrawError as exc:
            return str(exc)
        return ""
    fields = list((await db.scalars(select(ExamBank.field).where(ExamBank.part == part).distinct())).all())
    if not fields:
        return "还没有导入专门法律知识题库"
    problems = []
    for f in sorted(fields):
        pool, banks = await _pool(db, part=part, field=f)
        try:
            rules.draw_paper(bp, pool, seed=1, banks_of=banks)
            return ""
        except rules.DrawError as exc:
            problems.append(f"{f}：{exc}")
    return "没有一个执法领域的题库能满足组卷规则（" + "；".join(problems) + "）"


async def _exam_row(db: AsyncSession, principal: Principal, exam_id: int) -> tuple[Exam, Agency]:
    row = (
        await db.execute(
            select(Exam, Agency)
            .join(Agency, Agency.id == Exam.agency_id)
            .where(Exam.id == exam_id, _visible_owner(principal))
        )
    ).one_or_none()
    if row is None:
        raise NotFound("考试不存在或不在您的管理范围内")
    return row[0], row[1]


async def _parts(db: AsyncSession, exam_id: int) -> list[ExamPartRow]:
    return list(
        (
            await db.scalars(
                select(ExamPartRow).where(ExamPartRow.exam_id == exam_id).order_by(ExamPartRow.position)
            )
        ).all()
    )


async def _enrolled_counts(db: AsyncSession, session_ids: list[int]) -> dict[int, int]:
    if not session_ids:
        return {}
    rows = await db.execute(
        select(ExamEnrolment.session_id, func.count())
        .where(ExamEnrolment.session_id.in_(session_ids))
        .group_by(ExamEnrolment.session_id)
    )
    return {k: v for k, v in rows}


async def exam_detail(db: AsyncSession, principal: Principal, exam_id: int) -> ExamOut:
    exam, agency = await _exam_row(db, principal, exam_id)
    parts = await _parts(db, exam.id)
    sessions = list(
        (
            await db.scalars(
                select(ExamSession)
                .where(ExamSession.exam_id == exam.id)
                .order_by(ExamSession.opens_at.desc())
            )
        ).all()
    )
    counts = await _enrolled_counts(db, [s.id for s in sessions])
    return _exam_out(exam, agency, parts, [session_out(s, exam.title, counts.get(s.id, 0)) for s in sessions])


def _exam_out(exam: Exam, agency: Agency, parts: list[ExamPartRow], sessions: list[SessionOut]) -> ExamOut:
    return ExamOut(
        id=exam.id,
        agency_id=agency.id,
        agency_name=agency.name,
        title=exam.title,
        description=exam.description,
        pass_mark=exam.pass_mark,
        retakes=exam.retakes,
        multiple_scoring=MultipleScoring(exam.multiple_scoring),
        multiple_scoring_label=MultipleScoring(exam.multiple_scoring).label,
        created_by_name=exam.created_by_name,
        created_at=exam.created_at,
        parts=[part_out(p) for p in parts],
        sessions=sessions,
    )


async def exam_list(db: AsyncSession, principal: Principal) -> list[ExamOut]:
    rows = (
        await db.execute(
            select(Exam, Agency)
            .join(Agency, Agency.id == Exam.agency_id)
            .where(_visible_owner(principal))
            .order_by(Exam.id.desc())
        )
    ).all()
    out = [_exam_out(exam, agency, await _parts(db, exam.id), []) for exam, agency in rows]
    sessions = list(
        (
            await db.scalars(
                select(ExamSession)
                .where(ExamSession.exam_id.in_([e.id for e in out] or [-1]))
                .order_by(ExamSession.opens_at.desc())
            )
        ).all()
    )
    counts = await _enrolled_counts(db, [s.id for s in sessions])
    by_exam = {e.id: e for e in out}
    for s in sessions:
        e = by_exam[s.exam_id]
        e.sessions.append(session_out(s, e.title, counts.get(s.id, 0)))
    return out


# ---------------------------------------------------------------- sessions and enrolment


async def session_create(
    db: AsyncSession, *, principal: Principal, exam_id: int, data: SessionIn
) -> ExamSession:
    """开设考试场次: a time window, the review policy, whether leaving the page submits."""
    _require_authority(principal, "开设考试场次")
    exam, _agency = await _exam_row(db, principal, exam_id)
    errors: list[FieldError] = []
    for name in ("opens_at", "closes_at"):
        if getattr(data, name).tzinfo is None:
            errors.append(FieldError(name, "时间须带时区（例如 2026-09-01T09:00:00+08:00）"))
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if data.closes_at <= data.opens_at:
        raise DomainError("结束时间须晚于开始时间", field="closes_at")
    parts = await _parts(db, exam.id)
    longest = max(p.duration_minutes for p in parts)
    if data.closes_at - data.opens_at < dt.timedelta(minutes=longest):
        raise DomainError(f"考试时段短于最长的考试部分（{longest} 分钟）", field="closes_at")
    title = " ".join(data.title.split())
    s = ExamSession(
        exam_id=exam.id,
        agency_id=principal.agency_id if principal.agency_id else exam.agency_id,
        title=title,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        review_policy=data.review_policy.value,
        submit_on_leave=data.submit_on_leave,
        created_by_name=principal.username,
    )
    db.add(s)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="exam.session.create",
        entity_type="exam_session",
        entity_id=s.id,
        agency_id=s.agency_id,
        data={
            "exam_id": exam.id,
            "title": title,
            "opens_at": data.opens_at.isoformat(),
            "closes_at": data.closes_at.isoformat(),
            "review_policy": s.review_policy,
            "submit_on_leave": s.submit_on_leave,
        },
    )
    await db.commit()
    return s


async def _session_row(db: AsyncSession, principal: Principal, session_id: int) -> tuple[ExamSession, Exam]:
    row = (
        await db.execute(
            select(ExamSession, Exam)
            .join(Exam, Exam.id == ExamSession.exam_id)
            .join(Agency, Agency.id == ExamSession.agency_id)
            .where(ExamSession.id == session_id, _visible_owner(principal))
        )
    ).one_or_none()
    if row is None:
        raise NotFound("考试场次不存在或不在您的管理范围内")
    return row[0], row[1]


async def session_detail(
    db: AsyncSession, principal: Principal, session_id: int
) -> tuple[SessionOut, ExamOut]:
    s, exam = await _session_row(db, principal, session_id)
    counts = await _enrolled_counts(db, [s.id])
    detail = await exam_detail(db, principal, exam.id)
    return session_out(s, exam.title, counts.get(s.id, 0)), detail


async def session_enrol(
    db: AsyncSession, *, principal: Principal, session_id: int, data: EnrolIn
) -> EnrolResult:
    """报名: officers of the principal's subtree, by id, ID number, or a whole agency's tree."""
    _require_authority(principal, "安排考生")
    s, _exam = await _session_row(db, principal, session_id)
    if session_state(s, utcnow()) == "closed":
        raise Conflict("考试场次已结束，不能再安排考生")
    errors: list[Position] = []
    wanted: dict[int, int | None] = {}
    skipped = 0
    scope = Agency.path.startswith(principal.agency_path)
    if data.officer_ids:
        found = set(
            (
                await db.scalars(
                    select(Officer.id)
                    .join(Agency, Agency.id == Officer.agency_id)
                    .where(Officer.id.in_(data.officer_ids), scope)
                )
            ).all()
        )
        for i, oid in enumerate(data.officer_ids, start=1):
            if oid in found:
                wanted[oid] = None
            else:
                errors.append(
                    Position(
                        position=f"第 {i} 个人员编号", message=f"执法人员 {oid} 不存在或不在您的管理范围内"
                    )
                )
    numbers = [n.strip().upper() for n in data.id_numbers if n.strip()]
    if numbers:
        rows = dict(
            (
                await db.execute(
                    select(Officer.id_number, Officer.id)
                    .join(Agency, Agency.id == Officer.agency_id)
                    .where(Officer.id_number.in_(numbers), scope)
                )
            ).all()
        )
        for i, n in enumerate(numbers, start=1):
            if n in rows:
                wanted[rows[n]] = None
            else:
                errors.append(
                    Position(position=f"第 {i} 行", message=f"身份证号码 {n} 不存在或不在您的管理范围内")
                )
    if errors:
        raise DomainError(errors[0].message, errors=[FieldError(e.position, e.message) for e in errors])
    if data.agency_id is not None:
        agency = await agency_get(db, principal, data.agency_id)
        policies = await agency_policies(db, {agency.id: agency.path})
        policy = policies[agency.id]
        rows2 = await db.execute(
            select(Officer.id, Officer.staff_type, Officer.employment_status)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Agency.path.startswith(agency.path))
        )
        for oid, staff_type, status in rows2:
            if status != EmploymentStatus.ACTIVE or not policy.staff_type_allowed(StaffType(staff_type)):
                skipped += 1
                continue
            wanted.setdefault(oid, agency.id)
    already = set(
        (await db.scalars(select(ExamEnrolment.officer_id).where(ExamEnrolment.session_id == s.id))).all()
    )
    new = [oid for oid in wanted if oid not in already]
    db.add_all(
        ExamEnrolment(
            session_id=s.id, officer_id=oid, via_agency_id=wanted[oid], created_by_name=principal.username
        )
        for oid in new
    )
    await db.flush()
    if new:
        await audit_record(
            db,
            actor=actor_of(principal),
            action="exam.session.enrol",
            entity_type="exam_session",
            entity_id=s.id,
            agency_id=s.agency_id,
            data={"added": len(new), "agency_id": data.agency_id, "officer_ids": new[:200]},
        )
    await db.commit()
    return EnrolResult(added=len(new), already=len(wanted) - len(new), skipped=skipped)


# ---------------------------------------------------------------- question versions (cached)


@dataclass(frozen=True, slots=True)
class QuestionContent:
    """What never changes in a question version: shown to candidates and graded."""

    id: int
    type: str
    category: str
    stem: str
    options: tuple[str, ...]
    key: frozenset[int]
    weights: tuple[float, ...] | None


_CACHE: dict[int, QuestionContent] = {}
"""Question versions by row id: a version's content never changes and its row is never deleted,
so an id always means the same content (tests that restart the ids clear it)."""
_CACHE_MAX = 100_000


async def _questions(db: AsyncSession, ids: Sequence[int]) -> dict[int, QuestionContent]:
    missing = [i for i in set(ids) if i not in _CACHE]
    if missing:
        if len(_CACHE) + len(missing) > _CACHE_MAX:
            _CACHE.clear()
        rows = await db.execute(
            select(
                ExamQuestion.id,
                ExamQuestion.type,
                ExamQuestion.category,
                ExamQuestion.stem,
                ExamQuestion.options_json,
                ExamQuestion.answer_json,
                ExamQuestion.weights_json,
            ).where(ExamQuestion.id.in_(missing))
        )
        for qid, qtype, category, stem, options_json, answer_json, weights_json in rows:
            answer = json.loads(answer_json)
            _CACHE[qid] = QuestionContent(
                id=qid,
                type=qtype,
                category=category,
                stem=stem,
                options=tuple(json.loads(options_json))
                if qtype != QuestionType.JUDGE
                else rules.JUDGE_OPTIONS,
                key=rules.key_indexes(qtype, answer if isinstance(answer, bool) else tuple(answer)),
                weights=None if weights_json is None else tuple(w / 100 for w in json.loads(weights_json)),
            )
    return {i: _CACHE[i] for i in ids}


def cached_questions(ids: Sequence[int]) -> dict[int, QuestionContent] | None:
    """The versions from this process's cache, or None when any is not there yet (no database)."""
    try:
        return {i: _CACHE[i] for i in ids}
    except KeyError:
        return None


_PAPER = msgspec.json.Decoder(list[rules.PaperItem])


def paper_of(paper_json: str) -> list[rules.PaperItem]:
    """The stored draw (``[[question_id, order, points, category, type], ...]``) as paper items,
    decoded straight into the named tuples (half the time of ``json.loads`` and a tuple per item)."""
    return _PAPER.decode(paper_json)


def _paper(attempt: ExamAttempt) -> list[rules.PaperItem]:
    return paper_of(attempt.paper_json)


# ---------------------------------------------------------------- the candidate


async def _enrolment(
    db: AsyncSession, session_id: int, officer_id: int, *, lock: bool = False
) -> ExamEnrolment | None:
    stmt = select(ExamEnrolment).where(
        ExamEnrolment.session_id == session_id, ExamEnrolment.officer_id == officer_id
    )
    if lock:
        stmt = stmt.with_for_update()
    return await db.scalar(stmt)


async def my_sessions(
    db: AsyncSession, principal: Principal, *, now: dt.datetime | None = None
) -> list[MySession]:
    """我的考试: the sessions the officer is enrolled in, with each part's attempts and whether it can start."""
    officer_id = _officer_id(principal)
    now = now or utcnow()
    await _close_overdue_of(db, officer_id=officer_id, now=now)
    rows = (
        await db.execute(
            select(ExamSession, Exam)
            .join(ExamEnrolment, ExamEnrolment.session_id == ExamSession.id)
            .join(Exam, Exam.id == ExamSession.exam_id)
            .where(ExamEnrolment.officer_id == officer_id)
            .order_by(ExamSession.opens_at.desc())
        )
    ).all()
    attempts = list(
        (
            await db.scalars(
                select(ExamAttempt).where(ExamAttempt.officer_id == officer_id).order_by(ExamAttempt.number)
            )
        ).all()
    )
    out = []
    for s, exam in rows:
        parts = await _parts(db, exam.id)
        statuses = []
        for p in parts:
            mine = [a for a in attempts if a.session_id == s.id and a.part_id == p.id]
            open_a = next((a for a in mine if a.status == AttemptStatus.OPEN), None)
            refusal = rules.start_refusal(
                now=now,
                opens_at=s.opens_at,
                closes_at=s.closes_at,
                previous=[a.passed for a in mine if a.status == AttemptStatus.CLOSED],
                retakes=exam.retakes,
            )
            po = part_out(p)
            statuses.append(
                PartStatus(
                    part_id=p.id,
                    part=ExamPart(p.part),
                    part_label=po.part_label,
                    title=p.title,
                    duration_minutes=p.duration_minutes,
                    question_count=po.question_count,
                    attempts=[
                        AttemptBrief(
                            id=a.id, number=a.number, status=a.status, score=a.score, passed=a.passed
                        )
                        for a in mine
                    ],
                    can_start=open_a is None and refusal is None,
                    open_attempt_id=open_a.id if open_a else None,
                    refusal="" if refusal is None or open_a else rules.START_REFUSALS[refusal],
                )
            )
        out.append(
            MySession(
                session=session_out(s, exam.title, 0, now),
                pass_mark=exam.pass_mark,
                retakes=exam.retakes,
                parts=statuses,
            )
        )
    return out


async def attempt_start(
    db: AsyncSession, *, principal: Principal, session_id: int, part_id: int, now: dt.datetime | None = None
) -> ExamAttempt:
    """开始作答: draw a paper by the part's blueprint; an open attempt of the part is resumed instead."""
    return (await _start(db, principal=principal, session_id=session_id, part_id=part_id, now=now))[0]


async def attempt_start_view(
    db: AsyncSession, *, principal: Principal, session_id: int, part_id: int, now: dt.datetime | None = None
) -> AttemptOut:
    """开始作答 and the paper in one request: a new attempt is served from what the start
    transaction already holds (no answers yet); a resumed one is read as ``attempt_view`` does."""
    now = now or utcnow()
    attempt, started = await _start(db, principal=principal, session_id=session_id, part_id=part_id, now=now)
    if started is None:
        return await attempt_view(db, principal, attempt.id, now=now)
    s, exam, part = started
    paper = _paper(attempt)
    content = await _questions(db, [p.question_id for p in paper])
    return _attempt_out(attempt, s, exam, part, paper, content, {}, now)


_START_ROW = (
    select(ExamSession, Exam, ExamPartRow, Officer, _BANKS_STAMP)
    .join(Exam, Exam.id == ExamSession.exam_id)
    .join(ExamPartRow, ExamPartRow.exam_id == Exam.id)
    .join(
        ExamEnrolment,
        and_(ExamEnrolment.session_id == ExamSession.id, ExamEnrolment.officer_id == bindparam("officer_id")),
    )
    .join(Officer, Officer.id == bindparam("officer_id"))
    .where(ExamSession.id == bindparam("session_id"), ExamPartRow.id == bindparam("part_id"))
)
"""The session, exam, part, enrolment, officer and the banks' import stamp of a start."""

_START_ATTEMPTS = select(ExamAttempt).where(
    ExamAttempt.officer_id == bindparam("officer_id"),
    or_(
        and_(ExamAttempt.session_id == bindparam("session_id"), ExamAttempt.part_id == bindparam("part_id")),
        and_(ExamAttempt.status == AttemptStatus.OPEN.value, ExamAttempt.deadline_at < bindparam("cutoff")),
    ),
)
"""This part's attempts, and any of the officer's attempts past time-up (closed lazily first)."""

_ATTEMPTS = cast(Table, ExamAttempt.__table__)
_INSERT_ATTEMPT = insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)
"""The new attempt (Core: the ORM's flush of one row costs more than the statement)."""


async def _start(
    db: AsyncSession, *, principal: Principal, session_id: int, part_id: int, now: dt.datetime | None
) -> tuple[ExamAttempt, tuple[ExamSession, Exam, ExamPartRow] | None]:
    """(the attempt, (session, exam, part) when it was started now / None when resumed). Commits."""
    officer_id = _officer_id(principal)
    now = now or utcnow()
    ids = {"officer_id": officer_id, "session_id": session_id, "part_id": part_id}
    row = (await db.execute(_START_ROW, ids)).one_or_none()
    attempts = list((await db.scalars(_START_ATTEMPTS, {**ids, "cutoff": now - rules.GRACE})).all())
    if any(a.status == AttemptStatus.OPEN and rules.is_overdue(a.deadline_at, now) for a in attempts):
        await _close_overdue_of(db, officer_id=officer_id, now=now)
        return await _start(db, principal=principal, session_id=session_id, part_id=part_id, now=now)
    if row is None:
        raise NotFound("考试不存在或您未报名该考试")
    s, exam, part, officer, stamp = row
    mine = [a for a in attempts if a.session_id == s.id and a.part_id == part.id]
    open_a = next((a for a in mine if a.status == AttemptStatus.OPEN), None)
    if open_a is not None:
        return open_a, None
    refusal = rules.start_refusal(
        now=now,
        opens_at=s.opens_at,
        closes_at=s.closes_at,
        previous=[a.passed for a in mine if a.status == AttemptStatus.CLOSED],
        retakes=exam.retakes,
    )
    if refusal is not None:
        raise Conflict(rules.START_REFUSALS[refusal])
    pool, banks = await _pool(db, part=part.part, field=officer.field, stamp=stamp)
    seed = secrets.randbits(62)
    try:
        paper = rules.draw_paper(_blueprint(part), pool, seed=seed, banks_of=banks)
    except rules.DrawError as exc:
        what = "公共法律知识" if part.part == ExamPart.PUBLIC else f"执法领域“{officer.field}”的专门法律知识"
        raise Conflict(f"{what}题库不足，暂时无法组卷（{exc}），请联系考试管理员") from exc
    values: dict[str, Any] = {
        "session_id": s.id,
        "part_id": part.id,
        "officer_id": officer_id,
        "agency_id": officer.agency_id,
        "field": officer.field,
        "number": len(mine) + 1,
        "seed": seed,
        "paper_json": json.dumps(
            [[p.question_id, list(p.order), p.points, p.category, p.type] for p in paper]
        ),
        "question_count": len(paper),
        "status": AttemptStatus.OPEN.value,
        "started_at": now,
        "deadline_at": rules.attempt_deadline(
            now, duration_minutes=part.duration_minutes, closes_at=s.closes_at
        ),
        "closed_at": None,
        "closed_by": "",
        "score": None,
        "passed": None,
        "result_json": "",
        "leave_count": 0,
    }
    try:
        attempt_id = (await db.execute(_INSERT_ATTEMPT, values)).scalar_one()
    except IntegrityError:
        # A second tab or a double click started the same part at the same moment: resume theirs.
        await db.rollback()
        existing = await db.scalar(
            select(ExamAttempt).where(
                ExamAttempt.officer_id == officer_id,
                ExamAttempt.part_id == part.id,
                ExamAttempt.status == AttemptStatus.OPEN,
            )
        )
        if existing is None:
            raise
        return existing, None
    attempt = ExamAttempt(id=attempt_id, **values)  # as stored; not added to the session
    # Into the audit outbox with the attempt (no wait for the chain's lock): chained within seconds.
    await audit_enqueue(
        db,
        actor=actor_of(principal),
        action="exam.attempt.start",
        entity_type="exam_attempt",
        entity_id=attempt.id,
        agency_id=officer.agency_id,
        data={
            "session_id": s.id,
            "part": part.part,
            "number": attempt.number,
            "seed": seed,
            "questions": attempt.question_count,
            "deadline_at": attempt.deadline_at.isoformat(),
        },
    )
    await db.commit()
    return attempt, (s, exam, part)


async def _own_attempt(db: AsyncSession, principal: Principal, attempt_id: int) -> ExamAttempt:
    officer_id = _officer_id(principal)
    attempt = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    if attempt is None or attempt.officer_id != officer_id:
        raise NotFound("答卷不存在")
    return attempt


_ANSWERS = (
    select(ExamAnswer.position, ExamAnswer.choice, ExamAnswer.seq)
    .where(ExamAnswer.attempt_id == bindparam("attempt_id"))
    .order_by(ExamAnswer.position, ExamAnswer.seq)
)


async def _latest_answers(db: AsyncSession, attempt_id: int) -> dict[int, tuple[tuple[int, ...], int]]:
    """position → (displayed choice, seq) of the highest seq saved."""
    return latest_of(await db.execute(_ANSWERS, {"attempt_id": attempt_id}))


def latest_of(rows: Any) -> dict[int, tuple[tuple[int, ...], int]]:
    """(position, choice, seq) rows ordered by position and seq → position → (choice, seq) of the last."""
    out: dict[int, tuple[tuple[int, ...], int]] = {}
    for position, choice, seq in rows:
        out[position] = (rules.parse_choice(choice), seq)  # ordered by seq: the last one wins
    return out


async def attempt_view(
    db: AsyncSession,
    principal: Principal,
    attempt_id: int,
    *,
    now: dt.datetime | None = None,
    with_paper: bool = True,
) -> AttemptOut:
    """The paper (never its keys while open), the saved answers and the server's deadline; the result
    once closed, with the correct answers only when the session's review policy allows.
    ``with_paper``: as ``_view_of`` takes it."""
    now = now or utcnow()
    attempt = await _own_attempt(db, principal, attempt_id)
    if attempt.status == AttemptStatus.OPEN and rules.is_overdue(attempt.deadline_at, now):
        await attempt_close(db, attempt_id=attempt.id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now)
        attempt = await _own_attempt(db, principal, attempt_id)
    row = (
        await db.execute(
            select(ExamSession, Exam, ExamPartRow)
            .join(Exam, Exam.id == ExamSession.exam_id)
            .join(ExamPartRow, ExamPartRow.id == attempt.part_id)
            .where(ExamSession.id == attempt.session_id)
        )
    ).one()
    s, exam, part = row
    paper = _paper(attempt)
    content = await _questions(db, [p.question_id for p in paper])
    answers = await _latest_answers(db, attempt.id)
    return await _view_of(db, attempt, s, exam, part, paper, content, answers, now, with_paper=with_paper)


async def _view_of(
    db: AsyncSession,
    attempt: ExamAttempt,
    s: ExamSession,
    exam: Exam,
    part: ExamPartRow,
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
    now: dt.datetime,
    *,
    grant: ExamQualification | None = None,
    with_paper: bool = True,
) -> AttemptOut:
    """The candidate's view; once closed, with the result and (when the session's policy allows
    it) the review. ``grant``: the qualification the close just granted, if it did.
    ``with_paper`` False, for a client that asked for no representation back (``Prefer:
    return=minimal``, the exam page's submit, which then loads the result page): the attempt and
    its result without the questions, the saved answers and the review (46 KB less at 100
    questions, and no read of the review's legal bases)."""
    out = _attempt_out(attempt, s, exam, part, paper, content, answers, now, with_paper=with_paper)
    if attempt.status != AttemptStatus.CLOSED:
        return out
    out.result = await _result_out(db, attempt, exam, grant=grant)
    if _review_shown(s, now):
        if with_paper:
            out.review = await _review(db, attempt, paper, content, answers)
    else:
        out.review_note = _REVIEW_NOTES.get(s.review_policy, "")
    return out


def _review_shown(s: ExamSession, now: dt.datetime) -> bool:
    closed = session_state(s, now) == "closed"
    return rules.review_allowed(s.review_policy, attempt_closed=True, session_closed=closed)


_REVIEW_NOTES = {
    ReviewPolicy.NEVER.value: "本场考试不公布答案。",
    ReviewPolicy.AFTER_CLOSE.value: "考试场次结束后可查看正确答案。",
}


def closed_view_without_review(
    attempt: ExamAttempt,
    s: ExamSession,
    exam: Exam,
    part: ExamPartRow,
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
    now: dt.datetime,
    *,
    with_paper: bool = True,
) -> AttemptOut | None:
    """``_view_of`` a closed attempt when it needs no database (not passed, no review shown);
    else None. ``with_paper``: as ``_view_of`` takes it."""
    if attempt.passed or _review_shown(s, now):
        return None
    out = _attempt_out(attempt, s, exam, part, paper, content, answers, now, with_paper=with_paper)
    out.result = _result_of(attempt, exam, None)
    out.review_note = _REVIEW_NOTES.get(s.review_policy, "")
    return out


_TYPES = {t.value: t for t in QuestionType}
_CATEGORIES = {c.value: c for c in QuestionCategory}
_LABELS = {m: m.label for m in (*QuestionType, *QuestionCategory)}


def _attempt_out(
    attempt: ExamAttempt,
    s: ExamSession,
    exam: Exam,
    part: ExamPartRow,
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
    now: dt.datetime,
    *,
    with_paper: bool = True,
) -> AttemptOut:
    """The candidate's view of an attempt (no keys): questions, saved answers, the server's clock."""
    questions = []
    for position, item in enumerate(paper if with_paper else ()):
        q = content[item.question_id]
        qtype = _TYPES[item.type]
        questions.append(
            PaperQuestion(
                position=position,
                type=qtype,
                type_label=_LABELS[qtype],
                category_label=_LABELS[_CATEGORIES[item.category]],
                points=item.points,
                stem=q.stem,
                options=[q.options[i] for i in item.order],
            )
        )
    return AttemptOut(
        id=attempt.id,
        session_id=s.id,
        session_title=s.title,
        exam_title=exam.title,
        part=ExamPart(part.part),
        part_label=ExamPart(part.part).label,
        number=attempt.number,
        status=attempt.status,
        started_at=attempt.started_at,
        deadline_at=attempt.deadline_at,
        server_now=now,
        seconds_left=rules.seconds_left(attempt.deadline_at, now)
        if attempt.status == AttemptStatus.OPEN
        else 0,
        submit_on_leave=s.submit_on_leave,
        question_count=attempt.question_count,
        questions=questions,
        answers=[AnswerOut(position=p, choice=list(c), seq=seq) for p, (c, seq) in sorted(answers.items())]
        if with_paper
        else [],
        max_seq=max((seq for _c, seq in answers.values()), default=0),
    )


async def _review(
    db: AsyncSession,
    attempt: ExamAttempt,
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
) -> list[ReviewItem]:
    meta = dict(
        (row[0], (row[1], row[2]))
        for row in await db.execute(
            select(ExamQuestion.id, ExamQuestion.basis, ExamQuestion.explanation).where(
                ExamQuestion.id.in_([p.question_id for p in paper])
            )
        )
    )
    fractions = json.loads(attempt.result_json).get("fractions", [])
    items = []
    for position, item in enumerate(paper):
        q = content[item.question_id]
        correct = sorted(i for i, bank_index in enumerate(item.order) if bank_index in q.key)
        basis, explanation = meta.get(item.question_id, ("", ""))
        items.append(
            ReviewItem(
                position=position,
                correct=correct,
                chosen=list(answers.get(position, ((), 0))[0]),
                earned=round(item.points * (fractions[position] if position < len(fractions) else 0.0), 2),
                basis=basis,
                explanation=explanation,
            )
        )
    return items


async def _result_out(
    db: AsyncSession, attempt: ExamAttempt, exam: Exam, *, grant: ExamQualification | None = None
) -> ResultOut:
    """``grant``: the qualification the close just granted, if it did (no query for it then)."""
    # Only a passed part can be named by a qualification.
    qual = grant
    if qual is None and attempt.passed:
        qual = await db.scalar(select(ExamQualification).where(ExamQualification.attempt_id == attempt.id))
    if qual is None and attempt.passed:
        # The grant names the attempt that completed the exam; show it on every passed part.
        qual = await db.scalar(
            select(ExamQualification)
            .join(ExamAttempt, ExamAttempt.id == ExamQualification.attempt_id)
            .where(ExamAttempt.session_id == attempt.session_id, ExamAttempt.officer_id == attempt.officer_id)
        )
    return _result_of(attempt, exam, qual)


def _result_of(attempt: ExamAttempt, exam: Exam, qual: ExamQualification | None) -> ResultOut:
    assert attempt.closed_at is not None and attempt.score is not None
    result = json.loads(attempt.result_json)
    return ResultOut(
        score=attempt.score,
        passed=bool(attempt.passed),
        pass_mark=exam.pass_mark,
        closed_at=attempt.closed_at,
        closed_by=attempt.closed_by,
        closed_by_label=ClosedBy(attempt.closed_by).label,
        categories=[
            CategoryOut(
                category=QuestionCategory(c["category"]),
                label=QuestionCategory(c["category"]).label,
                earned=c["earned"],
                possible=c["possible"],
                correct=c["correct"],
                questions=c["questions"],
            )
            for c in result.get("categories", [])
        ],
        qualification=None
        if qual is None
        else QualificationOut(field=qual.field, passed_on=qual.passed_on, valid_until=qual.valid_until),
    )


_SAVE_PG = text(
    """
WITH a AS (
    SELECT id, agency_id, status, deadline_at, question_count
    FROM exam_attempts WHERE id = :attempt_id AND officer_id = :officer_id
    FOR SHARE
), ins AS (
    INSERT INTO exam_answers (attempt_id, position, seq, choice, saved_at)
    SELECT a.id, v.position, v.seq, v.choice, :now
    FROM a, unnest(CAST(:positions AS integer[]), CAST(:seqs AS bigint[]), CAST(:choices AS text[]))
        AS v(position, seq, choice)
    WHERE a.status = 'open' AND a.deadline_at >= :limit AND v.position < a.question_count
    ON CONFLICT (attempt_id, position, seq) DO NOTHING
    RETURNING position, seq, choice
), logged AS (
    INSERT INTO audit_outbox
        (occurred_at, actor_id, actor_name, action, entity_type, entity_id, agency_id, data)
    SELECT :now, :actor_id, :actor_name, 'exam.answers.save', 'exam_attempt', CAST(a.id AS text),
        a.agency_id,
        (SELECT '{"answers":[' || string_agg(
            '[' || position || ',' || seq || ',' || to_json(choice)::text || ']', ','
            ORDER BY position, seq) || ']}' FROM ins)
    FROM a WHERE EXISTS (SELECT 1 FROM ins)
)
SELECT a.status, a.deadline_at, a.question_count, ARRAY(SELECT position FROM ins) AS saved FROM a
"""
)
"""PostgreSQL's autosave: one statement. It locks the attempt in share mode (a closing transaction
holds it exclusively: a save either commits before the grading reads the answers, or sees the
attempt closed and stores nothing), appends the answers that the open, in-time attempt accepts,
writes the audit outbox event of what was stored (the same text ``canonical_json`` gives), and
returns the attempt's state."""


async def answers_save(
    db: AsyncSession,
    *,
    principal: Principal,
    attempt_id: int,
    answers: Sequence[AnswerIn],
    now: dt.datetime | None = None,
) -> SaveOut:
    """自动保存: append each answer with the browser's sequence number; the highest one counts.

    Only what the attempt accepts is stored: the candidate's own, still open, within its deadline
    and grace, at a position of the paper. A repeated save is a no-op. What was stored goes to the
    audit trail (through the outbox) in the same transaction. Commits before it answers.
    """
    officer_id = _officer_id(principal)
    now = now or utcnow()
    limit = now - rules.GRACE
    for a in answers:
        if not rules.valid_choice(a.choice):
            raise DomainError(f"第 {a.position + 1} 题的答案无效", field="answers")
    choices = [rules.choice_text(a.choice) for a in answers]
    actor = actor_of(principal)
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        attempt_row = (
            await db.execute(
                _SAVE_PG,
                {
                    "attempt_id": attempt_id,
                    "officer_id": officer_id,
                    "now": now,
                    "limit": limit,
                    "positions": [a.position for a in answers],
                    "seqs": [a.seq for a in answers],
                    "choices": choices,
                    "actor_id": actor.account_id,
                    "actor_name": actor.name,
                },
            )
        ).one_or_none()
        if attempt_row is None:
            await db.rollback()
            raise NotFound("答卷不存在")
        status, deadline, count, saved = attempt_row
        saved = list(saved)
    else:
        stored: list[list[Any]] = []
        for a, choice in zip(answers, choices, strict=True):
            src = select(
                ExamAttempt.id,
                literal(a.position),
                literal(a.seq),
                literal(choice),
                literal(now, type_=ExamAnswer.__table__.c.saved_at.type),
            ).where(
                ExamAttempt.id == attempt_id,
                ExamAttempt.officer_id == officer_id,
                ExamAttempt.status == AttemptStatus.OPEN,
                ExamAttempt.deadline_at >= limit,
                ExamAttempt.question_count > a.position,
            )
            stmt = (
                sqlite.insert(ExamAnswer)
                .from_select(["attempt_id", "position", "seq", "choice", "saved_at"], src)
                .on_conflict_do_nothing(index_elements=["attempt_id", "position", "seq"])
                .returning(ExamAnswer.position)
            )
            if (await db.execute(stmt)).scalar_one_or_none() is not None:
                stored.append([a.position, a.seq, choice])
        attempt_row = (
            await db.execute(
                select(
                    ExamAttempt.status,
                    ExamAttempt.deadline_at,
                    ExamAttempt.question_count,
                    ExamAttempt.agency_id,
                ).where(ExamAttempt.id == attempt_id, ExamAttempt.officer_id == officer_id)
            )
        ).one_or_none()
        if attempt_row is None:
            await db.rollback()
            raise NotFound("答卷不存在")
        status, deadline, count, agency_id = attempt_row
        saved = [p for p, _s, _c in stored]
        if stored:
            await audit_enqueue(
                db,
                actor=actor,
                action="exam.answers.save",
                entity_type="exam_attempt",
                entity_id=attempt_id,
                agency_id=agency_id,
                data={"answers": sorted(stored)},
                occurred_at=now,
            )
    if len(saved) < len(answers):
        missing = [a for a in answers if a.position not in saved]
        if status != AttemptStatus.OPEN or deadline < limit:
            await db.commit()
            if status == AttemptStatus.OPEN:
                await attempt_close(db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now)
            raise Conflict("考试时间已到或已交卷，答案未能保存", field="answers")
        bad = [a for a in missing if a.position >= count]
        if bad:
            await db.rollback()
            raise DomainError(f"第 {bad[0].position + 1} 题不在本试卷中", field="answers")
        # The rest were repeats of a save already stored (same position and seq).
        saved.extend(a.position for a in missing)
    await db.commit()
    return SaveOut(
        saved=sorted(set(saved)),
        server_now=now,
        deadline_at=deadline,
        seconds_left=rules.seconds_left(deadline, now),
    )


async def attempt_submit(
    db: AsyncSession,
    *,
    principal: Principal,
    attempt_id: int,
    now: dt.datetime | None = None,
    with_paper: bool = True,
) -> AttemptOut:
    """交卷: close and grade with every saved answer; a second submit returns the same result.
    ``with_paper``: as ``_view_of`` takes it."""
    now = now or utcnow()
    row = (
        await db.execute(_LOCK_OWN_ATTEMPT, {"attempt_id": attempt_id, "officer_id": _officer_id(principal)})
    ).one_or_none()
    if row is None:
        await db.rollback()
        raise NotFound("答卷不存在")
    attempt = row[0]
    if attempt.status == AttemptStatus.OPEN:
        by = ClosedBy.TIMEOUT if rules.is_overdue(attempt.deadline_at, now) else ClosedBy.CANDIDATE
        closed = await _grade_and_close(db, row, by=by, actor=actor_of(principal), now=now)
        if closed is not None:
            # The result from what the close holds (no second read of the attempt and its paper).
            _attempt, exam, s, part = row
            return await _view_of(
                db,
                attempt,
                s,
                exam,
                part,
                closed.paper,
                closed.content,
                closed.answers,
                now,
                grant=closed.grant,
                with_paper=with_paper,
            )
    else:
        await db.commit()  # a second submit: the first one's result
    return await attempt_view(db, principal, attempt_id, now=now, with_paper=with_paper)


async def attempt_leave(
    db: AsyncSession, *, principal: Principal, attempt_id: int, now: dt.datetime | None = None
) -> bool:
    """离开考试页面: logged; submits when the session says so. Returns whether it submitted."""
    attempt = await _own_attempt(db, principal, attempt_id)
    now = now or utcnow()
    if attempt.status != AttemptStatus.OPEN:
        return False
    s = await db.get(ExamSession, attempt.session_id)
    assert s is not None
    await db.execute(
        update(ExamAttempt)
        .where(ExamAttempt.id == attempt.id)
        .values(leave_count=ExamAttempt.leave_count + 1)
    )
    await audit_enqueue(
        db,
        actor=actor_of(principal),
        action="exam.attempt.leave",
        entity_type="exam_attempt",
        entity_id=attempt.id,
        agency_id=attempt.agency_id,
        data={"submit_on_leave": s.submit_on_leave},
    )
    await db.commit()
    if s.submit_on_leave:
        await attempt_close(db, attempt_id=attempt.id, by=ClosedBy.LEAVE, actor=actor_of(principal), now=now)
        return True
    return False


async def attempt_close(
    db: AsyncSession, *, attempt_id: int, by: ClosedBy, actor: Actor, now: dt.datetime | None = None
) -> bool:
    """Grade and close an open attempt with what was saved; grant the qualification when every
    required part is passed. Returns False when it was already closed (someone else won). Commits."""
    now = now or utcnow()
    row = (await db.execute(_LOCK_ATTEMPT, {"attempt_id": attempt_id})).one_or_none()
    if row is None:
        raise NotFound("答卷不存在")
    return await _grade_and_close(db, row, by=by, actor=actor, now=now) is not None


# The attempt, locked (waits for in-flight saves, which hold a share lock on it), with its exam,
# session and part. Lock order everywhere: the attempt, then (only when it passed) the officer's
# enrolment. Built once: a statement's construction costs more than its execution.
_LOCK_ATTEMPT = (
    select(ExamAttempt, Exam, ExamSession, ExamPartRow)
    .join(ExamSession, ExamSession.id == ExamAttempt.session_id)
    .join(Exam, Exam.id == ExamSession.exam_id)
    .join(ExamPartRow, ExamPartRow.id == ExamAttempt.part_id)
    .where(ExamAttempt.id == bindparam("attempt_id"))
    .with_for_update(of=ExamAttempt)
    .execution_options(populate_existing=True)
)
_LOCK_OWN_ATTEMPT = _LOCK_ATTEMPT.where(ExamAttempt.officer_id == bindparam("officer_id"))


_CLOSE = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("attempt_id"), _ATTEMPTS.c.status == AttemptStatus.OPEN.value)
    .values(
        {
            c: bindparam(f"new_{c}")
            for c in ("status", "closed_at", "closed_by", "score", "passed", "result_json")
        }
    )
)
"""The close (a Core statement: the ORM's update path synchronises the session, which costs more
than the statement)."""


@dataclass
class _Closed:
    paper: list[rules.PaperItem]
    content: dict[int, QuestionContent]
    answers: dict[int, tuple[tuple[int, ...], int]]
    grant: ExamQualification | None


def grade_attempt(
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
    *,
    scoring: str,
    pass_mark: float,
) -> tuple[rules.Grade, dict[str, Any]]:
    """The grade of a paper with these answers, and the ``result_json`` it is stored as."""
    fractions = []
    for position, item in enumerate(paper):
        chosen_display = answers.get(position, ((), 0))[0]
        if not chosen_display:  # unanswered (most of a paper until late): nothing earned
            fractions.append(0.0)
            continue
        q = content[item.question_id]
        if not rules.valid_choice(chosen_display, qtype=item.type, option_count=len(item.order)):
            fractions.append(0.0)
            continue
        chosen = rules.to_bank_indexes(chosen_display, item.order)
        fractions.append(rules.item_fraction(item.type, q.key, chosen, scoring=scoring, weights=q.weights))
    g = rules.grade(paper, fractions, pass_mark=pass_mark)
    result = {
        "fractions": [round(f, 4) for f in g.fractions],
        "categories": [
            {
                "category": c.category,
                "earned": c.earned,
                "possible": c.possible,
                "correct": c.correct,
                "questions": c.questions,
            }
            for c in g.categories
        ],
        "answered": len([p for p, (c, _s) in answers.items() if c]),
    }
    return g, result


def close_event_data(by: ClosedBy, g: rules.Grade, result: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a close."""
    return {"by": by.value, "score": g.score, "passed": g.passed, "answered": result["answered"]}


async def _grade_and_close(
    db: AsyncSession, row: Any, *, by: ClosedBy, actor: Actor, now: dt.datetime
) -> _Closed | None:
    """Grade the locked attempt of ``row`` (from ``_LOCK_ATTEMPT``) and close it; None when it was
    already closed (someone else won). The attempt object is given its closed state. Commits."""
    attempt, exam = row[0], row[1]
    if attempt.status != AttemptStatus.OPEN:
        await db.commit()
        return None
    paper = _paper(attempt)
    content = await _questions(db, [p.question_id for p in paper])
    answers = await _latest_answers(db, attempt.id)
    g, result = grade_attempt(
        paper, content, answers, scoring=exam.multiple_scoring, pass_mark=exam.pass_mark
    )
    closed_state = {
        "status": AttemptStatus.CLOSED.value,
        "closed_at": now,
        "closed_by": by.value,
        "score": g.score,
        "passed": g.passed,
        "result_json": json.dumps(result),
    }
    done = await db.execute(
        _CLOSE, {"attempt_id": attempt.id, **{f"new_{k}": v for k, v in closed_state.items()}}
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        await db.rollback()
        return None
    grant = None
    if g.passed:
        # The enrolment's lock serialises the parts' qualification check: two parts passed at
        # the same moment grant once (the second sees the first committed).
        await _enrolment(db, attempt.session_id, attempt.officer_id, lock=True)
        grant = await _grant_if_qualified(db, attempt=attempt, exam=exam, now=now)
    # Into the audit outbox, committed with the grade; chained within seconds (no database-wide
    # lock held by the submit burst).
    await audit_enqueue(
        db,
        actor=actor,
        action="exam.attempt.close",
        entity_type="exam_attempt",
        entity_id=attempt.id,
        agency_id=attempt.agency_id,
        data=close_event_data(by, g, result),
    )
    if grant is not None:
        await audit_enqueue(
            db,
            actor=actor,
            action="exam.qualification.grant",
            entity_type="exam_qualification",
            entity_id=grant.id,
            agency_id=attempt.agency_id,
            data={
                "officer_id": grant.officer_id,
                "session_id": attempt.session_id,
                "field": grant.field,
                "passed_on": grant.passed_on.isoformat(),
                "valid_until": grant.valid_until.isoformat(),
                "score": grant.score,
            },
        )
    await db.commit()
    for key, value in closed_state.items():  # as stored, without marking the object changed
        set_committed_value(attempt, key, value)
    return _Closed(paper, content, answers, grant)


async def _grant_if_qualified(
    db: AsyncSession, *, attempt: ExamAttempt, exam: Exam, now: dt.datetime
) -> ExamQualification | None:
    parts = await _parts(db, exam.id)
    rows = (
        await db.execute(
            select(ExamAttempt.id, ExamAttempt.part_id, ExamAttempt.passed, ExamAttempt.score).where(
                ExamAttempt.session_id == attempt.session_id, ExamAttempt.officer_id == attempt.officer_id
            )
        )
    ).all()
    best: dict[int, float] = {}
    results: dict[str, bool | None] = {}
    part_of = {p.id: p.part for p in parts}
    for _aid, part_id, passed, score in rows:
        if passed:
            results[part_of[part_id]] = True
            best[part_id] = max(best.get(part_id, 0.0), score or 0.0)
    if not rules.qualified(results, [p.part for p in parts]):
        return None
    ids = [r[0] for r in rows]
    if await db.scalar(select(ExamQualification.id).where(ExamQualification.attempt_id.in_(ids))):
        return None
    officer, agency = (
        await db.execute(
            select(Officer, Agency)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Officer.id == attempt.officer_id)
        )
    ).one()
    policy = (await agency_policies(db, {agency.id: agency.path}))[agency.id]
    passed_on = beijing_date(now)
    has_special = any(p.part == ExamPart.SPECIALISED for p in parts)
    grant = ExamQualification(
        officer_id=officer.id,
        field=attempt.field if has_special else "",
        passed_on=passed_on,
        valid_until=rules.valid_until(passed_on, policy.exam_result_valid_years),
        score=round(min(best.values())),
        source="exam",
        attempt_id=attempt.id,
        status="valid",
    )
    db.add(grant)
    await db.flush()
    return grant


async def _close_overdue_of(db: AsyncSession, *, officer_id: int, now: dt.datetime) -> None:
    """Lazily close this officer's attempts past time-up (on any access)."""
    ids = list(
        (
            await db.scalars(
                select(ExamAttempt.id).where(
                    ExamAttempt.officer_id == officer_id,
                    ExamAttempt.status == AttemptStatus.OPEN,
                    ExamAttempt.deadline_at < now - rules.GRACE,
                )
            )
        ).all()
    )
    if ids:
        await db.rollback()
    for attempt_id in ids:
        await attempt_close(db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now)


async def attempts_sweep(db: AsyncSession, *, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Close every open attempt past its deadline and grace (the candidate may never come back)."""
    now = now or utcnow()
    ids = list(
        (
            await db.scalars(
                select(ExamAttempt.id)
                .where(ExamAttempt.status == AttemptStatus.OPEN, ExamAttempt.deadline_at < now - rules.GRACE)
                .order_by(ExamAttempt.deadline_at)
                .limit(limit)
            )
        ).all()
    )
    await db.rollback()
    closed = 0
    for attempt_id in ids:
        if await attempt_close(db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now):
            closed += 1
    return closed


# ---------------------------------------------------------------- results and statistics


async def session_results(
    db: AsyncSession, principal: Principal, session_id: int, *, agency_id: int | None = None
) -> ResultsOut:
    """成绩: per officer (best score of each part) and per agency, for the principal's subtree."""
    s, exam = await _session_row(db, principal, session_id)
    scope_path = principal.agency_path
    if agency_id is not None:
        scope_path = (await agency_get(db, principal, agency_id)).path
    parts = await _parts(db, exam.id)
    enrolled = (
        await db.execute(
            select(Officer.id, Officer.name, Officer.field, Agency.id, Agency.name)
            .join(ExamEnrolment, ExamEnrolment.officer_id == Officer.id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(ExamEnrolment.session_id == s.id, Agency.path.startswith(scope_path))
            .order_by(Agency.path, Officer.name, Officer.id)
        )
    ).all()
    attempts = (
        await db.execute(
            select(ExamAttempt.officer_id, ExamAttempt.part_id, ExamAttempt.score, ExamAttempt.passed).where(
                ExamAttempt.session_id == s.id, ExamAttempt.status == AttemptStatus.CLOSED
            )
        )
    ).all()
    by_officer: dict[int, list[Any]] = {}
    for a in attempts:
        by_officer.setdefault(a.officer_id, []).append(a)
    officers: list[OfficerResult] = []
    agencies: dict[int, AgencyResult] = {}
    scores: dict[int, list[float]] = {}
    for oid, name, field, ag_id, ag_name in enrolled:
        mine = by_officer.get(oid, [])
        best: dict[str, float | None] = {}
        passed: dict[str, bool | None] = {}
        for p in parts:
            theirs = [a for a in mine if a.part_id == p.id]
            best[p.part] = max((a.score for a in theirs), default=None)
            passed[p.part] = any(a.passed for a in theirs) or None
        ok = rules.qualified(passed, [p.part for p in parts])
        officers.append(
            OfficerResult(
                officer_id=oid,
                officer_name=name,
                agency_id=ag_id,
                agency_name=ag_name,
                field=field,
                parts=best,
                passed_all=ok,
                attempts=len(mine),
            )
        )
        ar = agencies.setdefault(
            ag_id,
            AgencyResult(
                agency_id=ag_id,
                agency_name=ag_name,
                enrolled=0,
                attempted=0,
                passed_all=0,
                pass_rate=0.0,
                average_score=None,
            ),
        )
        ar.enrolled += 1
        if mine:
            ar.attempted += 1
            taken = [v for v in best.values() if v is not None]
            scores.setdefault(ag_id, []).append(sum(taken) / len(taken))
        if ok:
            ar.passed_all += 1
    for ag_id, ar in agencies.items():
        ar.pass_rate = round(ar.passed_all / ar.enrolled, 3) if ar.enrolled else 0.0
        vals = scores.get(ag_id)
        ar.average_score = round(sum(vals) / len(vals), 1) if vals else None
    counts = await _enrolled_counts(db, [s.id])
    return ResultsOut(
        session=session_out(s, exam.title, counts.get(s.id, 0)),
        agencies=list(agencies.values()),
        officers=officers,
    )


async def session_stats(db: AsyncSession, principal: Principal, session_id: int) -> StatsOut:
    """试题分析: per question of the session's closed attempts, share correct and discrimination."""
    s, exam = await _session_row(db, principal, session_id)
    parts = await _parts(db, exam.id)
    closed = (
        await db.execute(
            select(ExamAttempt.part_id, ExamAttempt.score, ExamAttempt.paper_json, ExamAttempt.result_json)
            .join(Agency, Agency.id == ExamAttempt.agency_id)
            .where(
                ExamAttempt.session_id == s.id,
                ExamAttempt.status == AttemptStatus.CLOSED,
                Agency.path.startswith(principal.agency_path),
            )
        )
    ).all()
    out_parts = []
    for p in parts:
        results = []
        for part_id, score, paper_json, result_json in closed:
            if part_id != p.id:
                continue
            fracs = json.loads(result_json).get("fractions", [])
            items = {q[0]: fracs[i] for i, q in enumerate(json.loads(paper_json)) if i < len(fracs)}
            results.append((float(score or 0.0), items))
        stats = rules.item_statistics(results)
        meta = {}
        if stats:
            rows = await db.execute(
                select(
                    ExamQuestion.id,
                    ExamBank.code,
                    ExamQuestion.qid,
                    ExamQuestion.stem,
                    ExamQuestion.type,
                    ExamQuestion.category,
                )
                .join(ExamBank, ExamBank.id == ExamQuestion.bank_id)
                .where(ExamQuestion.id.in_([st.question_id for st in stats]))
            )
            meta = {r[0]: r for r in rows}
        questions = []
        for st in stats:
            _id, code, qid, stem, qtype, category = meta[st.question_id]
            flag = ""
            if st.discrimination is not None and st.discrimination < 0.2 and st.drawn >= 10:
                flag = "区分度低" if st.discrimination >= 0 else "区分度为负（可能答案有误）"
            elif st.drawn >= 10 and st.share_correct < 0.1:
                flag = "答对率过低"
            questions.append(
                QuestionStat(
                    question_id=st.question_id,
                    bank=code,
                    qid=qid,
                    stem=stem,
                    type_label=QuestionType(qtype).label,
                    category_label=QuestionCategory(category).label,
                    drawn=st.drawn,
                    share_correct=st.share_correct,
                    discrimination=st.discrimination,
                    flag=flag,
                )
            )
        questions.sort(
            key=lambda q: (q.discrimination if q.discrimination is not None else 9, q.share_correct)
        )
        out_parts.append(
            PartStats(
                part=ExamPart(p.part),
                part_label=ExamPart(p.part).label,
                candidates=len(results),
                questions=questions,
            )
        )
    counts = await _enrolled_counts(db, [s.id])
    return StatsOut(session=session_out(s, exam.title, counts.get(s.id, 0)), parts=out_parts)


def results_csv(results: ResultsOut, parts: list[PartOut]) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "人员编号",
            "姓名",
            "单位",
            "执法领域",
            *[f"{p.part_label}成绩" for p in parts],
            "是否通过",
            "作答次数",
        ]
    )
    for o in results.officers:
        # Names are typed by people: a leading "=" must not run as a formula in Excel / WPS.
        w.writerow(
            [
                o.officer_id,
                spreadsheet_safe(o.officer_name),
                spreadsheet_safe(o.agency_name),
                spreadsheet_safe(o.field),
                *["" if o.parts.get(p.part) is None else f"{o.parts[p.part]:g}" for p in parts],
                "通过" if o.passed_all else "未通过",
                o.attempts,
            ]
        )
    # UTF-8 with a BOM: Excel on Windows opens it as UTF-8 only then.
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
