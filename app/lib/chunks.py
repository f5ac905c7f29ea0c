"""Long lists sent to the database a slice at a time: the bound of every ``IN (...)`` list and of
every bulk insert, and the slicing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_CHUNK = 1000
"""Values per IN list or rows per bulk insert: well inside SQLite's and asyncpg's parameter limits."""


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["IN_CHUNK", "chunks"]
