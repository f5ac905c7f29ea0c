"""The spreadsheet reader: encodings, delimiters, XLSX cells, headers and every refusal, table-driven."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest

from app.lib.tabular import Row, TableError, normalize_header, plain_csv, read_table

ALIASES = {
    "name": ["姓名"],
    "id_number": ["身份证号码", "身份证号"],
    "agency": ["单位", "所在单位"],
    "phone": ["联系电话"],
    "started_on": ["任职起始日期"],
}
REQUIRED = ["name", "id_number", "agency"]
ID = "11010519491231002X"
LONG_ID = 320102198506121237


def read(data: bytes, filename: str = "people.csv", **kw: Any) -> tuple[Any, list[Row]]:
    kw.setdefault("max_rows", 1000)
    with read_table(data, filename, required=REQUIRED, aliases=ALIASES, **kw) as table:
        return table, list(table)


def xlsx(rows: list[list[Any]], *, number_formats: dict[str, str] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    for ref, fmt in (number_formats or {}).items():
        ws[ref].number_format = fmt
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


CSV_TEXT = f"姓名,身份证号码,单位\r\n张三,{ID},甲市市场监督管理局\r\n李四,{ID},乙市生态环境局\r\n"


@pytest.mark.parametrize(
    "data,encoding",
    [
        (CSV_TEXT.encode("utf-8"), "utf-8-sig"),
        (b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8"), "utf-8-sig"),
        (CSV_TEXT.encode("gbk"), "gb18030"),
        (CSV_TEXT.encode("gb18030"), "gb18030"),
        (CSV_TEXT.replace(",", "\t").encode("utf-16"), "utf-16"),  # Excel's "Unicode text"
        (CSV_TEXT.replace(",", "\t").encode("utf-8"), "utf-8-sig"),  # tab-delimited
        (CSV_TEXT.replace(",", "\t").encode("gbk"), "gb18030"),
        (CSV_TEXT.replace("\r\n", "\n").encode("utf-8"), "utf-8-sig"),  # Unix line ends
    ],
    ids=["utf8", "utf8-bom", "gbk", "gb18030", "utf16-tab", "utf8-tab", "gbk-tab", "lf"],
)
def test_csv_encodings_and_delimiters(data: bytes, encoding: str) -> None:
    table, rows = read(data)
    assert table.kind == "csv" and table.encoding == encoding
    assert [(r.number, r.get("name"), r.get("id_number"), r.get("agency")) for r in rows] == [
        (2, "张三", ID, "甲市市场监督管理局"),
        (3, "李四", ID, "乙市生态环境局"),
    ]
    assert table.header_row == 1
    assert table.label("id_number") == "身份证号码"


def test_headers_by_alias_in_any_order_with_title_row_and_blank_lines() -> None:
    text = (
        "江南省执法人员名册,,,\n"
        "\n"
        " 所在单位 ,备注,身份证号*,姓名（必填）\n"
        "甲市市场监督管理局,无,'x,张三\n"
        ",,,\n"
        '"乙市, 生态环境局",,="00123",李四\n'
    )
    table, rows = read(text.encode("utf-8"))
    assert table.header_row == 3
    assert table.columns == {"agency": "所在单位", "id_number": "身份证号*", "name": "姓名（必填）"}
    assert table.ignored == ["备注"]
    # Row numbers are the spreadsheet's: the blank line 5 is skipped but still counted.
    assert [(r.number, r.values) for r in rows] == [
        (4, {"agency": "甲市市场监督管理局", "id_number": "'x", "name": "张三"}),
        (6, {"agency": "乙市, 生态环境局", "id_number": "00123", "name": "李四"}),
    ]


def test_short_rows_are_padded_and_cells_stripped() -> None:
    _, rows = read("姓名,身份证号码,单位,联系电话\n\u3000张三 ,1\n".encode())
    assert rows[0].values == {"name": "张三", "id_number": "1", "agency": "", "phone": ""}


def test_xlsx_cells_become_text() -> None:
    data = xlsx(
        [
            ["执法人员名册"],
            ["姓名", "身份证号码", "单位", "联系电话", "任职起始日期"],
            ["张三", LONG_ID, "甲市市场监督管理局", 13800138000.0, dt.datetime(2020, 3, 1)],
            ["李四", ID, "乙市生态环境局", 2.5, dt.date(2021, 12, 31)],
            [None, None, None, None, None],
            ["王五", 3.20102198506121e17, "丙单位", 1, dt.datetime(2022, 1, 2, 8, 30)],
        ],
        number_formats={"E3": "yyyy-mm-dd"},
    )
    table, rows = read(data, "名册.xlsx")
    assert table.kind == "xlsx" and table.encoding is None and table.header_row == 2
    assert [(r.number, r.values) for r in rows] == [
        (
            3,
            {
                "name": "张三",
                # openpyxl, like Excel, stores the number as a double: the last digits are gone...
                "id_number": "320102198506121216",
                "agency": "甲市市场监督管理局",
                "phone": "13800138000",  # 1.38e10 as a float, shown without ".0"
                "started_on": "2020-03-01",
            },
        ),
        (
            4,
            {
                "name": "李四",
                "id_number": ID,
                "agency": "乙市生态环境局",
                "phone": "2.5",
                "started_on": "2021-12-31",
            },
        ),
        (
            6,
            {
                "name": "王五",
                "id_number": "320102198506121024",  # 3.20102198506121E+17 as Excel writes it
                "agency": "丙单位",
                "phone": "1",
                "started_on": "2022-01-02 08:30:00",
            },
        ),
    ]
    # ...and flagged, so that the importer asks for the column as text instead of taking a wrong number.
    assert [r.lossy for r in rows] == [frozenset({"id_number"}), frozenset(), frozenset({"id_number"})]


def _patch_sheet(data: bytes, old: bytes, new: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert old in body
                body = body.replace(old, new)
            dst.writestr(info, body)
    return out.getvalue()


def test_xlsx_exact_integer_cell_keeps_every_digit() -> None:
    # A producer that writes the integer itself (<v>320102198506121237</v>) loses nothing.
    data = xlsx([["姓名", "身份证号码", "单位"], ["张三", LONG_ID, "甲"]])
    data = _patch_sheet(data, repr(float(LONG_ID)).encode(), str(LONG_ID).encode())
    _, rows = read(data, "a.xlsx")
    assert rows[0].get("id_number") == str(LONG_ID) and rows[0].lossy == frozenset()


def test_xlsx_integer_cell_padded_with_zeros_is_flagged() -> None:
    # Excel keeps 15 significant digits: "320102198506121000" is a rounded number, not an ID.
    data = xlsx([["姓名", "身份证号码", "单位"], ["张三", 1, "甲"]])
    data = _patch_sheet(data, b"<v>1</v>", b"<v>320102198506121000</v>")
    _, rows = read(data, "a.xlsx")
    assert rows[0].get("id_number") == "320102198506121000" and rows[0].lossy == frozenset({"id_number"})


def test_xlsx_sheet_with_a_wrong_dimension_is_read_in_full() -> None:
    data = xlsx([["姓名", "身份证号码", "单位"], *[["张三", ID, "甲"] for _ in range(5)]])
    data = _patch_sheet(data, b'<dimension ref="A1:C6"', b'<dimension ref="A1:C2"')
    _, rows = read(data, "a.xlsx")
    assert len(rows) == 5


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries.items():
            zf.writestr(name, body)
    return out.getvalue()


def _valid_xlsx() -> bytes:
    return xlsx([["姓名", "身份证号码", "单位"], ["张三", ID, "甲"]])


def _truncated_xlsx() -> bytes:
    data = _valid_xlsx()
    return data[: len(data) // 2]


def _corrupt_sheet_xlsx() -> bytes:
    src = zipfile.ZipFile(io.BytesIO(_valid_xlsx()))
    entries = {i.filename: src.read(i.filename) for i in src.infolist()}
    entries["xl/worksheets/sheet1.xml"] = b"<worksheet><sheetData><row r='1'><c r='A1' t='s'><v>not xml"
    return _zip(entries)


def _zip_bomb() -> bytes:
    # 20 MB of zeros inflate from about 20 KB: a ratio near 1000.
    return _zip({"xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"\0" * (20 * 1024 * 1024)})


REFUSALS: list[tuple[str, Callable[[], bytes], str, dict[str, Any], str]] = [
    ("empty", lambda: b"", "a.csv", {}, "文件是空的"),
    ("blank", lambda: b"\xef\xbb\xbf \r\n\r\n", "a.csv", {}, "文件是空的"),
    ("garbage", lambda: bytes(range(256)) * 40, "a.csv", {}, "无法识别"),
    ("binary-with-nul", lambda: b"\x00\x01\x02abc" * 100, "a.csv", {}, "无法识别的文件类型"),
    ("pdf", lambda: b"%PDF-1.7\n...", "a.csv", {}, "不支持 PDF"),
    ("xls", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "a.xls", {}, "旧版 Excel"),
    ("exe-extension", lambda: CSV_TEXT.encode(), "a.exe", {}, "无法识别的文件类型"),
    ("xlsx-name-text-body", lambda: CSV_TEXT.encode(), "a.xlsx", {}, "不是有效的 Excel"),
    ("docx", lambda: _zip({"word/document.xml": b"<w/>"}), "a.xlsx", {}, "不是 Excel 表格"),
    ("truncated-xlsx", _truncated_xlsx, "a.xlsx", {}, "已损坏"),
    ("corrupt-sheet", _corrupt_sheet_xlsx, "a.xlsx", {}, "损坏"),
    ("zip-bomb-ratio", _zip_bomb, "a.xlsx", {}, "压缩炸弹"),
    ("zip-too-big", _valid_xlsx, "a.xlsx", {"max_uncompressed_bytes": 1000}, "解压后超过"),
    ("too-large", lambda: CSV_TEXT.encode(), "a.csv", {"max_bytes": 10}, "文件过大"),
    (
        "missing-columns",
        lambda: "姓名,电话\n张三,1\n".encode(),
        "a.csv",
        {},
        "缺少必填列：“身份证号码”、“单位”",
    ),
    ("no-header", lambda: b"a,b,c\n1,2,3\n", "a.csv", {}, "未找到表头"),
    ("duplicate-column", lambda: "姓名,身份证号,身份证号码,单位\n".encode(), "a.csv", {}, "是同一列"),
    (
        "unclosed-quote",
        lambda: f'姓名,身份证号码,单位\n"张三,{ID},甲\n'.encode(),
        "a.csv",
        {},
        "CSV 格式错误",
    ),
    ("stray-quote", lambda: f'姓名,身份证号码,单位\n张三,{ID},"甲"乙\n'.encode(), "a.csv", {}, "第2行"),
    (
        "too-many-rows",
        lambda: ("姓名,身份证号码,单位\n" + f"张三,{ID},甲\n" * 4).encode(),
        "a.csv",
        {"max_rows": 3},
        "最多导入 3 行",
    ),
    (
        "too-many-rows-xlsx",
        lambda: xlsx([["姓名", "身份证号码", "单位"], *[["张三", ID, "甲"]] * 4]),
        "a.xlsx",
        {"max_rows": 3},
        "最多导入 3 行",
    ),
    ("empty-sheet", lambda: xlsx([]), "a.xlsx", {}, "没有内容"),
    ("bad-utf16", lambda: b"\xff\xfe" + "姓名".encode("utf-16-le") + b"\x00\xd8", "a.csv", {}, "UTF-16"),
]


@pytest.mark.parametrize("make,filename,kw,message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(make: Callable[[], bytes], filename: str, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(TableError) as exc:
        read(make(), filename, **kw)
    assert message in exc.value.message


def test_max_rows_counts_data_rows_not_blank_lines() -> None:
    text = "姓名,身份证号码,单位\n" + f"张三,{ID},甲\n\n\n" * 3
    _, rows = read(text.encode(), max_rows=3)
    assert [r.number for r in rows] == [2, 5, 8]


def test_xlsx_extension_not_needed_when_content_is_xlsx() -> None:
    table, rows = read(_valid_xlsx(), "导出的文件")
    assert table.kind == "xlsx" and len(rows) == 1


@pytest.mark.parametrize(
    "raw,normal",
    [
        ("身份证号码", "身份证号码"),
        (" 身份证 号码 ", "身份证号码"),
        ("*姓名", "姓名"),
        ("姓名（必填）", "姓名"),
        ("ＩＤ", "id"),
    ],
)
def test_normalize_header(raw: str, normal: str) -> None:
    assert normalize_header(raw) == normal


# ---------------------------------------------------------------- the lean XLSX reader


def _hand_made_xlsx(
    sheet: bytes, *, shared: bytes | None = None, workbook_pr: bytes = b"", styles: bytes | None = None
) -> bytes:
    """A minimal workbook as other producers (WPS, exporters) write them: prefixes, inline strings."""
    ns = b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    entries = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "xl/workbook.xml": b'<?xml version="1.0"?><x:workbook '
        + ns
        + b" "
        + rel
        + b">"
        + workbook_pr
        + b'<x:sheets><x:sheet name="S" sheetId="1" r:id="rId7"/></x:sheets></x:workbook>',
        "xl/_rels/workbook.xml.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId7" Type="worksheet" Target="worksheets/data.xml"/></Relationships>',
        "xl/worksheets/data.xml": b'<?xml version="1.0"?><x:worksheet '
        + ns
        + b"><x:sheetData>"
        + sheet
        + b"</x:sheetData></x:worksheet>",
    }
    if shared is not None:
        entries["xl/sharedStrings.xml"] = (
            b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            + shared
            + b"</sst>"
        )
    if styles is not None:
        entries["xl/styles.xml"] = (
            b'<?xml version="1.0"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            + styles
            + b"</styleSheet>"
        )
    return _zip(entries)


def test_xlsx_lean_reader_prefixes_inline_and_rich_strings_cells_without_references() -> None:
    shared = (
        b"<si><t>\xe5\xa7\x93\xe5\x90\x8d</t></si>"  # 姓名
        b'<si><r><t>\xe5\xbc\xa0</t></r><r><t xml:space="preserve">\xe4\xb8\x89 </t></r>'
        b"<rPh><t>zhang</t></rPh></si>"  # 张三 (rich text), phonetic run ignored
    )
    sheet = (
        b'<x:row r="3"><x:c r="A3" t="s"><x:v>0</x:v></x:c><x:c t="inlineStr"><x:is><x:t>'
        + "身份证号码".encode()
        + b"</x:t></x:is></x:c><x:c><x:v>2.5</x:v></x:c></x:row>"
        b'<x:row r="5"><x:c r="A5" t="s"><x:v>1</x:v></x:c><x:c r="B5" t="str"><x:v>320102198506121237</x:v></x:c>'
        b'<x:c r="D5" t="b"><x:v>1</x:v></x:c><x:c r="E5" t="e"><x:v>#N/A</x:v></x:c>'
        b'<x:c r="F5" t="d"><x:v>2025-03-10T00:00:00</x:v></x:c></x:row>'
        b'<x:row r="6"><x:c r="B6"><x:v>320102198506121237</x:v></x:c><x:c r="C6"><x:v>3.20102198506121E+17</x:v></x:c></x:row>'
    )
    data = _hand_made_xlsx(sheet, shared=shared)
    table = read_table(
        data,
        "s.xlsx",
        required=["id_number"],
        aliases={"name": ["姓名"], "id_number": ["身份证号码"], "hours": ["学时"]},
        max_rows=10,
    )
    with table:
        rows = list(table.rows)
    assert table.header_row == 3 and table.ignored == ["2.5"]
    assert [(r.number, r.values, r.lossy) for r in rows] == [
        (5, {"name": "张三", "id_number": "320102198506121237"}, frozenset()),
        (6, {"name": "", "id_number": "320102198506121237"}, frozenset()),
    ]


def test_xlsx_lean_reader_dates_by_style_and_the_1904_epoch() -> None:
    header = (
        b'<x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>' + "身份证号码".encode() + b"</x:t></x:is></x:c>"
    )
    header += b'<x:c r="B1" t="inlineStr"><x:is><x:t>' + "日期".encode() + b"</x:t></x:is></x:c></x:row>"
    row = b'<x:row r="2"><x:c r="A2" t="inlineStr"><x:is><x:t>320102198506121237</x:t></x:is></x:c>'
    row += b'<x:c r="B2" s="1"><x:v>366</x:v></x:c></x:row>'
    styles = b'<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14"/></cellXfs>'
    aliases = {"id_number": ["身份证号码"], "day": ["日期"]}
    for pr, day in ((b"", "1900-12-31"), (b'<x:workbookPr date1904="1"/>', "1905-01-01")):
        data = _hand_made_xlsx(header + row, workbook_pr=pr, styles=styles)
        table = read_table(data, "s.xlsx", required=["id_number"], aliases=aliases, max_rows=5)
        with table:
            assert [r.values for r in table.rows] == [{"id_number": "320102198506121237", "day": day}]


def test_xlsx_lean_reader_matches_openpyxl_cell_for_cell() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["签到表"])
    ws.append(["姓名", "身份证号码", "日期", "学时", "是否", "时间"])
    ws.append(["张三", "320102198506121237", dt.datetime(2025, 3, 10), 2.5, True, dt.time(8, 30)])
    ws.append(["李四", 320102198506121237, dt.date(2025, 3, 10), 2, False, dt.datetime(2025, 3, 10, 8, 30)])
    ws["H10"] = "远处"
    ws["A12"] = 1e20
    ws["B12"] = 0.1
    ws["D12"] = 45000
    ws["D12"].number_format = 'yyyy"年"m"月"d"日"'
    out = io.BytesIO()
    wb.save(out)
    data = out.getvalue()

    from app.lib.tabular.xlsx_reader import open_xlsx, xlsx_cell

    lean, close = open_xlsx(data, max_uncompressed_bytes=10**8, max_ratio=100)
    try:
        got = [r for r in lean if any(r[1])]
    finally:
        close()
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    expected = []
    for number, values in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1):
        cells = [xlsx_cell(v) for v in values]
        while cells and cells[-1][0] == "":
            cells.pop()
        if cells:
            lossy = frozenset(i for i, (_t, r) in enumerate(cells) if r)
            expected.append((number, [t for t, _r in cells], lossy))
    book.close()
    assert got == expected
    assert dict((n, c) for n, c, _l in got)[12][3] == "2023-03-15"  # a serial in a 年月日 format: a date


# ---------------------------------------------------------------- plain CSV (split by the database)

TITLE = "2025年度人员名册,,\r\n"


@pytest.mark.parametrize(
    "data,body",
    [
        (CSV_TEXT.encode("utf-8"), CSV_TEXT.split("\r\n", 1)[1]),
        (b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8"), CSV_TEXT.split("\r\n", 1)[1]),
        (CSV_TEXT.encode("gbk"), CSV_TEXT.split("\r\n", 1)[1]),
        ((TITLE + CSV_TEXT).encode("gb18030"), CSV_TEXT.split("\r\n", 1)[1]),
        (CSV_TEXT.replace("\r\n", "\n").encode("utf-8"), CSV_TEXT.replace("\r\n", "\n").split("\n", 1)[1]),
        (CSV_TEXT.replace("\r\n", "\r").encode("utf-8"), CSV_TEXT.replace("\r\n", "\r").split("\r", 1)[1]),
        ("姓名,身份证号码,单位".encode(), ""),
    ],
    ids=["utf8", "utf8-bom", "gbk", "title-row-gb18030", "lf", "cr", "header-only"],
)
@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_a_plain_csv_hands_over_its_body_as_utf8_in_any_chunk_size(data: bytes, body: str, size: int) -> None:
    table, _rows = read(data)
    plain = plain_csv(table, data)
    assert plain is not None and plain.width == 3 and plain.delimiter == ","
    assert b"".join(bytes(c) for c in plain.chunks(data, size)) == body.encode("utf-8")


@pytest.mark.parametrize(
    "data",
    [
        CSV_TEXT.replace("张三", '"张,三"').encode("utf-8"),  # a quoted cell
        (CSV_TEXT + "\\.\r\n").encode("utf-8"),  # COPY's end-of-data mark
        CSV_TEXT.replace(",", "\t").encode("utf-16"),  # UTF-16
        ("2025年度人员名册\n" + CSV_TEXT).encode("utf-8"),  # line ends change before the body
        xlsx([["姓名", "身份证号码", "单位"], ["张三", ID, "甲市"]]),
    ],
    ids=["quoted", "end-mark", "utf16", "mixed-line-ends", "xlsx"],
)
def test_other_files_are_not_plain(data: bytes) -> None:
    table, _rows = read(data, "people.xlsx" if data.startswith(b"PK") else "people.csv")
    assert plain_csv(table, data) is None
