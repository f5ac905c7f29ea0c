"""Plain CSV files split by PostgreSQL (``_Ledger.stage_plain``) judge every row as the Python reader does.

Each case is a sheet with its expected outcome. On both engines the outcome is checked; on
PostgreSQL the sheet is also read with the database's split turned off, and the two previews (every
error with its row, column and message, the counts, the hours, the sample) must be equal, and the
lane it took is the expected one: split by the database, refused by COPY and read in Python, or
not plain at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.training import command_principal
from app.lib import tabular
from app.lib.security import Principal
from app.training.models import TrainingRecord
from app.training.services.imports import training_import_commit, training_import_preview
from app.training.sheets import plain
from app.training.sheets.format import MAX_IMPORT_ROWS, ImportFileError
from tests.factories import World, add_officer, make_id_number
from tests.integration.training.conftest import HEADERS, YEAR, assert_totals_match_ledger
from tests.integration.training.test_training_import import setup_courses

PLAIN = "plain"  # split by PostgreSQL
REFUSED = "refused"  # plain, but COPY (or a limit) refused it: read in Python
READER = "reader"  # not plain: read in Python from the start


@dataclass
class Ctx:
    law: int
    ids: list[str]
    names: list[str]
    x_id: str
    outsider: str


def _sheet(rows: list[list[Any]], *, delimiter: str = ",", terminator: str = "\r\n", title: str = "") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator)
    if title:
        out.write(title + terminator)
    writer.writerow([*HEADERS, "备注"])
    writer.writerows(rows)
    return out.getvalue()


def mixed(c: Ctx) -> list[list[Any]]:
    stranger = make_id_number(region="110105")
    return [
        [c.names[0], c.ids[0], c.law, "", f"{YEAR}-03-10", "2", "签到"],  # 2 fine
        [" 王 五 ", c.ids[1], c.law, "", f"{YEAR}-03-10", "2", ""],  # 3 name differs (trimmed in the message)
        ["\u3000" + c.names[2] + "\u3000", c.ids[2], c.law, "", f"{YEAR}-03-10", "2", ""],  # 4 fine
        ["", c.x_id.lower(), c.law, "", f"{YEAR}-03-10", "1.5", ""],  # 5 fine: lower-case x
        ["", " " + c.ids[3], c.law, "", f"{YEAR}-03-10", "2", ""],  # 6 fine: a space (Python lane)
        ["", "'" + c.ids[4], c.law, "", f"{YEAR}-03-10", "2", ""],  # 7 fine: Excel's text quote
        [
            "",
            c.ids[5].translate(str.maketrans("0123456789", "０１２３４５６７８９")),
            c.law,
            "",
            "",
            "",
            "",
        ],  # 8
        ["", stranger, c.law, "", f"{YEAR}-03-10", "2", ""],  # 9 unknown officer
        ["", c.outsider, c.law, "", f"{YEAR}-03-10", "2", ""],  # 10 another city's officer
        ["", c.ids[0], c.law, "", f"{YEAR}/3/10", "2", ""],  # 11 twin of row 2 (other date text)
        ["", c.ids[1], c.law, "", f"{YEAR}-03-11", "两个", ""],  # 12 hours not a number
        ["", c.ids[2], "", "新修订法律法规解读", "", "", ""],  # 13 fine, by title
        ["", c.ids[3], "999999", "", "", "", ""],  # 14 unknown course number
        ["", c.ids[4], "", "  不存在的课程 ", "", "", ""],  # 15 unknown title
        ["", c.ids[5], c.law, "", f"{YEAR}-02-30", "", ""],  # 16 not a date
        ["", "", "", "", "", "", ""],  # 17 blank: skipped
        [" ", "\u3000", "", "", "", "", "只有备注"],  # 18 blank in every known column: skipped
        ["无证号", "", c.law, "", "", "", ""],  # 19 no ID number
        ["", "3.20102E+17", c.law, "", "", "", ""],  # 20 stored as a number by Excel
        ["", c.ids[0][:17], c.law, "", "", "", ""],  # 21 17 digits
        ["", c.ids[1], c.law, "", f"{YEAR}-03-11", "4.5", ""],  # 22 more hours than the course
        ["", c.ids[2], c.law, "", f"{YEAR - 1}-12-31", "", ""],  # 23 outside the year
    ]


def regular(c: Ctx) -> list[list[Any]]:
    return [[n, i, c.law, "", f"{YEAR}-03-10", "2", ""] for n, i in zip(c.names, c.ids, strict=True)]


@dataclass
class Case:
    name: str
    data: Callable[[Ctx], bytes]
    lane: str
    expect: Callable[[dict[str, Any]], bool]
    max_rows: int = MAX_IMPORT_ROWS
    combos: int = plain.PLAIN_COMBOS


def _errors(out: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["row"], e["column"]) for e in out.get("errors", [])]


MIXED_ERRORS = [
    (3, "姓名"),
    (8, "身份证号码"),
    (9, "身份证号码"),
    (10, "身份证号码"),
    (11, "身份证号码"),
    (12, "学时"),
    (14, "课程编号"),
    (15, "课程名称"),
    (16, "培训日期"),
    (19, "身份证号码"),
    (20, "身份证号码"),
    (21, "身份证号码"),
    (22, "学时"),
    (23, "培训日期"),
]


def _mixed_ok(out: dict[str, Any]) -> bool:
    return _errors(out) == MIXED_ERRORS and out["total_rows"] == 20 and out["valid_rows"] == 6


CASES = [
    Case("regular", lambda c: _sheet(regular(c)).encode("utf-8-sig"), PLAIN, lambda o: o["valid_rows"] == 6),
    Case("mixed", lambda c: _sheet(mixed(c)).encode("utf-8-sig"), PLAIN, _mixed_ok),
    Case("mixed GBK", lambda c: _sheet(mixed(c)).encode("gb18030"), PLAIN, _mixed_ok),
    Case("mixed, tabs", lambda c: _sheet(mixed(c), delimiter="\t").encode("utf-8"), PLAIN, _mixed_ok),
    Case(
        "mixed, CR line ends", lambda c: _sheet(mixed(c), terminator="\r").encode("utf-8"), PLAIN, _mixed_ok
    ),
    Case(
        "title row above the header",
        lambda c: _sheet(regular(c), title="2025年度签到表,,,,,,").encode("utf-8-sig"),
        PLAIN,
        lambda o: o["valid_rows"] == 6 and [s["row"] for s in o["sample"]] == [3, 4, 5, 6, 7, 8],
    ),
    Case(
        "quoted cells",
        lambda c: _sheet([[*regular(c)[0][:6], "备注, 带逗号"], *regular(c)[1:]]).encode("utf-8"),
        READER,
        lambda o: o["valid_rows"] == 6,
    ),
    Case(
        "a ragged line",
        lambda c: _sheet([[*regular(c)[0], "多出一格"], *regular(c)[1:]]).encode("utf-8"),
        REFUSED,
        lambda o: o["valid_rows"] == 6,
    ),
    Case(
        "an empty line",
        lambda c: _sheet([*regular(c)[:3], [], *regular(c)[3:]]).encode("utf-8"),
        REFUSED,
        lambda o: o["valid_rows"] == 6 and [s["row"] for s in o["sample"]][3:] == [6, 7, 8],
    ),
    Case(
        "more distinct texts than the database is given",
        lambda c: _sheet(mixed(c)).encode("utf-8"),
        REFUSED,
        _mixed_ok,
        combos=3,
    ),
    Case(
        "a cell over the reader's limit",
        lambda c: _sheet([["长" * (tabular.CSV_FIELD_LIMIT + 1), *regular(c)[0][1:]]]).encode("utf-8"),
        REFUSED,
        lambda o: "64 KB" in o.get("file_error", ""),
    ),
    Case(
        "more rows than allowed",
        lambda c: _sheet(regular(c)).encode("utf-8"),
        PLAIN,
        lambda o: o.get("file_error") == tabular.too_many_rows(5),
        max_rows=5,
    ),
    Case(
        "more rows than allowed, counting those read back",
        lambda c: _sheet([[n, " " + i, *r] for n, i, *r in regular(c)]).encode("utf-8"),
        PLAIN,
        lambda o: o.get("file_error") == tabular.too_many_rows(5),
        max_rows=5,
    ),
    Case(
        "header only",
        lambda c: _sheet([]).encode("utf-8"),
        PLAIN,
        lambda o: "没有数据行" in o.get("file_error", ""),
    ),
    Case(
        "COPY's end-of-data mark",
        lambda c: (_sheet(regular(c)[:3]) + "\\.\r\n" + _sheet(regular(c)[3:]).split("\r\n", 1)[1]).encode(),
        READER,
        lambda o: (
            (o["total_rows"], o["valid_rows"], _errors(o)) == (7, 6, [(5, "身份证号码"), (5, "课程名称")])
        ),
    ),
]


async def _context(db: AsyncSession, world: World) -> tuple[Ctx, Principal]:
    law, _new, officers = await setup_courses(db, world)
    seq = next(s for s in range(900, 1000) if make_id_number(seq=s).endswith("X"))
    x = await add_officer(db, world.dept_a, "赵六", id_number=make_id_number(seq=seq))
    ctx = Ctx(
        law=law.id,
        ids=[o.id_number for o in officers],
        names=[o.name for o in officers],
        x_id=x.id_number,
        outsider=world.officer_b.id_number,
    )
    await db.commit()
    return ctx, await command_principal(db, "admin_a")


async def _preview(
    db: AsyncSession, principal: Principal, data: bytes, case: Case, *, split: bool, mp: pytest.MonkeyPatch
) -> tuple[dict[str, Any], str]:
    lanes: list[bool] = []
    stage_plain = plain.stage_plain

    async def spy(*args: Any) -> bool:
        try:
            took = await stage_plain(*args)
        except ImportFileError:
            lanes.append(True)  # split, and judged too long by the database's count
            raise
        lanes.append(took)
        return took

    with mp.context() as m:
        m.setattr(plain, "PLAIN_CSV", split)
        m.setattr(plain, "PLAIN_COMBOS", case.combos)
        m.setattr(plain, "stage_plain", spy)
        try:
            preview = await training_import_preview(
                db, principal=principal, data=data, filename="签到表.csv", year=YEAR, max_rows=case.max_rows
            )
            out: dict[str, Any] = msgspec.to_builtins(preview)
        except ImportFileError as exc:
            out = {"file_error": exc.message}
    lane = READER if not lanes else PLAIN if lanes == [True] else REFUSED
    return out, lane


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_plain_csv_is_judged_as_the_python_reader_judges_it(
    world: World, db: AsyncSession, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, principal = await _context(db, world)
    data = case.data(ctx)
    reader, lane = await _preview(db, principal, data, case, split=False, mp=monkeypatch)
    assert lane == READER
    assert case.expect(reader), reader
    if db.bind.dialect.name != "postgresql":
        return  # SQLite: the Python reader is the only lane (checked above)
    split, lane = await _preview(db, principal, data, case, split=True, mp=monkeypatch)
    assert lane == case.lane
    assert split == reader


async def test_a_plain_csv_commits_the_same_lines_as_the_python_reader(
    world: World, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mixed sheet without its bad rows, committed: the ledger lines and totals are the same
    whichever lane read it (PostgreSQL: the database's split; SQLite: the reader)."""
    ctx, principal = await _context(db, world)
    good = {2, 4, 5, 6, 7, 13}
    rows = [r for n, r in enumerate(mixed(ctx), start=2) if n in good]
    result = await training_import_commit(
        db, principal=principal, data=_sheet(rows).encode("utf-8"), filename="签到表.csv", year=YEAR
    )
    assert result.imported == 6 and result.preview.hours_total == 2 + 2 + 1.5 + 2 + 2 + 2
    lines = (
        await db.execute(
            select(TrainingRecord.officer_id, TrainingRecord.hours_tenths).where(
                TrainingRecord.batch_id == result.batch_id
            )
        )
    ).all()
    assert len({o for o, _t in lines}) == 5 and sorted(t for _o, t in lines) == [15, 20, 20, 20, 20, 20]
    await assert_totals_match_ledger(db)
