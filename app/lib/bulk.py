"""What every domain's bulk loader of the demo data is handed (``app.demo.province`` runs them).

A loader draws rows and hands them to ``write`` (the run's bulk writer: COPY on PostgreSQL,
executemany on SQLite), in the run's connection, from the run's seed, as of the run's day, with the
engine's way of binding a date and the current time. One ``BulkLoad`` carries these; each loader
takes it and names only what is its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

Row = tuple[Any, ...]
Write = Callable[[str, Sequence[str], list[Row]], Awaitable[None]]
"""``write(table, columns, rows)``: the rows into the table, in bulk."""


class BulkLoad(NamedTuple):
    conn: AsyncConnection
    write: Write
    seed: int
    as_of: dt.date
    """The day the demo data is as of (its "today")."""
    date_out: Callable[[dt.date], Any]
    """A date as this engine's bulk writer binds it."""
    now: Any
    """The current time, as this engine's bulk writer binds it."""


__all__ = ["BulkLoad", "Row", "Write"]
