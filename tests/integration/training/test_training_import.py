"""Attendance sheets: preview, all-or-nothing commit, never counted twice; web, API and console."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from app.cli import cli
from app.settings import load_settings
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord
from tests.factories import World, add_course, add_officer, make_id_number
from tests.integration.conftest import Client
from tests.integration.training.conftest import (
    YEAR,
    api_import,
    assert_totals_match_ledger,
    count,
    day,
    ledger_counts,
    make_csv,
    make_xlsx,
)


async def setup_courses(
    db: AsyncSession, world: World
) -> tuple[TrainingCourse, TrainingCourse, list[Officer]]:
    law = await add_course(
        db, world.dept_a, "行政处罚法专题培训", starts_on=day(3, 10), ends_on=day(3, 11), hours_tenths=40
    )
    new = await add_course(
        db, world.city_a, "新修订法律法规解读", starts_on=day(6, 1), hours_tenths=20, category="new_law"
    )
    officers = [world.officer_a] + [await add_officer(db, world.dept_a, f"学员{i}") for i in range(1, 6)]
    await db.commit()
    return law, new, officers


async def page_upload(client: Client, data: bytes, *, filename: str = "签到表.csv", **fields: Any) -> Any:
    form = {"_csrf_token": await client.csrf(), "year": str(YEAR), **{k: str(v) for k, v in fields.items()}}
    return await client.raw.post(
        "/training/import",
        data=form,
        files={"file": (filename, data, "text/csv")},
        headers={"accept": "text/html"},
    )


def staged_hash(html: str) -> str:
    import re

    m = re.search(r'name="sha256" value="([0-9a-f]{64})"', html)
    assert m, "no confirm form on the preview page"
    return m.group(1)


# ---------------------------------------------------------------- preview


async def test_preview_lists_every_bad_row_with_row_number_and_reason(
    client: Client, world: World, db: AsyncSession
) -> None:
    law, _new, officers = await setup_courses(db, world)
    a, b = officers[0], officers[1]
    stranger = make_id_number(region="110105")
    rows = [
        [a.name, a.id_number, law.id, "", f"{YEAR}-03-10", "2"],  # 2: fine
        ["", stranger, law.id, "", f"{YEAR}-03-10", "2"],  # 3: unknown officer
        ["", world.officer_b.id_number, law.id, "", f"{YEAR}-03-10", "2"],  # 4: city B's officer
        ["", b.id_number, law.id, "", f"{YEAR}-03-10", "-1"],  # 5: hours not positive
        ["", b.id_number, law.id, "", f"{YEAR}-03-11", "两个"],  # 6: hours not a number
        ["", b.id_number, law.id, "", f"{YEAR - 1}-12-31", ""],  # 7: outside the year
        ["", b.id_number, law.id, "", f"{YEAR}-05-01", ""],  # 8: outside the course
        ["", b.id_number, 999999, "", "", ""],  # 9: unknown course number
        ["", b.id_number, "", "不存在的课程", "", ""],  # 10: unknown course title
        [a.name, a.id_number, law.id, "", f"{YEAR}/3/10", "2"],  # 11: same as row 2
        ["张冠李戴", officers[2].id_number, law.id, "", "", ""],  # 12: name does not match
        [],  # 13: blank line, skipped
        ["", officers[3].id_number, "", "新修订法律法规解读", "", ""],  # 14: fine, by title, course's date
        ["", officers[4].id_number, law.id, "", "", "4.5"],  # 15: more than the course
        ["", "3.20102E+17", law.id, "", "", ""],  # 16: ID number stored as a number by Excel
        ["", officers[5].id_number, law.id, "", "2025-02-30", ""],  # 17: not a date
    ]
    before = await ledger_counts(db)
    await client.login("admin_a")
    r = await api_import(client, make_csv(rows))
    assert r.status_code == 422, r.text
    report = r.json()
    got = [(e["row"], e["column"], e["message"]) for e in report["errors"]]
    expected = [
        (3, "身份证号码", "未找到身份证号码为"),
        (4, "身份证号码", "未找到身份证号码为"),
        (5, "学时", "学时“-1”不是正数"),
        (6, "学时", "学时“两个”不是正数"),
        (7, "培训日期", f"培训日期 {YEAR - 1}-12-31 不在 {YEAR} 年度内"),
        (8, "培训日期", f"培训日期 {YEAR}-05-01 不在课程起止日期"),
        (9, "课程编号", "课程编号 999999 不存在或不在您的管理范围内"),
        (10, "课程名称", "课程“不存在的课程”在 2025 年度不存在"),
        (11, "身份证号码", "与第2行重复"),
        (12, "姓名", "姓名“张冠李戴”与系统中该身份证号码的人员姓名"),
        (15, "学时", "学时 4.5 超过课程学时 4"),
        (16, "身份证号码", "身份证号码在 Excel 中被存成了数字"),
        (17, "培训日期", "培训日期“2025-02-30”无法识别"),
    ]
    assert len(got) == len(expected), got
    for (row, column, message), (erow, ecolumn, emessage) in zip(got, expected, strict=True):
        assert (row, column) == (erow, ecolumn) and message.startswith(emessage), (row, column, message)
    assert "110105" not in json.dumps(report, ensure_ascii=False)  # an unknown ID number is masked
    assert report["total_rows"] == 15 and report["invalid_rows"] == 13 and report["valid_rows"] == 2
    assert [s["row"] for s in report["sample"]] == [2, 14]
    assert report["sample"][1]["attended_on"] == f"{YEAR}-06-01" and report["sample"][1]["hours"] == 2
    assert report["hours_total"] == 4 and report["dry_run"] is True and report["imported"] == 0
    assert await ledger_counts(db) == before

    page = await page_upload(client, make_csv(rows))
    assert page.status_code == 422
    for row, _column, message in got:
        assert f"第 {row} 行" in page.text and message.split("，")[0] in page.text
    assert "确认导入" not in page.text and "未导入任何学时" in page.text


async def test_file_level_problems_are_named(client: Client, world: World, db: AsyncSession) -> None:
    law, _new, _officers = await setup_courses(db, world)
    await client.login("admin_a")
    cases = [
        (b"", "a.csv", {}, "文件是空的"),
        (make_csv([["李明"]], headers=["姓名", "课程编号"]), "a.csv", {}, "缺少必填列"),
        (
            make_csv([["李明", world.officer_a.id_number]], headers=["姓名", "身份证号码"]),
            "a.csv",
            {},
            "缺少“课程编号”或“课程名称”列",
        ),
        (make_csv([]), "a.csv", {}, "没有数据行"),
        (b"PK\x03\x04broken", "a.xlsx", {}, "已损坏"),
        (make_csv([]), "a.csv", {"course_id": 999999}, "所选课程不存在"),
    ]
    for data, filename, params, message in cases:
        r = await api_import(client, data, filename=filename, **params)
        assert r.status_code == 400, (filename, r.text)
        assert message in r.json()["detail"], r.json()
        page = await page_upload(client, data, filename=filename, **params)
        assert page.status_code == 400 and message in page.text
    assert law.id  # the course exists: the last case is about scope, not emptiness


# ---------------------------------------------------------------- commit


async def test_commit_writes_everything_once_and_never_twice(
    client: Client, world: World, db: AsyncSession, var_dir: Path
) -> None:
    law, new, officers = await setup_courses(db, world)
    rows = [[o.name, o.id_number, law.id, "", f"{YEAR}-03-10", "3.5"] for o in officers]
    rows += [["", o.id_number, "", "新修订法律法规解读", "", ""] for o in officers[:3]]
    data = make_csv(rows)
    await client.login("admin_a")
    before = await ledger_counts(db)

    page = await page_upload(client, data)
    assert page.status_code == 200, page.text
    assert "全部 9 行检查通过" in page.text and "确认导入 9 条学时记录" in page.text
    sha = staged_hash(page.text)
    assert (var_dir / "uploads" / "training-import" / str(world.admin_a.id) / sha).read_bytes() == data
    assert await ledger_counts(db) == before  # the preview writes nothing

    r = await client.form("/training/import/commit", {"sha256": sha}, follow_redirects=False)
    assert r.status_code == 303, r.text
    batch = (await db.scalars(select(TrainingImportBatch).where(TrainingImportBatch.sha256 == sha))).one()
    assert r.headers["location"] == f"/training/import?batch={batch.id}"
    assert (batch.outcome, batch.rows_total, batch.rows_imported, batch.hours_tenths) == (
        "committed",
        9,
        9,
        6 * 35 + 3 * 20,
    )
    assert (batch.created_by_id, batch.source, batch.year) == (world.admin_a.id, "web", YEAR)
    await db.commit()
    assert await ledger_counts(db) == (before[0] + 9, before[1] + 1, before[2] + 1)
    done = await client.get(r.headers["location"], headers={"accept": "text/html"})
    assert f"导入成功（批次 {batch.id}）：已登记 9 条学时记录，共 27 学时" in done.text
    line = (
        await db.scalars(
            select(TrainingRecord).where(
                TrainingRecord.officer_id == officers[1].id, TrainingRecord.course_id == new.id
            )
        )
    ).one()
    assert (line.attended_on, line.hours_tenths, line.year, line.category) == (day(6, 1), 20, YEAR, "new_law")
    assert (line.batch_id, line.entered_by_id, line.entered_by_name, line.kind) == (
        batch.id,
        world.admin_a.id,
        "admin_a",
        "record",
    )
    event = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "training.import"))).one()
    assert event.entity_id == str(batch.id) and event.actor_id == world.admin_a.id
    assert (event.entity_type, event.agency_id) == ("training_import_batch", world.admin_a.agency_id)
    assert json.loads(event.data) == {
        "filename": batch.filename,
        "sha256": sha,
        "year": YEAR,
        "rows": 9,
        "hours": "27",
        "source": "web",
    }
    assert (await audit_verify(db)).ok
    await db.commit()

    # The same file again: refused at once, by the web page and the API, naming the batch.
    page = await page_upload(client, data)
    assert page.status_code == 409 and f"该文件已导入（批次 {batch.id}" in page.text
    r = await api_import(client, data, dry_run=False)
    assert r.status_code == 409 and f"该文件已导入（批次 {batch.id}" in r.json()["detail"]
    r = await client.form("/training/import/commit", {"sha256": sha})
    assert r.status_code == 409 and f"批次 {batch.id}" in r.text
    # An edited copy (one more row): the rows already counted are duplicates, nothing is written.
    edited = make_csv([*rows, ["", world.officer_a.id_number, law.id, "", f"{YEAR}-03-11", "0.5"]])
    r = await api_import(client, edited, dry_run=False)
    assert r.status_code == 422
    report = r.json()
    assert report["invalid_rows"] == 9 and all("已登记" in e["message"] for e in report["errors"])
    assert report["batch_id"] is not None and report["imported"] == 0
    assert await count(db, TrainingRecord) == before[0] + 9
    year = (await client.get(f"/api/training/officers/{world.officer_a.id}", params={"year": YEAR})).json()
    assert year["total"] == 5.5  # 3.5 + 2, once
    await assert_totals_match_ledger(db)


async def test_a_rejected_commit_is_kept_as_a_batch_and_writes_no_hours(
    client: Client, world: World, db: AsyncSession
) -> None:
    law, _new, officers = await setup_courses(db, world)
    rows = [["", o.id_number, law.id, "", "", ""] for o in officers] + [
        ["", make_id_number(region="110105"), law.id, "", "", ""]
    ]
    await client.login("admin_a")
    before = await ledger_counts(db)
    r = await api_import(client, make_csv(rows), dry_run=False)
    assert r.status_code == 422, r.text
    batch_id = r.json()["batch_id"]
    assert await count(db, TrainingRecord) == before[0]  # rows 2–7 were written, then rolled back
    batch = (await client.get(f"/api/training/imports/{batch_id}")).json()
    assert (batch["outcome"], batch["rows_total"], batch["rows_rejected"], batch["rows_imported"]) == (
        "rejected",
        7,
        1,
        0,
    )
    assert batch["errors"][0]["row"] == 8 and "未找到身份证号码" in batch["errors"][0]["message"]
    assert batch["created_by_name"] == "admin_a"
    event = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "training.import.reject"))).one()
    assert (event.entity_type, event.entity_id) == ("training_import_batch", str(batch_id))
    assert json.loads(event.data) == {
        "filename": batch["filename"],
        "sha256": batch["sha256"],
        "rows": 7,
        "rejected_rows": 1,
        "source": "api",
    }
    # Another agency does not see it; the province does.
    await client.login("admin_b")
    assert (await client.get(f"/api/training/imports/{batch_id}")).status_code == 404
    assert batch_id not in [b["id"] for b in (await client.get("/api/training/imports")).json()]
    await client.login("sfj_admin")
    assert (await client.get(f"/api/training/imports/{batch_id}")).status_code == 200
    page = await client.get(f"/training/imports/{batch_id}", headers={"accept": "text/html"})
    assert "已拒绝（未写入）" in page.text and "第 8 行" in page.text
    # The fixed file goes in.
    r = await api_import(client, make_csv(rows[:-1]), dry_run=False)
    assert r.status_code == 200 and r.json()["imported"] == 6
    await assert_totals_match_ledger(db)


async def test_gbk_csv_xlsx_and_one_course_for_the_whole_file(
    client: Client, world: World, db: AsyncSession
) -> None:
    law, new, officers = await setup_courses(db, world)
    await client.login("admin_a")
    # GBK, as Excel's Chinese "CSV" export writes it; courses by title.
    gbk = make_csv(
        [["", o.id_number, "", "新修订法律法规解读", f"{YEAR}年6月1日", "2"] for o in officers[:2]],
        encoding="gbk",
    )
    r = await api_import(client, gbk, dry_run=False)
    assert r.status_code == 200, r.text
    assert (r.json()["encoding"], r.json()["imported"]) == ("GBK/GB18030", 2)
    # XLSX with a title row, real date cells and number cells.
    xlsx = make_xlsx(
        [[o.name, o.id_number, law.id, None, dt.datetime(YEAR, 3, 10), 2.5] for o in officers[2:5]]
    )
    r = await api_import(client, xlsx, filename="签到表.xlsx", dry_run=False)
    assert r.status_code == 200, r.text
    assert (r.json()["file_type"], r.json()["imported"], r.json()["hours_total"]) == ("xlsx", 3, 7.5)
    # A sheet of ID numbers only, for one course chosen in the form.
    only_ids = make_csv([[o.id_number] for o in officers[2:4]], headers=["身份证号码"])
    page = await page_upload(client, only_ids, course_id=new.id)
    assert page.status_code == 200 and "全部 2 行检查通过" in page.text
    r = await client.form(
        "/training/import/commit", {"sha256": staged_hash(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    lines = (await db.scalars(select(TrainingRecord).where(TrainingRecord.course_id == new.id))).all()
    assert len(lines) == 4 and {ln.hours_tenths for ln in lines} == {20}
    # Another agency cannot use city A's officers, nor its courses.
    await client.login("admin_b")
    r = await api_import(client, make_csv([["", officers[5].id_number, law.id, "", "", ""]]))
    assert r.status_code == 422
    columns = [e["column"] for e in r.json()["errors"]]
    assert columns == ["身份证号码", "课程编号"]
    await assert_totals_match_ledger(db)


async def test_the_same_file_cannot_be_committed_twice_by_the_database(
    world: World, db: AsyncSession
) -> None:
    city_a = world.city_a.id  # a plain value: objects expire at every rollback below

    def batch(outcome: str, committed: str | None) -> TrainingImportBatch:
        return TrainingImportBatch(
            agency_id=city_a,
            sha256="a" * 64,
            committed_sha256=committed,
            filename="x.csv",
            file_type="csv",
            source="web",
            year=YEAR,
            outcome=outcome,
            rows_total=1,
            rows_imported=1,
            rows_rejected=0,
            hours_tenths=10,
            created_by_name="t",
        )

    db.add_all([batch("committed", "a" * 64), batch("rejected", None), batch("rejected", None)])
    await db.commit()
    db.add(batch("committed", "a" * 64))
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()
    db.add(batch("committed", None))  # a committed batch must carry its hash
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()


async def test_import_pages_and_template(client: Client, world: World, db: AsyncSession) -> None:
    law, _new, _officers = await setup_courses(db, world)
    await client.login("admin_a")
    html = {"accept": "text/html"}
    page = await client.get(f"/training/import?course_id={law.id}", headers=html)
    assert page.status_code == 200 and "行政处罚法专题培训" in page.text and f'value="{law.id}"' in page.text
    t = await client.get("/training/import/template.csv")
    assert t.status_code == 200 and t.content.startswith(b"\xef\xbb\xbf")
    assert t.content.decode("utf-8-sig").strip() == "姓名,身份证号码,课程编号,课程名称,培训日期,学时"
    assert (
        "还没有导入过签到表" not in (await client.get("/training/imports", headers=html)).text
    )  # the world's 2020 batch
    r = await client.form("/training/import/commit", {"sha256": "0" * 64})
    assert r.status_code == 400 and "已失效" in r.text


# ---------------------------------------------------------------- the operator's command


async def test_console_import(
    world: World, db: AsyncSession, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    law, _new, officers = await setup_courses(db, world)
    settings = load_settings({"APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "t" * 40})
    monkeypatch.setattr("app.settings.get_settings", lambda: settings)
    good = tmp_path / "签到表.csv"
    good.write_bytes(make_csv([["", o.id_number, law.id, "", "", ""] for o in officers]))
    bad = tmp_path / "有错误.csv"
    bad.write_bytes(
        make_csv([["", officers[0].id_number, law.id, "", "", "-2"], ["", "123", law.id, "", "", ""]])
    )

    def run(*args: str) -> Any:
        # The command runs its own event loop: give it a thread of its own.
        return asyncio.to_thread(CliRunner().invoke, cli, ["training", "import", *args])

    before = await ledger_counts(db)
    r = await run(str(bad), "--year", str(YEAR))
    assert r.exit_code == 1, r.output
    assert "第2行 学时：学时“-2”不是正数" in r.output and "第3行 身份证号码：身份证号码应为18位" in r.output
    assert "未写入任何数据" in r.output
    r = await run(str(bad), "--year", str(YEAR), "--json", "--dry-run")
    assert r.exit_code == 1
    report = json.loads(r.output)
    assert report["ok"] is False and [e["row"] for e in report["errors"]] == [2, 3]
    r = await run(str(good), "--year", str(YEAR), "--dry-run")
    assert r.exit_code == 0 and "全部检查通过（--dry-run，未写入）" in r.output
    assert (await ledger_counts(db))[0] == before[0]

    r = await run(str(good), "--year", str(YEAR), "--as-user", "admin_b")
    assert r.exit_code == 1 and "未找到身份证号码" in r.output  # scoped to city B
    r = await run(str(good), "--year", str(YEAR), "--as-user", "officer_a")
    assert r.exit_code == 1 and "不是管理员" in r.output
    r = await run(str(good), "--year", str(YEAR), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] is True and report["imported"] == 6
    batch = (
        await db.scalars(select(TrainingImportBatch).where(TrainingImportBatch.id == report["batch_id"]))
    ).one()
    assert (batch.source, batch.created_by_id, batch.created_by_name, batch.agency_id) == (
        "cli",
        None,
        "system",
        None,
    )
    await db.commit()
    r = await run(str(good), "--year", str(YEAR))
    assert r.exit_code == 1 and f"该文件已导入（批次 {batch.id}" in r.output
    await assert_totals_match_ledger(db)


async def test_a_sheet_refused_at_the_commit_page_is_kept_as_a_rejected_batch(
    client: Client, world: World, db: AsyncSession
) -> None:
    """Checked clean, then someone types in one of its officers: the commit page answers 422 with the
    row, writes no hours, and the refusal stays on record (the 422 does not roll it back)."""
    law, _new, officers = await setup_courses(db, world)
    data = make_csv([["", o.id_number, law.id, "", f"{YEAR}-03-10", "2"] for o in officers[:3]])
    await client.login("admin_a")
    page = await page_upload(client, data)
    assert page.status_code == 200, page.text
    sha = staged_hash(page.text)
    typed = await client.post(
        f"/api/training/courses/{law.id}/attendance",
        json={"id_numbers": [officers[1].id_number], "attended_on": f"{YEAR}-03-10"},
    )
    assert typed.status_code == 201, typed.text
    before = await ledger_counts(db)

    r = await client.form("/training/import/commit", {"sha256": sha}, follow_redirects=False)
    assert r.status_code == 422, r.text
    assert "第 3 行" in r.text and "已登记" in r.text
    batch = (await db.scalars(select(TrainingImportBatch).where(TrainingImportBatch.sha256 == sha))).one()
    assert (batch.outcome, batch.source, batch.rows_total, batch.rows_rejected) == ("rejected", "web", 3, 1)
    await db.commit()
    assert await ledger_counts(db) == (before[0], before[1] + 1, before[2] + 1)
    await assert_totals_match_ledger(db)
