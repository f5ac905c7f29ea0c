"""Formula injection: text cells of every export are neutralised; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest

from app.lib.exports import spreadsheet_safe, spreadsheet_safe_row
from app.training.services import compliance_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil","点我")', '\'=HYPERLINK("http://evil","点我")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("＝1+1", "'＝1+1"),
        ("李明", "李明"),
        ("甲市-市场监管局", "甲市-市场监管局"),  # only the first character matters
        ("", ""),
        (42, 42),
        (-3.5, -3.5),
        (None, None),
    ],
)
def test_spreadsheet_safe(value: object, expected: object) -> None:
    assert spreadsheet_safe(value) == expected


def test_row_helper() -> None:
    assert spreadsheet_safe_row(["=1", 2, "x"]) == ["'=1", 2, "x"]


def test_compliance_csv_neutralises_user_text() -> None:
    # Only the attributes the writer reads: the test does not depend on the rest of the structs.
    row = SimpleNamespace(
        name="=cmd|' /C calc'!A0",
        agency_name="@恶意单位",
        required=40.0,
        total=10.0,
        general_law=10.0,
        special_law=0.0,
        new_law=0.0,
        needed=30.0,
        status_label="未达标",
    )
    text = "".join(compliance_csv(SimpleNamespace(rows=[row])))  # type: ignore[arg-type]
    cells = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1]
    assert cells[0] == "'=cmd|' /C calc'!A0" and cells[1] == "'@恶意单位"
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
