"""Bulk rating import (CSV UTF-8/GBK or XLSX, the sheets personnel offices keep): all rows or none.

Each row names an officer by ID number (the name, when given, must match), the year (or the
year chosen for the whole file), the grade from the authority's list, the components and a
comment. Every bad row is reported with its spreadsheet row number, column and reason, and then
nothing is written. Good files become drafts (an officer's existing draft of that year is
replaced); a year already confirmed for an officer must be corrected one by one, with a reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.accounts.rules import mask_id_number
from app.accounts.selectors import agency_policies
from app.assessments import rules
from app.assessments.models import AssessmentRating
from app.assessments.rules import SCORE_LABELS, RatingStatus, Remedy
from app.assessments.schemas import ImportReport
from app.audit.services import audit_record
from app.lib.chunks import chunks
from app.lib.clock import today, utcnow
from app.lib.errors import Forbidden
from app.lib.imports import ImportFileError, ImportRowError, RowFault, row_errors
from app.lib.security import Principal, actor_of
from app.lib.tabular import Row, TableError, read_table
from app.training.access import entered_by

MAX_IMPORT_ROWS = 50_000
ALIASES: dict[str, list[str]] = {
    "id_number": ["身份证号码", "身份证号", "公民身份号码", "证件号码"],
    "name": ["姓名"],
    "year": ["考核年度", "年度"],
    "grade": ["考核等次", "等次", "考核结果"],
    "daily_score": ["平时考核", "平时考核得分"],
    "legal_test_score": ["法律知识测试", "法律知识测试得分"],
    "standard_test_score": ["执法规范测试", "执法规范测试得分"],
    "case_review_score": ["案卷评查", "案卷评查得分"],
    "remedy": ["不合格处理方式", "处理方式"],
    "comment": ["评语", "备注"],
}
TEMPLATE_HEADERS = [names[0] for names in ALIASES.values()]
_ORDER = {key: i for i, key in enumerate(ALIASES)}


def template_csv() -> bytes:
    sample = ["320102198506120011", "张三", "2026", "合格", "85", "90", "88", "92", "", "工作认真"]
    return ("\ufeff" + ",".join(TEMPLATE_HEADERS) + "\r\n" + ",".join(sample) + "\r\n").encode()


def _parse(data: bytes, filename: str, max_bytes: int | None) -> tuple[list[Row], dict[str, str]]:
    with read_table(
        data,
        filename,
        required=["id_number", "grade"],
        aliases=ALIASES,
        max_rows=MAX_IMPORT_ROWS,
        max_bytes=max_bytes,
    ) as table:
        return list(table), dict(table.columns)


def _score(raw: str) -> int | None:
    text = raw.strip()
    if not text:
        return None
    value = float(text)  # "85", "85.0" from a spreadsheet
    if value != int(value):
        raise ValueError
    return int(value)


async def rating_import(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    year: int | None,
    dry_run: bool,
    max_bytes: int | None = None,
) -> ImportReport:
    """Check every row; unless ``dry_run`` and when all are good, write them as drafts (the caller's
    transaction: nothing is committed here)."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以导入考核结果")
    try:
        rows, columns = await asyncio.to_thread(_parse, data, filename, max_bytes)
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc

    def label(key: str) -> str:
        return columns.get(key, ALIASES[key][0])

    faults: list[RowFault] = []

    def bad(row: Row, key: str, message: str) -> None:
        faults.append((row.number, _ORDER[key], label(key), message))

    # One lookup per thousand ID numbers, whatever the size of the file.
    wanted = sorted({r.get("id_number").upper() for r in rows if r.get("id_number")})
    officers: dict[str, tuple[int, str, int, str]] = {}
    for chunk in chunks(wanted):
        found = await db.execute(
            select(Officer.id_number, Officer.id, Officer.name, Officer.agency_id, Agency.path)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Officer.id_number.in_(chunk))
        )
        for idn, oid, name, agency_id, path in found:
            officers[idn] = (oid, name, agency_id, path)
    policies = await agency_policies(db, {v[2]: v[3] for v in officers.values()})
    on = today()

    parsed: list[dict[str, Any]] = []
    seen: dict[tuple[int, int], int] = {}
    for row in rows:
        before = len(faults)
        idn = row.get("id_number").upper()
        officer = officers.get(idn)
        if not idn:
            bad(row, "id_number", "身份证号码不能为空")
        elif officer is None or not principal.can_see_agency_path(officer[3]):
            # Masked: the same answer whether the number is unknown or another agency's (no oracle).
            bad(
                row, "id_number", f"身份证号码 {mask_id_number(idn)} 对应的执法人员不存在或不在您的管理范围内"
            )
        elif row.get("name") and row.get("name") != officer[1]:
            bad(row, "name", f"姓名“{row.get('name')}”与系统中该身份证号码的人员（{officer[1]}）不一致")
        row_year = year
        if row.get("year"):
            try:
                row_year = int(float(row.get("year").removesuffix("年").removesuffix("年度")))
            except ValueError:
                bad(row, "year", f"年度“{row.get('year')}”不是有效的年份")
                row_year = None
        if row_year is None:
            if not row.get("year"):
                bad(row, "year", "未填写考核年度（可在上传时为整个文件指定年度）")
        elif msg := rules.year_error(row_year, on):
            bad(row, "year", msg)
        grade = row.get("grade")
        if officer is not None and (msg := rules.grade_error(grade, policies[officer[2]].grades)):
            bad(row, "grade", msg)
        scores: dict[str, int | None] = {}
        for key, name in SCORE_LABELS.items():
            try:
                scores[key] = _score(row.get(key))
            except ValueError:
                bad(row, key, f"{name}“{row.get(key)}”应为 0–100 的整数")
                continue
            if msg := rules.score_error(scores[key], name):
                bad(row, key, msg)
        remedy: Remedy | None = None
        if row.get("remedy"):
            member = Remedy.from_label_or_value(row.get("remedy"))
            if member is None:
                bad(row, "remedy", f"处理方式“{row.get('remedy')}”应为：批评教育 或 离岗培训")
            else:
                remedy = Remedy(member)
        if len(faults) > before or officer is None or row_year is None:
            continue
        slot = (officer[0], row_year)
        if slot in seen:
            bad(row, "id_number", f"与第 {seen[slot]} 行重复：同一人员同一年度只能有一条考核结果")
            continue
        seen[slot] = row.number
        policy = policies[officer[2]]
        c = rules.consequences_of(
            grade, remedy, failing=policy.failing_grades, bars_excellent=policy.excellent_barring_grades
        )
        parsed.append(
            {
                "row": row.number,
                "officer_id": officer[0],
                "agency_id": officer[2],
                "year": row_year,
                "grade": grade,
                **scores,
                "comment": row.get("comment")[:2000],
                "excellent_barred": c.excellent_barred,
                "remedy": c.remedy.value if c.remedy else None,
            }
        )

    # Years already confirmed cannot be overwritten by a file; drafts are replaced.
    drafts: dict[tuple[int, int], AssessmentRating] = {}
    keys = sorted(seen)
    for some_keys in chunks(keys):
        live = await db.scalars(
            select(AssessmentRating).where(
                AssessmentRating.officer_id.in_({k[0] for k in some_keys}),
                AssessmentRating.year.in_({k[1] for k in some_keys}),
                AssessmentRating.status != RatingStatus.SUPERSEDED.value,
            )
        )
        for r in live:
            if (r.officer_id, r.year) in seen:
                drafts[(r.officer_id, r.year)] = r
    for p in parsed:
        existing = drafts.get((p["officer_id"], p["year"]))
        if existing is not None and existing.status == RatingStatus.CONFIRMED.value:
            faults.append(
                (
                    p["row"],
                    _ORDER["year"],
                    label("year"),
                    f"该人员 {p['year']} 年度考核结果已确认锁定（编号 {existing.id}），如需修改请逐条办理更正",
                )
            )
    errors = row_errors(faults)
    ok = not errors and bool(rows)
    if not rows:
        errors.append(ImportRowError(row=0, column="", message="文件中没有数据行"))
    if not ok or dry_run:
        return ImportReport(ok=ok, rows=len(rows), imported=0, errors=errors, dry_run=dry_run)

    by_id, by_name = entered_by(principal)
    now = utcnow()
    new_rows = []
    for checked in parsed:
        values = {k: v for k, v in checked.items() if k != "row"}
        existing = drafts.get((values["officer_id"], values["year"]))
        if existing is not None:
            for k, v in values.items():
                setattr(existing, k, v)
            continue
        new_rows.append(
            {
                **values,
                "status": RatingStatus.DRAFT.value,
                "reason": "",
                "entered_by_id": by_id,
                "entered_by_name": by_name,
                "entered_at": now,
                "confirmed_by_name": "",
                "confirmed_at": None,
                "corrects_id": None,
            }
        )
    if new_rows:
        await db.execute(insert(AssessmentRating), new_rows)
    await db.flush()
    imported = {
        "filename": filename,
        "rows": len(parsed),
        "created": len(new_rows),
        "drafts_replaced": len(parsed) - len(new_rows),
    }
    # Filed under the importer's agency (the file's rows may span its tree): no row of its own.
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.ratings_imported",
        entity_type="agency",
        entity_id=principal.agency_id,
        agency_id=principal.agency_id or None,
        data=imported,
    )
    return ImportReport(ok=True, rows=len(rows), imported=len(parsed), errors=[], dry_run=False)


__all__ = ["MAX_IMPORT_ROWS", "TEMPLATE_HEADERS", "rating_import", "template_csv"]
