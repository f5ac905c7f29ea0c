"""What the exam controllers are given besides the request: the write-intent session of the
candidate's routes, and the application's ``ExamCache``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.cache import ExamCache
from app.exams.services.grading import has_overdue
from app.lib.clock import utcnow
from app.lib.web import session_provider


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
    return officer_id is None or await has_overdue(db, officer_id=officer_id, now=utcnow())


WRITE_DB: dict[str, Any] = {**CACHE, "db": Provide(session_provider(writes=_closes_overdue))}
"""The candidate's routes: any access may close an attempt past its time-up (lazily), and on SQLite
a read transaction must not turn into a writer halfway. So their posts write, and so do their GETs
when the officer has an attempt past its time-up; other GETs on SQLite read without the write lock
(the exam page of thousands of candidates at the start of an exam would otherwise queue on it, one
page at a time, behind the writer)."""
