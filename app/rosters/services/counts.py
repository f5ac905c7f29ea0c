"""Exact roster counts, and the cache that remembers them.

The cache is the application's (``app.state.roster_counts``, made in ``create_app``), passed to
``roster_count`` and ``roster_page`` by the controllers: one per process, as before, and a fresh
one for every application a test builds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.rosters.rules import RosterFilter
from app.rosters.services.scope import Scope
from app.rosters.services.statements import count_statement, no_jit


class CountCache:
    """Exact roster counts, remembered per process for the views users page through.

    An exact count of a province-wide view with exam or training filters joins 200,000 officers,
    their qualifications and their hours (0.1–0.4 s); paging through the view, or the next user of
    the same view, should not pay it again. An entry is keyed by the view (scope, filter, year,
    date) and by the newest audit event: every change that moves an officer in or out of a view
    (officer records, exam results, cards, training imports, ratings) is audited in its own
    transaction, so any such change makes a new key. The time limit covers what is not audited
    (bulk loads by the operator's console); entries are few and small (an LRU of 1,024).
    """

    TTL = 120.0
    SIZE = 1024

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, int]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> int | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: tuple[Any, ...], total: int) -> None:
        self._entries[key] = (time.monotonic() + self.TTL, total)
        self._entries.move_to_end(key)
        while len(self._entries) > self.SIZE:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


async def count_key(db: AsyncSession, scope: Scope, f: RosterFilter) -> tuple[Any, ...]:
    """The view (scope, filter, year, date) and the newest audit event: see ``CountCache``."""
    stamp = await db.scalar(select(func.max(AuditEvent.id)))
    return (scope.path, scope.agency_id, scope.year, scope.as_of, tuple(sorted(f.query().items())), stamp)


async def roster_count(
    db: AsyncSession,
    scope: Scope,
    f: RosterFilter,
    *,
    counts: CountCache,
    key: tuple[Any, ...] | None = None,
) -> int:
    """The exact number of officers the view keeps (remembered in ``counts``); ``key``: the
    view's ``count_key`` when the caller has it already."""
    key = key or await count_key(db, scope, f)
    total = counts.get(key)
    if total is None:
        await no_jit(db)
        total = int(await db.scalar(count_statement(scope, f)) or 0)
        counts.put(key, total)
    return total
