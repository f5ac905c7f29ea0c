"""What the exam controllers are given besides the request: the write-intent session of the
candidate's routes, the application's ``ExamCache``, and the bank upload both the API and the page
take."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams import importer
from app.exams.cache import ExamCache
from app.exams.schemas import ImportSummary
from app.exams.services.grading import has_overdue
from app.lib.clock import utcnow
from app.lib.uploads import flag_of, read_uploads
from app.lib.web import principal_of, session_provider


def provide_exam_cache(state: State) -> ExamCache:
    """The application's cache (``create_app`` puts it in ``app.state.exam_cache``)."""
    cache: ExamCache = state.exam_cache
    return cache


Cache = NamedDependency[ExamCache]
"""The application's exam cache: ``cache: Cache``."""

CACHE: dict[str, Any] = {"cache": Provide(provide_exam_cache, sync_to_thread=False)}


async def _closes_overdue(db: AsyncSession, request: Request[Any, Any, Any]) -> bool:
    """Whether a candidate's GET may write: on SQLite when the officer has an attempt past its
    time-up, which the view closes (lazily); on PostgreSQL always (write intent costs nothing there)."""
    if db.bind is None or db.bind.dialect.name != "sqlite":
        return True
    principal = request.scope.get("user")
    officer_id = getattr(principal, "officer_id", None)
    return officer_id is None or await has_overdue(
        db, officer_id=officer_id, now=utcnow(), reader=request.app.state.sqlite_reader
    )


WRITE_DB: dict[str, Any] = {
    **CACHE,
    "db": Provide(session_provider(writes=_closes_overdue, in_place=True)),
}
"""The candidate's routes: any access may close an attempt past its time-up (lazily), and on SQLite
a read transaction must not turn into a writer halfway. So their posts write, and so do their GETs
when the officer has an attempt past its time-up; other GETs on SQLite read without the write lock
(the exam page of thousands of candidates at the start of an exam would otherwise queue on it, one
page at a time, behind the writer), in place on the loop's thread: a candidate's page reads a few
rows by their keys."""


BANK_OPTIONS = ("code", "part", "field", "category")
"""What a GIFT or XLSX file lacks and the upload may fill in (query parameter or form field)."""


async def import_upload(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    data: dict[str, Any],
    *,
    queried: dict[str, str | None] | None = None,
    supported_only: bool | None = None,
) -> ImportSummary | None:
    """Import the uploaded bank files, all or nothing (the edge rolls a 422 back, every file of it);
    None when no file was sent. ``queried``: options given as query parameters, before the form's."""
    files = [(u.filename, u.data) for u in await read_uploads(data.get("file"))]
    if not files:
        return None
    given = queried or {}
    options = {k: (given.get(k) or str(data.get(k) or "")).strip() or None for k in BANK_OPTIONS}
    return await importer.import_files(
        db,
        principal=principal_of(request),
        files=files,
        supported_only=await flag_of(request, "import_supported_only", supported_only, default=False),
        all_or_nothing=True,
        **options,
    )
