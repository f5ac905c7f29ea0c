"""Training demo data: province courses for the last closed year and the current one, and ledger lines.

Called by ``app demo-data`` after the officers are loaded, through the same bulk writer (COPY on
PostgreSQL, executemany on SQLite). Deterministic from the seed. Most officers meet the yearly
requirement of the closed year, about one in eight falls short; the current year is in progress at
the demo's reference date, so some officers are behind pace. Only the first ``MAX_OFFICERS`` active
officers get a ledger.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from app.lib.bulk import BulkLoad, Row
from app.training.rules import RecordKind, TrainingCategory, Verification

COURSE_COLUMNS = (
    "id", "agency_id", "year", "title", "category", "hours_tenths", "starts_on", "ends_on", "provider",
    "verification", "note", "created_by_id", "created_by_name", "created_at",
)  # fmt: skip
RECORD_COLUMNS = (
    "id", "officer_id", "course_id", "year", "category", "attended_on", "hours_tenths", "kind",
    "corrects_id", "reason", "generation", "batch_id", "entered_by_id", "entered_by_name", "entered_at",
)  # fmt: skip
TOTAL_COLUMNS = ("year", "officer_id", "general_law", "special_law", "new_law")
BATCH = 50_000
# The ledger is ~9 lines per officer and year: for a province-sized benchmark load (200,000
# officers) it would triple the load time, and the training benchmarks make their own ledger.
MAX_OFFICERS = 20_000

# (category, title, hours in tenths, month); special-law courses are per enforcement field.
GENERAL = [
    (TrainingCategory.GENERAL_LAW, "行政执法人员公共法律知识培训", 80, 3),
    (TrainingCategory.GENERAL_LAW, "《行政处罚法》专题培训", 60, 5),
    (TrainingCategory.GENERAL_LAW, "行政执法程序规范与案卷评查", 80, 10),
    (TrainingCategory.NEW_LAW, "新修订《行政复议法》解读", 40, 4),
    (TrainingCategory.NEW_LAW, "年度新法律法规专题讲座", 60, 7),
]
SPECIAL = [("{field}执法业务培训", 80, 6), ("{field}专门法律知识更新", 60, 11)]


@dataclass
class TrainingLoaded:
    courses: int = 0
    records: int = 0


async def load_training_demo(run: BulkLoad, *, province_id: int, fields: Sequence[str]) -> TrainingLoaded:
    conn, write, seed, as_of, date_out, now = run
    rng = random.Random(seed + 4)
    loaded = TrainingLoaded()
    courses: list[Row] = []
    # year → list of (course_id, category, hours, date, field or None)
    plan: dict[int, list[tuple[int, TrainingCategory, int, dt.date, str | None]]] = {}
    for year in (as_of.year - 1, as_of.year):
        plan[year] = []
        specs = [(c, t, h, m, None) for c, t, h, m in GENERAL] + [
            (TrainingCategory.SPECIAL_LAW, t.format(field=f), h, m, f) for f in fields for t, h, m in SPECIAL
        ]
        for category, title, hours, month, field in specs:
            day = dt.date(year, month, 10 + len(courses) % 15)
            course_id = len(courses) + 1
            courses.append(
                (course_id, province_id, year, f"{year}年{title}", category.value, hours, date_out(day),
                 date_out(day), "江南省司法厅", Verification.SIGN_IN_SHEET.value, "演示数据", None, "demo", now)
            )  # fmt: skip
            plan[year].append((course_id, category, hours, day, field))
    await write("training_courses", COURSE_COLUMNS, courses)
    loaded.courses = len(courses)

    officers = (
        await conn.execute(
            text("SELECT id, field FROM officers WHERE employment_status = 'active' ORDER BY id LIMIT :n"),
            {"n": MAX_OFFICERS},
        )
    ).all()
    records: list[Row] = []
    totals: list[Row] = []
    next_id = 1
    for officer_id, field in officers:
        for year, year_plan in plan.items():
            closed = year < as_of.year
            # Closed year: 7 in 8 attend everything on offer; the rest miss two or three courses.
            # Current year: only courses held before the reference date count, some are missed.
            skip = 0 if closed and rng.random() < 0.875 else rng.choice((1, 2, 3))
            mine = [p for p in year_plan if (p[4] is None or p[4] == field) and (closed or p[3] <= as_of)]
            for _ in range(min(skip, len(mine))):
                mine.pop(int(rng.random() * len(mine)))
            sums = {c: 0 for c in TrainingCategory}
            for course_id, category, hours, day, _ in mine:
                records.append(
                    (next_id, officer_id, course_id, year, category.value, date_out(day), hours,
                     RecordKind.RECORD.value, None, "", 0, None, None, "demo", now)
                )  # fmt: skip
                next_id += 1
                sums[category] += hours
            if mine:
                totals.append(
                    (year, officer_id, sums[TrainingCategory.GENERAL_LAW], sums[TrainingCategory.SPECIAL_LAW],
                     sums[TrainingCategory.NEW_LAW])
                )  # fmt: skip
        if len(records) >= BATCH:
            await write("training_records", RECORD_COLUMNS, records)
            loaded.records += len(records)
            records = []
    await write("training_records", RECORD_COLUMNS, records)
    loaded.records += len(records)
    await write("training_year_totals", TOTAL_COLUMNS, totals)
    return loaded
