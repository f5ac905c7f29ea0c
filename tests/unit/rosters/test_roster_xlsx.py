"""The lean XLSX writer: what it writes reads back in openpyxl with types, widths and the frozen header."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl

from app.rosters import xlsx


def build(rows: list[tuple[object, ...]]) -> openpyxl.Workbook:
    out = io.BytesIO()
    w = xlsx.SheetWriter(
        out,
        sheet="名册",
        headers=["姓名", "出生日期", "学时", "备注"],
        widths=[10, 12, 8, 30],
        kinds=[xlsx.TEXT, xlsx.DATE, xlsx.NUMBER, xlsx.TEXT],
    )
    w.write(rows[:1])
    w.write(rows[1:])
    w.close()
    return openpyxl.load_workbook(io.BytesIO(out.getvalue()))


def test_rows_read_back_with_their_types() -> None:
    wb = build(
        [
            ("张三", dt.date(1985, 6, 12), 40.5, '<b>&"引号"</b>'),
            ("李四", None, 0, ""),  # empty cells keep the following cells in their columns
            ("王\x07五", dt.date(2000, 2, 29), 12, "=1+1"),
        ]
    )
    ws = wb.active
    assert ws is not None and ws.title == "名册"
    assert [c.value for c in ws[1]] == ["姓名", "出生日期", "学时", "备注"]
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["D"].width == 30
    assert ws.auto_filter.ref == "A1:D4"
    assert ws[1][0].font.b is True
    assert [c.value for c in ws[2]] == ["张三", dt.datetime(1985, 6, 12), 40.5, '<b>&"引号"</b>']
    assert ws["B2"].number_format == "yyyy-mm-dd" and ws["B2"].is_date
    assert [c.value for c in ws[3]][:3] == ["李四", None, 0]
    # A control character XML cannot carry is dropped; a formula-looking text stays text.
    assert [c.value for c in ws[4]] == ["王五", dt.datetime(2000, 2, 29), 12, "=1+1"]
    assert ws["D4"].data_type == "s"


def test_header_only() -> None:
    ws = build([]).active
    assert ws is not None and ws.max_row == 1


def test_column_letters() -> None:
    assert [xlsx.column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
