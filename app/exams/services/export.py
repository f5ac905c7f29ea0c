"""The session results as a spreadsheet file (CSV), escaped by ``app.lib.exports``."""

from __future__ import annotations

from app.exams.schemas import PartOut, ResultsOut
from app.lib.exports import spreadsheet_safe


def results_csv(results: ResultsOut, parts: list[PartOut]) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "人员编号",
            "姓名",
            "单位",
            "执法领域",
            *[f"{p.part_label}成绩" for p in parts],
            "是否通过",
            "作答次数",
        ]
    )
    for o in results.officers:
        # Names are typed by people: a leading "=" must not run as a formula in Excel / WPS.
        w.writerow(
            [
                o.officer_id,
                spreadsheet_safe(o.officer_name),
                spreadsheet_safe(o.agency_name),
                spreadsheet_safe(o.field),
                *["" if o.parts.get(p.part) is None else f"{o.parts[p.part]:g}" for p in parts],
                "通过" if o.passed_all else "未通过",
                o.attempts,
            ]
        )
    # UTF-8 with a BOM: Excel on Windows opens it as UTF-8 only then.
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
