"""Helpers for the training tests: sheets generated here (CSV in UTF-8 / GBK, XLSX), courses, counts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import settings as app_settings
from app.audit.models import AuditEvent
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord
from tests.integration.conftest import Client

HEADERS = ["姓名", "身份证号码", "课程编号", "课程名称", "培训日期", "学时"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
YEAR = 2025  # a year that is over: every date in it is in the past


def make_csv(rows: list[list[Any]], *, encoding: str = "utf-8-sig", headers: list[str] = HEADERS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def make_xlsx(rows: list[list[Any]], *, headers: list[str] = HEADERS) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["2025年度执法人员培训签到表"])  # a title row above the header, as offices do
    ws.append(headers)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def count(db: AsyncSession, model: type, *where: Any) -> int:
    n = int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    await db.commit()  # end the snapshot, so that the next count sees what the app wrote since
    return n


async def ledger_counts(db: AsyncSession) -> tuple[int, int, int]:
    """(ledger lines, batches, training audit events)"""
    return (
        await count(db, TrainingRecord),
        await count(db, TrainingImportBatch),
        await count(db, AuditEvent, AuditEvent.action.startswith("training.")),
    )


async def api_course(client: Client, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "行政处罚法专题培训",
        "category": "general_law",
        "hours": 4,
        "starts_on": f"{YEAR}-03-10",
        "ends_on": f"{YEAR}-03-11",
        "provider": "市司法局",
        "verification": "sign_in_sheet",
        **fields,
    }
    r = await client.post("/api/training/courses", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def api_import(
    client: Client,
    data: bytes,
    *,
    filename: str = "签到表.csv",
    dry_run: bool = True,
    year: int = YEAR,
    course_id: int | None = None,
) -> Any:
    content_type = XLSX_TYPE if filename.endswith(".xlsx") else "text/csv"
    params: dict[str, Any] = {"dry_run": "true" if dry_run else "false", "year": year}
    if course_id is not None:
        params["course_id"] = course_id
    return await client.post(
        "/api/training/import", params=params, files={"file": (filename, data, content_type)}
    )


async def assert_totals_match_ledger(db: AsyncSession) -> None:
    """The yearly totals (what compliance reads) equal the ledger summed."""
    from app.training.selectors.totals import totals_check

    differences = await totals_check(db)
    await db.commit()
    assert differences == [], differences


def day(month: int, d: int, year: int = YEAR) -> dt.date:
    return dt.date(year, month, d)


@pytest.fixture(autouse=True)
def var_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(app_settings, "VAR_DIR", tmp_path)
    return tmp_path


__all__ = ["TrainingCourse"]
