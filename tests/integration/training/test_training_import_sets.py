"""The set-based import's own paths: staging tables, generations after a reversal, twins, scope."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.training import command_principal
from app.lib.security import system_principal
from app.training.models import TrainingImportBatch, TrainingRecord
from app.training.schemas import AttendanceIn, ReversalIn
from app.training.services.attendance import attendance_add
from app.training.services.corrections import record_reverse
from app.training.services.imports import training_import_commit, training_import_preview
from app.training.sheets.format import AttendanceRejected
from tests.factories import World
from tests.integration.training.conftest import YEAR, assert_totals_match_ledger, count, day, make_csv
from tests.integration.training.test_training_import import setup_courses


class _Plain:
    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    id: int
    id_number: str
    name: str


async def test_preview_then_commit_in_one_session_and_a_reversed_line_takes_the_next_generation(
    world: World, db: AsyncSession
) -> None:
    law_, _new, officers_ = await setup_courses(db, world)
    # Plain values: the session's objects expire at every commit and rollback below.
    law = _Plain(id=law_.id)
    officers = [_Plain(id=o.id, id_number=o.id_number) for o in officers_]
    system = system_principal()
    first = make_csv([["", o.id_number, law.id, "", f"{YEAR}-03-10", "2"] for o in officers[:3]])
    # A preview leaves no scratch table behind: the commit that follows in the same session works.
    preview = await training_import_preview(db, principal=system, data=first, filename="a.csv", year=YEAR)
    assert preview.ok and preview.valid_rows == 3 and preview.hours_total == 6
    done = await training_import_commit(db, principal=system, data=first, filename="a.csv", year=YEAR)
    assert done.imported == 3
    line = (
        await db.scalars(
            select(TrainingRecord).where(
                TrainingRecord.officer_id == officers[0].id, TrainingRecord.course_id == law.id
            )
        )
    ).one()
    await record_reverse(db, principal=system, record_id=line.id, data=ReversalIn(reason="签到表有误"))

    # The same people again (another file): officer 0's line was reversed, so the row is recorded
    # again as generation 1; officers 1 and 2 still have live lines: duplicates, nothing written.
    again = make_csv([["", o.id_number, law.id, "", f"{YEAR}-03-10", "3"] for o in officers[:3]])
    preview = await training_import_preview(db, principal=system, data=again, filename="b.csv", year=YEAR)
    assert [(e.row, e.message) for e in preview.errors] == [
        (3, "该人员此课程此日期的学时已登记，不能重复登记"),
        (4, "该人员此课程此日期的学时已登记，不能重复登记"),
    ]
    assert (preview.valid_rows, preview.hours_total, [s.row for s in preview.sample]) == (1, 3, [2])
    only_first = make_csv([["", officers[0].id_number, law.id, "", f"{YEAR}-03-10", "3"]])
    done = await training_import_commit(db, principal=system, data=only_first, filename="c.csv", year=YEAR)
    assert done.imported == 1
    lines = (
        await db.scalars(
            select(TrainingRecord)
            .where(TrainingRecord.officer_id == officers[0].id, TrainingRecord.course_id == law.id)
            .order_by(TrainingRecord.id)
        )
    ).all()
    assert [(ln.kind, ln.generation, ln.hours_tenths) for ln in lines] == [
        ("record", 0, 20),
        ("reversal", -1, -20),
        ("record", 1, 30),
    ]
    await assert_totals_match_ledger(db)


async def test_twins_are_judged_among_good_rows_only(world: World, db: AsyncSession) -> None:
    law_, _new, officers = await setup_courses(db, world)
    law = _Plain(id=law_.id)
    a = _Plain(id_number=officers[0].id_number, name=officers[0].name)
    b = _Plain(id_number=officers[1].id_number)
    rows = [
        ["张冠李戴", a.id_number, law.id, "", f"{YEAR}-03-10", "1"],  # 2: wrong name, not a twin's first
        [a.name, a.id_number, law.id, "", f"{YEAR}-03-10", "1"],  # 3: the first good row of the key
        ["", a.id_number, law.id, "", f"{YEAR}-03-10", "1"],  # 4: twin of 3
        ["", b.id_number, law.id, "", f"{YEAR}-03-10", "-1"],  # 5: bad hours: not anyone's twin
        ["", b.id_number, law.id, "", f"{YEAR}-03-10", "1"],  # 6: good
        ["", b.id_number, law.id, "", f"{YEAR}-03-11", "1"],  # 7: another day: good
    ]
    preview = await training_import_preview(
        db, principal=system_principal(), data=make_csv(rows), filename="t.csv", year=YEAR
    )
    expected = [
        (2, "姓名", "姓名“张冠李戴”与系统中"),
        (4, "身份证号码", "与第3行重复"),
        (5, "学时", "学时“-1”不是正数"),
    ]
    got = [(e.row, e.column, e.message) for e in preview.errors]
    assert len(got) == len(expected), got
    for (row, column, message), (erow, ecolumn, prefix) in zip(got, expected, strict=True):
        assert (row, column) == (erow, ecolumn) and message.startswith(prefix), got
    assert (preview.valid_rows, preview.hours_total) == (3, 3)
    assert [s.row for s in preview.sample] == [3, 6, 7]


async def test_typed_in_attendance_returns_the_new_lines_and_stays_in_scope(
    world: World, db: AsyncSession
) -> None:
    law_, _new, officers_ = await setup_courses(db, world)
    law = _Plain(id=law_.id)
    officers = [_Plain(id=o.id, id_number=o.id_number) for o in officers_]
    admin_id, officer_b = world.admin_a.id, world.officer_b.id_number
    admin_a = await command_principal(db, "admin_a")  # as the console builds it
    ids = await attendance_add(
        db,
        principal=admin_a,
        course_id=law.id,
        data=AttendanceIn(id_numbers=[officers[1].id_number, officers[2].id_number], attended_on=day(3, 11)),
    )
    lines = (await db.scalars(select(TrainingRecord).where(TrainingRecord.id.in_(ids)))).all()
    assert sorted(ln.officer_id for ln in lines) == sorted([officers[1].id, officers[2].id])
    assert {(ln.attended_on, ln.hours_tenths, ln.entered_by_id) for ln in lines} == {
        (day(3, 11), 40, admin_id)
    }
    # City B's officer is unknown to city A's administrator: nothing is written.
    try:
        await attendance_add(
            db,
            principal=admin_a,
            course_id=law.id,
            data=AttendanceIn(id_numbers=[officers[3].id_number, officer_b]),
        )
    except AttendanceRejected as exc:
        assert [e.row for e in exc.rows] == [2] and exc.rows[0].message.startswith("未找到身份证号码为")
    else:
        raise AssertionError("city B's officer was accepted")
    assert (
        len((await db.scalars(select(TrainingRecord).where(TrainingRecord.course_id == law.id))).all()) == 2
    )
    await assert_totals_match_ledger(db)


async def test_the_caller_commits_a_sheet_and_keeps_a_refusal_s_record_only(
    world: World, db: AsyncSession
) -> None:
    """The import never commits: what it wrote goes if its caller rolls back. A refused sheet leaves
    only its rejected batch in the caller's transaction, never a ledger line or the committed batch."""
    law_, _new, officers_ = await setup_courses(db, world)
    law_id, numbers = law_.id, [o.id_number for o in officers_]
    system = system_principal()
    lines, batches = await count(db, TrainingRecord), await count(db, TrainingImportBatch)
    good = make_csv([["", n, law_id, "", f"{YEAR}-03-10", "2"] for n in numbers[:2]])
    done = await training_import_commit(db, principal=system, data=good, filename="a.csv", year=YEAR)
    assert done.ok and done.imported == 2
    await db.rollback()  # the caller's edge refuses: nothing of the sheet stays
    assert (await count(db, TrainingRecord), await count(db, TrainingImportBatch)) == (lines, batches)

    bad = make_csv(
        [["", n, law_id, "", f"{YEAR}-03-10", "2"] for n in numbers[:2]] + [["", "1", law_id, "", "", ""]]
    )
    refused = await training_import_commit(db, principal=system, data=bad, filename="b.csv", year=YEAR)
    assert not refused.ok and refused.imported == 0 and refused.preview.invalid_rows == 1
    await db.commit()  # the caller keeps the refusal's record
    kept = (
        await db.scalars(select(TrainingImportBatch).where(TrainingImportBatch.filename == "b.csv"))
    ).all()
    assert [(b.id, b.outcome, b.rows_total, b.rows_rejected) for b in kept] == [
        (refused.batch_id, "rejected", 3, 1)
    ]
    assert (await count(db, TrainingRecord), await count(db, TrainingImportBatch)) == (lines, batches + 1)
    await assert_totals_match_ledger(db)
