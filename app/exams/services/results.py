"""Selectors of a session's results (成绩, by officer and by agency) and item statistics (试题分析)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.accounts.selectors import agency_get
from app.exams import rules
from app.exams.models import ExamAttempt, ExamBank, ExamEnrolment, ExamQuestion
from app.exams.rules import AttemptStatus, ExamPart, QuestionCategory, QuestionType
from app.exams.schemas import AgencyResult, OfficerResult, PartStats, QuestionStat, ResultsOut, StatsOut
from app.exams.services.common import parts_of, session_counted, session_row
from app.lib.security import Principal
from app.lib.structs import project


async def session_results(
    db: AsyncSession, principal: Principal, session_id: int, *, agency_id: int | None = None
) -> ResultsOut:
    """成绩: per officer (best score of each part) and per agency, for the principal's subtree."""
    s, exam = await session_row(db, principal, session_id)
    scope_path = principal.agency_path
    if agency_id is not None:
        scope_path = (await agency_get(db, principal, agency_id)).path
    parts = await parts_of(db, exam.id)
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
    return ResultsOut(
        session=await session_counted(db, s, exam.title),
        agencies=list(agencies.values()),
        officers=officers,
    )


async def session_stats(db: AsyncSession, principal: Principal, session_id: int) -> StatsOut:
    """试题分析: per question of the session's closed attempts, share correct and discrimination."""
    s, exam = await session_row(db, principal, session_id)
    parts = await parts_of(db, exam.id)
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
                    ExamQuestion.title,
                )
                .join(ExamBank, ExamBank.id == ExamQuestion.bank_id)
                .where(ExamQuestion.id.in_([st.question_id for st in stats]))
            )
            meta = {r[0]: r for r in rows}
        questions = []
        for st in stats:
            _id, code, qid, stem, qtype, category, title = meta[st.question_id]
            flag = ""
            if st.discrimination is not None and st.discrimination < 0.2 and st.drawn >= 10:
                flag = "区分度低" if st.discrimination >= 0 else "区分度为负（可能答案有误）"
            elif st.drawn >= 10 and st.share_correct < 0.1:
                flag = "答对率过低"
            questions.append(
                project(
                    QuestionStat,
                    st,
                    bank=code,
                    qid=qid,
                    stem=stem,
                    title=title,
                    type_label=QuestionType(qtype).label,
                    category_label=QuestionCategory(category).label,
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
    return StatsOut(session=await session_counted(db, s, exam.title), parts=out_parts)
