"""The exam domain's in-process caches, owned by the application (``app.state.exam_cache``).

Two things are read on every exam start and every grading and never change once written: the
question versions (a version's content is immutable and its row never deleted, so an id always
means the same content) and the pool a part draws from (keyed by the banks' last import time:
every import that changes a question stamps it). One ``ExamCache`` is created with the
application and handed to the services that use it; a service called without one (a console
command, a test) gets an empty cache of its own and reads the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.exams import rules


@dataclass(frozen=True, slots=True)
class QuestionContent:
    """What never changes in a question version: shown to candidates and graded."""

    id: int
    type: str
    category: str
    stem: str
    options: tuple[str, ...]
    key: frozenset[int]
    weights: tuple[float, ...] | None


Pool = tuple[rules.PoolIndex, dict[int, str]]
"""The candidates a part may draw, and each question's bank code."""

POOLS_MAX = 64
QUESTIONS_MAX = 100_000


@dataclass
class ExamCache:
    """Question versions by row id, and draw pools by (part, field, banks' import stamp)."""

    questions: dict[int, QuestionContent] = field(default_factory=dict)
    pools: dict[tuple[str, str, Any], Pool] = field(default_factory=dict)

    def pool(self, key: tuple[str, str, Any]) -> Pool | None:
        return self.pools.get(key)

    def keep_pool(self, key: tuple[str, str, Any], pool: Pool) -> None:
        if len(self.pools) >= POOLS_MAX:
            self.pools.clear()
        self.pools[key] = pool

    def missing(self, ids: Any) -> list[int]:
        """The ids to read from the database (every one of them when the cache is full: it starts over)."""
        wanted = set(ids)
        missing = [i for i in wanted if i not in self.questions]
        if missing and len(self.questions) + len(missing) > QUESTIONS_MAX:
            self.questions.clear()
            return list(wanted)
        return missing

    def keep_questions(self, versions: list[QuestionContent]) -> None:
        for q in versions:
            self.questions[q.id] = q

    def versions(self, ids: Any) -> dict[int, QuestionContent] | None:
        """The versions of ``ids``, or None when any is not cached yet."""
        try:
            return {i: self.questions[i] for i in ids}
        except KeyError:
            return None

    def clear(self) -> None:
        self.questions.clear()
        self.pools.clear()


__all__ = ["ExamCache", "Pool", "QuestionContent"]
