"""Faults: the attendance import killed with SIGKILL at arbitrary moments, then run again.

The operator's command (``app training import``) runs as a real process against the test database and
is killed part-way, several times, at different moments (start-up, validation, writing, commit). After
every kill the database holds either the whole sheet or none of it: the ledger, the import batch and
the yearly totals agree (``app training totals --check``). Running the command to the end then imports
the sheet exactly once, and a further run refuses it as already imported.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord

pytestmark = pytest.mark.slow  # the console command in a subprocess, killed with SIGKILL: make test-slow

ROOT = Path(__file__).resolve().parents[3]
COURSES = 60
# Growing delays until one run finishes: the kills land in every phase, the last ones near the commit.
KILL_AFTER_S = tuple(round(0.5 * 1.4**k, 2) for k in range(12))


def _cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test", "APP_VAR_DIR": str(tmp_path)}
    return subprocess.Popen(  # noqa: S603 - our own console command, fixed arguments
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = _cli(database_url, tmp_path, *args)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


async def _counts(db: AsyncSession) -> tuple[int, int]:
    records = int(await db.scalar(select(func.count()).select_from(TrainingRecord)) or 0)
    batches = int(
        await db.scalar(
            select(func.count())
            .select_from(TrainingImportBatch)
            .where(TrainingImportBatch.outcome == "committed")
        )
        or 0
    )
    await db.commit()  # end the snapshot: the next look must see what the killed process left
    return records, batches


async def test_killed_import_leaves_all_or_nothing(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    rc, out = _run(database_url, tmp_path, "demo-data", "--officers", "400")
    assert rc == 0, out
    await db.execute(text("DELETE FROM training_records"))  # the demo ledger is not what is measured here
    await db.execute(text("DELETE FROM training_year_totals"))
    province = await db.scalar(select(Agency).where(Agency.depth == 0))
    assert province is not None
    year = 2026
    titles = [f"断电测试课程{i:02d}" for i in range(COURSES)]
    for title in titles:
        db.add(
            TrainingCourse(
                agency_id=province.id,
                year=year,
                title=title,
                category="general_law",
                hours_tenths=20,
                starts_on=dt.date(year, 3, 1),
                ends_on=dt.date(year, 3, 1),
                verification="sign_in_sheet",
                created_by_name="测试",
            )
        )
    id_numbers = list((await db.scalars(select(Officer.id_number).order_by(Officer.id))).all())
    await db.commit()

    sheet = tmp_path / "attendance.csv"
    with sheet.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["身份证号码", "课程名称", "培训日期", "学时"])
        for title in titles:
            for number in id_numbers:
                w.writerow([number, title, f"{year}-03-01", "2"])
    expected = COURSES * len(id_numbers)
    assert expected >= 20_000

    finished = False
    for delay in KILL_AFTER_S:
        proc = _cli(database_url, tmp_path, "training", "import", str(sheet))
        await asyncio.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        records, batches = await _counts(db)
        if proc.returncode == 0:  # it finished before the kill: then everything is there
            finished = True
        assert (records, batches) in ((0, 0), (expected, 1)), (delay, proc.returncode, records, batches, out)
        if records:
            finished = True
        rc, check = _run(database_url, tmp_path, "training", "totals", "--check")
        assert rc == 0, f"totals differ from the ledger after a kill at {delay} s:\n{check}"
        if finished:
            break

    if not finished:
        rc, out = _run(database_url, tmp_path, "training", "import", str(sheet))
        assert rc == 0, out
    assert await _counts(db) == (expected, 1)

    rc, out = _run(database_url, tmp_path, "training", "import", str(sheet))
    assert rc != 0 and "已导入" in out, out
    assert await _counts(db) == (expected, 1)
    rc, check = _run(database_url, tmp_path, "training", "totals", "--check")
    assert rc == 0, check
