"""PostgreSQL's fast path for a plain CSV sheet: COPY splits the file, the rows need no Python.

A plain CSV (no quotes: what Excel and WPS export for attendance sheets) goes into a scratch table
through COPY; each distinct (course, date, hours) text is then judged once by the same Python checks
as any row, and one join stages every row that has it. Same rows, same messages, same figures as
the Python reader; ~0.3 s of database work instead of ~0.9 s of Python for 100 000 rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg

from app.lib import tabular
from app.lib.clock import today
from app.lib.imports import ImportFileError, RowFault
from app.lib.tabular import PlainCsv, Row
from app.training.sheets import sql
from app.training.sheets.format import CHUNK_ROWS
from app.training.sheets.ledger import Ledger
from app.training.sheets.rows import RowParser

PLAIN_CSV = True
"""PostgreSQL splits plain CSV files (see ``stage_plain``); tests turn it off to compare."""
PLAIN_COMBOS = 5_000
"""Most distinct (course, date, hours) texts a plain CSV may have for the database to split it."""
_RAW = "training_import_raw"
_COMBOS = "training_import_combos"
_TEXTS = ("course_id", "course", "attended_on", "hours")
_BLANKS_SQL = "E'" + "".join(f"\\u{ord(c):04x}" for c in tabular.BLANKS) + "'"
"""The reader's blanks as a PostgreSQL string (``btrim`` strips what ``str.strip`` strips)."""


def applies(ledger: Ledger) -> bool:
    """Whether a plain CSV file may be split by the database (PostgreSQL's COPY)."""
    return ledger.dialect == "postgresql" and PLAIN_CSV


async def stage_plain(
    ledger: Ledger, data: bytes, plain: PlainCsv, table: tabular.Table, parser: RowParser, max_rows: int
) -> bool:
    """Stage a plain CSV file (PostgreSQL): the database splits it, the rows need no Python.

    COPY puts the raw cells of the rows after the header into a scratch table. A row whose ID
    number is 18 ASCII digits (or 17 and an X) is judged by its (course, date, hours) texts;
    those repeat, so each distinct one goes through the same Python checks as any row (its
    verdict — and its errors — then hold for every row that has it) and one join stages the
    rows. Every other row (a blank or odd ID number: spaces, quote, full-width digits…) is
    read back and parsed as the Python reader would. Same rows, same messages, same figures.

    False (and nothing kept) when COPY refuses the file (a blank or ragged line, mixed line
    ends), a cell or line is over the reader's limits, or there are more than ``PLAIN_COMBOS``
    distinct texts: the caller then reads the file in Python.
    """
    conn = await ledger.db.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    cells = [f"c{i}" for i in range(plain.width)]
    await driver.execute("SAVEPOINT training_import_plain")
    try:
        await driver.execute(
            f"CREATE TEMPORARY TABLE {_RAW} (n bigint GENERATED ALWAYS AS IDENTITY, "
            + ", ".join(f"{c} text" for c in cells)
            + ") ON COMMIT DROP"
        )
        await driver.copy_to_table(
            _RAW,
            source=_async_chunks(plain.chunks(data)),
            columns=cells,
            format="csv",
            delimiter=plain.delimiter,
        )
    except asyncpg.PostgresError:
        await driver.execute("ROLLBACK TO SAVEPOINT training_import_plain")
        return False
    pos = table.positions
    id_cell = f"r.c{pos['id_number']}"
    keys = [f"coalesce(r.c{pos[t]}, '')" if t in pos else "''" for t in _TEXTS]
    # 18 ASCII digits, or 17 and an X: the ID number as the Python reader would keep it.
    canonical = f"(octet_length({id_cell}) = 18 AND ltrim({id_cell}, '0123456789') IN ('', 'X', 'x'))"
    octets = " + ".join(f"coalesce(octet_length(r.{c}), 0)" for c in cells)
    # One pass: the distinct texts of the rows with a canonical ID, how many rows have one (or
    # not), and the longest line.
    groups = await driver.fetch(
        f"SELECT {', '.join(keys)}, coalesce({canonical}, false), count(*), max({octets}) "
        f"FROM {_RAW} r GROUP BY 1, 2, 3, 4, 5 LIMIT {PLAIN_COMBOS + 1}"
    )
    longest = max((g[6] for g in groups), default=0)
    if len(groups) > PLAIN_COMBOS or longest + plain.width > tabular.CSV_FIELD_LIMIT:
        # Too many distinct texts, or a line so long the reader's limits may apply (it says which).
        await driver.execute("ROLLBACK TO SAVEPOINT training_import_plain")
        return False
    combos = [tuple(g[:4]) for g in groups if g[4]]
    canonical_rows = sum(g[5] for g in groups if g[4])
    others = sum(g[5] for g in groups if not g[4])
    if canonical_rows > max_rows:
        raise ImportFileError(tabular.too_many_rows(max_rows), field="file")
    if combos:
        await _stage_combos(ledger, driver, combos, parser, table, keys, canonical if others else "")
    ledger.total += canonical_rows
    # The other rows, read back in row order and parsed as the Python reader would.
    last = 0
    filled = canonical_rows
    while others:
        rest = await driver.fetch(
            f"SELECT r.n, {', '.join(f'r.{c}' for c in cells)} FROM {_RAW} r "
            f"WHERE r.n > $1 AND NOT coalesce({canonical}, false) ORDER BY r.n LIMIT {CHUNK_ROWS}",
            last,
        )
        if not rest:
            break
        last = rest[-1][0]
        found = [
            row
            for r in rest
            if (row := tabular.row_of(table.header_row + r[0], [c or "" for c in list(r)[1:]], pos))
        ]
        filled += len(found)
        if filled > max_rows:
            raise ImportFileError(tabular.too_many_rows(max_rows), field="file")
        await ledger.feed([parser.parse(row) for row in found])
    await driver.execute("RELEASE SAVEPOINT training_import_plain")
    return True


async def _stage_combos(
    ledger: Ledger,
    driver: Any,
    combos: list[tuple[str, ...]],
    parser: RowParser,
    table: tabular.Table,
    keys: list[str],
    canonical: str,
) -> None:
    """Judge each distinct (course, date, hours) text once and stage every row that has it.

    Each one goes through the row checks as row -(k+1), under an ID number of the right shape;
    its verdict and its errors are then those of every row that has it. ``canonical`` limits the
    rows to those with a canonical ID number ("" when every row has one).
    """
    probe = "1" * 18
    lines = [
        parser.parse(
            Row(
                number=-(k + 1),
                values={
                    "id_number": probe,
                    **{t: v.strip(tabular.BLANKS) for t, v in zip(_TEXTS, combo, strict=True)},
                },
            )
        )
        for k, combo in enumerate(combos)
    ]
    await ledger.resolve_courses(lines)
    verdicts = ledger.judge(lines, today())
    by_combo: dict[int, list[RowFault]] = {}
    kept: list[RowFault] = []
    for error in ledger.errors:
        (by_combo.setdefault(-error[0] - 1, []) if error[0] < 0 else kept).append(error)
    ledger.errors[:] = kept
    pos = table.positions
    name = f"coalesce(btrim(r.c{pos['name']}, {_BLANKS_SQL}), '')" if "name" in pos else "''"
    where = f" WHERE {canonical}" if canonical else ""
    columns = "row, id_number, name, course_id, year, category, attended_on, tenths, ok"
    select = f"r.n + $1, upper(r.c{pos['id_number']}), {name}"
    if len(combos) == 1 and not by_combo:
        # The usual sheet (one course, one day, one number of hours): no join.
        _row, _id, _name, course_id, year, category, attended_on, tenths, ok = verdicts[0]
        await driver.execute(
            f"INSERT INTO {sql.STAGE} ({columns}) SELECT {select}, $2::bigint, $3::integer, $4, $5::date, "
            f"$6::integer, $7::boolean FROM {_RAW} r{where}",
            table.header_row,
            course_id,
            year,
            category,
            attended_on,
            tenths,
            ok,
        )
        return
    await driver.execute(
        f"CREATE TEMPORARY TABLE {_COMBOS} (k integer, t0 text, t1 text, t2 text, t3 text, course_id bigint, "
        "year integer, category varchar(16), attended_on date, tenths integer, ok boolean) ON COMMIT DROP"
    )
    await driver.copy_records_to_table(
        _COMBOS,
        records=[(k, *combo, *v[3:]) for k, (combo, v) in enumerate(zip(combos, verdicts, strict=True))],
    )
    on = " AND ".join(f"k.t{i} = {key}" for i, key in enumerate(keys))
    await driver.execute(
        f"INSERT INTO {sql.STAGE} ({columns}) SELECT {select}, k.course_id, k.year, k.category, k.attended_on, "
        f"k.tenths, k.ok FROM {_RAW} r JOIN {_COMBOS} k ON {on}{where}",
        table.header_row,
    )
    if by_combo:
        bad = await driver.fetch(
            f"SELECT r.n + $1, k.k FROM {_RAW} r JOIN {_COMBOS} k ON {on} "
            f"WHERE NOT k.ok{' AND ' + canonical if canonical else ''}",
            table.header_row,
        )
        for row, k in bad:
            ledger.errors.extend((row, order, label, message) for _row, order, label, message in by_combo[k])


async def _async_chunks(chunks: Iterator[bytes | memoryview]) -> Any:
    for chunk in chunks:
        yield chunk


__all__ = ["PLAIN_COMBOS", "PLAIN_CSV", "applies", "stage_plain"]
