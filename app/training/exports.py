"""Exports of the training domain: the yearly compliance of an agency tree as CSV for Excel."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from app.lib.exports import spreadsheet_safe
from app.training.selectors.compliance import Compliance


def compliance_csv(compliance: Compliance) -> Iterator[str]:
    """The rows as CSV lines (UTF-8 with BOM for Excel), Chinese headers."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(
        [
            "姓名",
            "单位",
            "应修学时",
            "已修学时",
            "公共法律知识",
            "专门法律知识",
            "新法律法规",
            "尚差学时",
            "状态",
        ]
    )
    yield "\ufeff" + buf.getvalue()
    for r in compliance.rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [
                spreadsheet_safe(r.name),
                spreadsheet_safe(r.agency_name),
                *(f"{v:g}" for v in (r.required, r.total, r.general_law, r.special_law, r.new_law, r.needed)),
                r.status_label,
            ]
        )
        yield buf.getvalue()


__all__ = ["compliance_csv"]
