"""Exams (考试): the definition (parts, blueprints, durations, pass mark, retakes) and its reads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.accounts.selectors import agency_get, agency_policies
from app.audit.services import audit_change
from app.exams import rules
from app.exams.cache import ExamCache
from app.exams.models import Exam, ExamBank, ExamPartRow, ExamSession
from app.exams.rules import BlueprintRule, ExamPart, MultipleScoring, PartsSource
from app.exams.schemas import ExamIn, ExamOut, PartIn, SessionOut
from app.exams.services.common import (
    authority_required,
    enrolled_counts,
    exam_row,
    part_out,
    parts_of,
    session_out,
    visible_owner,
)
from app.exams.services.pools import pool_of
from app.lib.blueprint import PartPlan, RulePlan, parts_errors
from app.lib.errors import DomainError, FieldError
from app.lib.policy import Policy
from app.lib.security import Principal
from app.lib.structs import project


async def exam_policy(db: AsyncSession, principal: Principal) -> Policy:
    """The policy an exam defined by this authority starts from (parts, pass mark, retakes)."""
    return (await _authority(db, principal))[1]


async def _authority(db: AsyncSession, principal: Principal) -> tuple[Agency, Policy]:
    authority_required(principal, "定义考试")
    agency = await agency_get(db, principal, principal.agency_id)
    return agency, (await agency_policies(db, {agency.id: agency.path}))[agency.id]


async def exam_create(
    db: AsyncSession, *, principal: Principal, data: ExamIn, cache: ExamCache | None = None
) -> Exam:
    """定义考试: parts in order, each with a blueprint and a duration; pass mark and retakes.

    What the request leaves out comes from the authority's policy: the parts and their order
    (``exam_parts``), the pass mark, the retakes. Parts given in the request override the policy's."""
    agency, policy = await _authority(db, principal)
    errors: list[FieldError] = []
    title = " ".join(data.title.split())
    if not title:
        errors.append(FieldError("title", "考试名称不能为空"))
    if data.parts is None:
        source, plans = PartsSource.POLICY, list(policy.exam_parts)
    else:
        source, plans = PartsSource.EXAM, [_plan_of(p) for p in data.parts]
    shape = parts_errors(plans, field="parts")
    errors.extend(FieldError(name, message) for name, message in shape)
    if not shape:
        for index, plan in enumerate(plans):
            problem = await _availability(db, plan.part, plan.rules(), cache=cache)
            if problem:
                where = "发证机关规定的" if source == PartsSource.POLICY else ""
                errors.append(
                    FieldError(f"parts[{index}].blueprint", f"{where}{ExamPart(plan.part).label}：{problem}")
                )
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    exam = Exam(
        agency_id=agency.id,
        title=title,
        description=data.description.strip(),
        pass_mark=data.pass_mark if data.pass_mark is not None else policy.exam_pass_mark,
        retakes=data.retakes if data.retakes is not None else policy.exam_retakes,
        multiple_scoring=data.multiple_scoring.value,
        parts_source=source.value,
        created_by_name=principal.username,
    )
    db.add(exam)
    await db.flush()
    db.add_all(part_rows(exam.id, plans))
    await db.flush()
    await audit_change(
        db,
        principal,
        "exam.create",
        exam,
        {
            "title": title,
            "parts": [p.part for p in plans],
            "parts_source": source.value,
            "pass_mark": exam.pass_mark,
            "retakes": exam.retakes,
        },
        agency_id=agency.id,
    )
    return exam


def part_rows(exam_id: int, plans: Sequence[PartPlan]) -> list[ExamPartRow]:
    """An exam's parts as stored, in order: the blueprint as JSON, the part's name unless titled."""
    return [
        ExamPartRow(
            exam_id=exam_id,
            position=position,
            part=plan.part,
            title=plan.title.strip() or ExamPart(plan.part).label,
            duration_minutes=plan.duration_minutes,
            blueprint_json=json.dumps([dataclasses.asdict(r) for r in plan.rules()], ensure_ascii=False),
        )
        for position, plan in enumerate(plans, start=1)
    ]


def _plan_of(part: PartIn) -> PartPlan:
    """An exam's own part (the API's struct) in the policy's terms, so one rule checks both."""
    return PartPlan(
        part=part.part.value,
        duration_minutes=part.duration_minutes,
        title=part.title,
        blueprint=[
            RulePlan(
                category=r.category.value, type=r.type.value, count=r.count, points=r.points, bank=r.bank
            )
            for r in part.blueprint
        ],
    )


async def _availability(
    db: AsyncSession, part: str, bp: list[BlueprintRule], *, cache: ExamCache | None
) -> str:
    """Why the banks cannot serve this blueprint ('' when they can): public, or at least one field."""
    if part == ExamPart.PUBLIC:
        pool, banks = await pool_of(db, part=part, field="", cache=cache)
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
        pool, banks = await pool_of(db, part=part, field=f, cache=cache)
        try:
            rules.draw_paper(bp, pool, seed=1, banks_of=banks)
            return ""
        except rules.DrawError as exc:
            problems.append(f"{f}：{exc}")
    return "没有一个执法领域的题库能满足组卷规则（" + "；".join(problems) + "）"


async def exam_detail(db: AsyncSession, principal: Principal, exam_id: int) -> ExamOut:
    exam, agency = await exam_row(db, principal, exam_id)
    parts = await parts_of(db, exam.id)
    sessions = list(
        (
            await db.scalars(
                select(ExamSession)
                .where(ExamSession.exam_id == exam.id)
                .order_by(ExamSession.opens_at.desc())
            )
        ).all()
    )
    counts = await enrolled_counts(db, [s.id for s in sessions])
    return _exam_out(exam, agency, parts, [session_out(s, exam.title, counts.get(s.id, 0)) for s in sessions])


def _exam_out(exam: Exam, agency: Agency, parts: list[ExamPartRow], sessions: list[SessionOut]) -> ExamOut:
    return project(
        ExamOut,
        exam,
        agency_name=agency.name,
        multiple_scoring_label=MultipleScoring(exam.multiple_scoring).label,
        parts_source_label=PartsSource(exam.parts_source).label,
        parts=[part_out(p) for p in parts],
        sessions=sessions,
    )


async def exam_list(db: AsyncSession, principal: Principal) -> list[ExamOut]:
    rows = (
        await db.execute(
            select(Exam, Agency)
            .join(Agency, Agency.id == Exam.agency_id)
            .where(visible_owner(principal))
            .order_by(Exam.id.desc())
        )
    ).all()
    out = [_exam_out(exam, agency, await parts_of(db, exam.id), []) for exam, agency in rows]
    sessions = list(
        (
            await db.scalars(
                select(ExamSession)
                .where(ExamSession.exam_id.in_([e.id for e in out] or [-1]))
                .order_by(ExamSession.opens_at.desc())
            )
        ).all()
    )
    counts = await enrolled_counts(db, [s.id for s in sessions])
    by_exam = {e.id: e for e in out}
    for s in sessions:
        e = by_exam[s.exam_id]
        e.sessions.append(session_out(s, e.title, counts.get(s.id, 0)))
    return out
