"""Spreadsheets built to hurt the reader: XML entity bombs and external entities inside an XLSX, CSV
lines of many megabytes. Each is refused quickly with a Chinese message, and nothing leaks."""

from __future__ import annotations

import io
import resource
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from app.lib.tabular import CSV_LINE_LIMIT, TableError, read_table

ALIASES = {"id": ["身份证号码"]}


def _read(data: bytes, filename: str) -> list[str]:
    with read_table(data, filename, required=["id"], aliases=ALIASES, max_rows=100) as table:
        return [row.get("id") for row in table]


def _xlsx_with_doctype(doctype: str, cell: str) -> bytes:
    """A real workbook whose sheet and shared strings gain ``doctype`` and ``cell`` as the data cell."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["身份证号码"])
    ws.append(["PLACEHOLDER"])
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            data = src.read(name)
            if name in ("xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"):
                text = data.decode()
                if text.startswith("<?xml"):
                    text = text.split("?>", 1)[1]
                data = (doctype + text).replace("PLACEHOLDER", cell).encode()
            z.writestr(name, data)
    return out.getvalue()


def test_a_plain_workbook_reads_the_placeholder() -> None:
    """The control: the same construction without a DOCTYPE is read normally."""
    assert _read(_xlsx_with_doctype("", "320102198506121237"), "a.xlsx") == ["320102198506121237"]


def test_billion_laughs_in_xlsx_is_refused_quickly() -> None:
    entities = '<!ENTITY lol0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    data = _xlsx_with_doctype(f'<?xml version="1.0"?><!DOCTYPE r [{entities}]>', "&lol9;")
    started = time.monotonic()
    with pytest.raises(TableError, match="Excel 文件"):
        _read(data, "bomb.xlsx")
    assert time.monotonic() - started < 5


def test_quadratic_blowup_in_xlsx_is_refused_without_the_memory() -> None:
    big = "A" * 100_000
    data = _xlsx_with_doctype(f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "{big}">]>', "&a;" * 20_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TableError):
        _read(data, "quadratic.xlsx")
    # Expanded it would be 2 GB; the reader stops long before.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024


def test_external_entity_in_xlsx_never_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    data = _xlsx_with_doctype(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>', "&x;"
    )
    try:
        values = _read(data, "xxe.xlsx")
    except TableError as exc:
        assert "TOP-SECRET" not in exc.message
    else:
        assert all("TOP-SECRET" not in v for v in values)


def test_a_csv_line_of_megabytes_is_refused_before_it_is_split() -> None:
    data = ("身份证号码\n" + "ab," * (CSV_LINE_LIMIT // 3 + 10) + "\n").encode()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TableError, match="第2行超过 1 MB"):
        _read(data, "long.csv")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_a_long_but_sane_csv_line_is_still_read() -> None:
    data = ("身份证号码,备注\n320102198506121237," + "注" * 20_000 + "\n").encode()
    assert _read(data, "ok.csv") == ["320102198506121237"]


def test_a_csv_field_over_the_cell_limit_is_refused() -> None:
    data = ('身份证号码\n"' + "1" * 70_000 + '"\n').encode()
    with pytest.raises(TableError, match="超过 64 KB"):
        _read(data, "field.csv")
