"""Numbered pages of a list (``?page=N``): how many rows a query selects in all, one page of them,
and the counts every page of the JSON API carries.

The long lists that are read to the end (the rosters) page by key instead (``rosters.rules``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

AnySelect = Select[*tuple[Any, ...]]
S = TypeVar("S", bound=AnySelect)


async def count_rows(db: AsyncSession, stmt: AnySelect) -> int:
    """How many rows ``stmt`` selects in all: the total shown under a numbered list."""
    return int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def page_offset(page: int, per_page: int) -> int:
    """The rows before page ``page`` (1-based) of ``per_page`` rows each."""
    return (page - 1) * per_page


def page_of(stmt: S, *, page: int, per_page: int) -> S:
    """Page ``page`` (1-based) of ``per_page`` rows of ``stmt``; order ``stmt`` first."""
    return stmt.limit(per_page).offset(page_offset(page, per_page))


class Page(msgspec.Struct, kw_only=True):
    """Where a page of a numbered list stands; each list's page adds its ``items``."""

    total: int
    page: int
    per_page: int


__all__ = ["Page", "count_rows", "page_of", "page_offset"]
