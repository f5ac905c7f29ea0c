"""What the exam controllers are given besides the request: the write-intent session of the
candidate's routes, and the application's ``ExamCache``."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from app.exams.cache import ExamCache
from app.lib.web import provide_write_db


def provide_exam_cache(state: State) -> ExamCache:
    """The application's cache (``create_app`` puts it in ``app.state.exam_cache``)."""
    cache: ExamCache = state.exam_cache
    return cache


Cache = NamedDependency[ExamCache]
"""The application's exam cache: ``cache: Cache``."""

CACHE: dict[str, Any] = {"cache": Provide(provide_exam_cache, sync_to_thread=False)}

WRITE_DB: dict[str, Any] = {**CACHE, "db": Provide(provide_write_db)}
"""The candidate's routes read and write through write-intent sessions: any access may close an
attempt past its time-up (lazily), and on SQLite a read transaction must not turn into a writer
halfway."""
