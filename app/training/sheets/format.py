"""The attendance sheet's format: its columns, limits and template, and the ways a file is refused."""

from __future__ import annotations

from app.lib.clock import to_beijing
from app.lib.errors import Conflict, DomainError, FieldError
from app.lib.imports import ImportFileError, ImportRowError
from app.training.models import TrainingImportBatch

COLUMNS: dict[str, list[str]] = {
    "name": ["姓名"],
    "id_number": ["身份证号码", "身份证号", "公民身份号码", "身份证"],
    "course_id": ["课程编号", "课程ID", "课程号"],
    "course": ["课程名称", "培训课程", "课程", "培训名称", "培训项目"],
    "attended_on": ["培训日期", "日期", "完成日期", "结业日期", "签到日期", "参训日期"],
    "hours": ["学时", "培训学时", "学时数", "获得学时"],
}
"""canonical key → accepted headers; the first one is the template's and the one named in messages."""
REQUIRED = ["id_number"]
TEMPLATE_HEADERS = [names[0] for names in COLUMNS.values()]
ORDER = {k: i for i, k in enumerate(COLUMNS)}

MAX_IMPORT_ROWS = 200_000
CHUNK_ROWS = 10_000
SAMPLE_SIZE = 20
STORED_ERRORS = 200


def template_csv() -> bytes:
    """The import template: headers only, UTF-8 with a BOM so that Excel shows the Chinese."""
    return ("\ufeff" + ",".join(TEMPLATE_HEADERS) + "\r\n").encode("utf-8")


class AlreadyImported(Conflict):
    title = "文件已导入"

    def __init__(self, batch: TrainingImportBatch) -> None:
        when = to_beijing(batch.created_at).strftime("%Y-%m-%d %H:%M")
        super().__init__(
            f"该文件已导入（批次 {batch.id}，{when}，{batch.rows_imported} 条记录），不会重复计算学时",
            field="file",
        )
        self.batch_id = batch.id


class AttendanceRejected(DomainError):
    """Some of the officers typed in cannot be recorded: nothing was written."""

    status_code = 422
    title = "参训登记有错误"

    def __init__(self, errors: list[ImportRowError]) -> None:
        super().__init__(
            f"有 {len({e.row for e in errors})} 行不能登记，未登记任何学时，请修改后重新提交",
            errors=[FieldError("id_numbers", f"第{e.row}行：{e.message}") for e in errors],
        )
        self.rows = errors


__all__ = [
    "CHUNK_ROWS",
    "COLUMNS",
    "MAX_IMPORT_ROWS",
    "ORDER",
    "REQUIRED",
    "SAMPLE_SIZE",
    "STORED_ERRORS",
    "TEMPLATE_HEADERS",
    "AlreadyImported",
    "AttendanceRejected",
    "ImportFileError",
    "template_csv",
]
