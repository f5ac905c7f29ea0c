"""What an upload is before it is read: CSV or XLSX (by its magic bytes and extension, refusing
other known file types by name), and for text its encoding and cell separator."""

from __future__ import annotations

import codecs
import io
import re
from typing import Literal

from app.lib.tabular.table import BLANKS, UNSUPPORTED, TableError

_TEXT_SAMPLE = 64 * 1024

_OTHER_MAGIC: list[tuple[bytes, str]] = [
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "不支持旧版 Excel（.xls）文件，请在 Excel 中“另存为” .xlsx 或 CSV 格式后再上传",
    ),
    (b"%PDF", "不支持 PDF 文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\x89PNG", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\xff\xd8\xff", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"GIF8", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\x1f\x8b", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"Rar!", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"7z\xbc\xaf\x27\x1c", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"{\\rtf", "不支持 RTF 文档，请上传 CSV 或 Excel（.xlsx）文件"),
]
_TEXT_EXTENSIONS = {".csv", ".txt", ".tsv", ""}
_XLSX_EXTENSIONS = {".xlsx", ".xlsm"}


def blank(data: bytes) -> bool:
    """Only blanks (and a BOM)? Judged on the head first: ``strip`` of a whole upload would copy it."""
    blanks = b" \t\r\n\xef\xbb\xbf"
    return not data[:4096].strip(blanks) and not data.strip(blanks)


def file_kind(data: bytes, ext: str) -> Literal["csv", "xlsx"]:
    """XLSX for a zip (under an XLSX or text extension), CSV for other text; else a ``TableError``."""
    if data.startswith(b"PK\x03\x04"):
        if ext not in _XLSX_EXTENSIONS and ext not in _TEXT_EXTENSIONS:
            raise TableError(UNSUPPORTED)
        return "xlsx"
    for magic, message in _OTHER_MAGIC:
        if data.startswith(magic):
            raise TableError(message)
    if data.startswith(b"PK"):
        raise TableError("文件内容是压缩包而不是表格，请上传 CSV 或 Excel（.xlsx）文件")
    if ext in _XLSX_EXTENSIONS:
        raise TableError("文件扩展名为 .xlsx，但内容不是有效的 Excel 文件（文件可能已损坏或被改了扩展名）")
    if ext not in _TEXT_EXTENSIONS:
        raise TableError(UNSUPPORTED)
    return "csv"


def detect_encoding(data: bytes) -> str:
    """UTF-16 by its BOM; UTF-8 (BOM or not) when the whole file decodes strictly; else GB18030."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated.
        if not _decodes(data, "utf-16"):
            raise TableError("文件的文字编码（UTF-16）有误，无法读取")
        encoding = "utf-16"
    elif _decodes(data, "utf-8"):
        encoding = "utf-8-sig"
    elif _decodes(data, "gb18030"):
        # GB18030 is a superset of GBK and GB2312, the encodings of Excel's Chinese "CSV" export.
        encoding = "gb18030"
    else:
        raise TableError("无法识别文件的文字编码：请将文件另存为“CSV UTF-8（逗号分隔）”或 Excel（.xlsx）格式")
    sample = data[:_TEXT_SAMPLE].decode(encoding, errors="ignore")
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if "\x00" in sample or controls > max(3, len(sample) // 100):
        raise TableError(UNSUPPORTED)
    return encoding


def _decodes(data: bytes, encoding: str) -> bool:
    # Chunked so that the check does not hold a second, decoded copy of the file.
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    step = 1 << 16
    try:
        for start in range(0, len(data), step):
            decoder.decode(data[start : start + step])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def text(data: bytes, encoding: str) -> io.TextIOWrapper:
    """``data`` as text, decoded while it is read (line ends kept for the csv module)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")


def sniff_delimiter(lines: io.TextIOBase) -> str:
    """Comma or tab: whichever occurs more often (outside quotes) in the first non-blank lines."""
    commas = tabs = 0
    seen = 0
    for line in lines:
        if not line.strip(BLANKS):
            continue
        unquoted = re.sub(r'"[^"]*"', "", line)
        commas += unquoted.count(",")
        tabs += unquoted.count("\t")
        seen += 1
        if seen >= 5:
            break
    return "\t" if tabs > commas else ","
