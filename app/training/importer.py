"""The attendance import's old module path, kept for ``bench/`` until the lead moves its imports.

Inside the training domain import from where these live: ``app.training.services.imports`` and
``.attendance`` (the use cases), ``app.training.sheets`` (the format, row parser and ledger writer);
the console command is ``app.cli.training``.
"""

from app.training.services.attendance import attendance_add
from app.training.services.imports import ImportResult, training_import_commit, training_import_preview
from app.training.sheets.format import (
    COLUMNS,
    MAX_IMPORT_ROWS,
    AlreadyImported,
    AttendanceRejected,
    ImportFileError,
)

__all__ = [
    "COLUMNS",
    "MAX_IMPORT_ROWS",
    "AlreadyImported",
    "AttendanceRejected",
    "ImportFileError",
    "ImportResult",
    "attendance_add",
    "training_import_commit",
    "training_import_preview",
]
