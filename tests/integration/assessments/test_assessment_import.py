"""Bulk rating import: row-numbered errors, all or nothing, drafts replaced, confirmed years refused."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assessments.importer import rating_import
from app.assessments.models import AssessmentRating
from app.lib.imports import ImportFileError
from tests.factories import World
from tests.integration.assessments.conftest import add_rating, count, principal

HEADERS = [
    "身份证号码",
    "姓名",
    "考核年度",
    "考核等次",
    "平时考核",
    "法律知识测试",
    "执法规范测试",
    "案卷评查",
    "处理方式",
    "评语",
]


def make_csv(rows: list[list[Any]], *, encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(HEADERS)
    w.writerows(rows)
    return out.getvalue().encode(encoding)


def make_xlsx(rows: list[list[Any]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["2026年度行政执法人员考核结果"])
    ws.append(HEADERS)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def test_good_file_becomes_drafts(db: AsyncSession, world: World) -> None:
    a = world.officer_a
    data = make_xlsx([[a.id_number, a.name, 2026, "不合格", 55, 58, 60, 50, "离岗培训", "案卷质量差"]])
    admin = await principal(db, world.admin_a)
    dry = await rating_import(db, principal=admin, data=data, filename="考核.xlsx", year=None, dry_run=True)
    assert dry.ok and dry.imported == 0 and await count(db, AssessmentRating) == 0
    report = await rating_import(
        db, principal=admin, data=data, filename="考核.xlsx", year=None, dry_run=False
    )
    assert report.ok and report.imported == 1
    r = await db.scalar(select(AssessmentRating))
    assert r is not None and r.status == "draft" and r.grade == "不合格" and r.remedy == "off_post_training"
    assert r.excellent_barred and r.case_review_score == 50 and r.comment == "案卷质量差"
    # The same officer again: the draft is replaced, not duplicated.
    again = make_csv([[a.id_number, a.name, "", "合格", 80, "", "", "", "", ""]], encoding="gbk")
    report = await rating_import(
        db, principal=admin, data=again, filename="考核.csv", year=2026, dry_run=False
    )
    assert report.ok and await count(db, AssessmentRating) == 1
    r2 = await db.scalar(select(AssessmentRating))
    assert r2 is not None
    await db.refresh(r2)
    assert r2.grade == "合格" and not r2.excellent_barred and r2.remedy is None


async def test_bad_rows_are_numbered_and_nothing_is_written(db: AsyncSession, world: World) -> None:
    a, b = world.officer_a, world.officer_b
    rows = [
        [a.id_number, a.name, 2026, "合格", 80, "", "", "", "", ""],  # row 2: good
        [a.id_number, a.name, 2026, "合格", 80, "", "", "", "", ""],  # row 3: duplicate of row 2
        [b.id_number, b.name, 2026, "合格", "", "", "", "", "", ""],  # row 4: city B, out of scope
        ["110101199003070000", "某", 2026, "合格", "", "", "", "", "", ""],  # row 5: unknown
        [a.id_number, "王五", 2026, "良好", 101, "", "", "", "记过", ""],  # row 6: name, grade, score, remedy
        [a.id_number, a.name, 2030, "合格", "", "", "", "", "", ""],  # row 7: future year
    ]
    report = await rating_import(
        db,
        principal=await principal(db, world.admin_a),
        data=make_csv(rows),
        filename="k.csv",
        year=None,
        dry_run=False,
    )
    assert not report.ok and report.imported == 0
    got = {(e.row, e.column) for e in report.errors}
    assert got == {
        (3, "身份证号码"),
        (4, "身份证号码"),
        (5, "身份证号码"),
        (6, "姓名"),
        (6, "考核等次"),
        (6, "平时考核"),
        (6, "处理方式"),
        (7, "考核年度"),
    }
    assert await count(db, AssessmentRating) == 0


async def test_confirmed_year_is_refused(db: AsyncSession, world: World) -> None:
    a = world.officer_a
    await add_rating(db, a, 2026, "合格")
    await db.commit()
    report = await rating_import(
        db,
        principal=await principal(db, world.admin_a),
        data=make_csv([[a.id_number, a.name, 2026, "不合格", "", "", "", "", "", ""]]),
        filename="k.csv",
        year=None,
        dry_run=False,
    )
    assert not report.ok and "已确认锁定" in report.errors[0].message and report.errors[0].row == 2


async def test_unreadable_file(db: AsyncSession, world: World) -> None:
    with pytest.raises(ImportFileError):
        await rating_import(
            db,
            principal=await principal(db, world.admin_a),
            data=b"\x00\x01garbage",
            filename="x.pdf",
            year=2026,
            dry_run=True,
        )
