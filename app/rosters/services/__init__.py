"""Selectors of the read side, one module each: ``scope`` (where a roster looks), ``statements``
(the roster's query statements), ``paging`` (keyset pages and full streams), ``counts`` (exact
totals and their cache), ``figures`` (the counts behind the indicators).

Every query is scoped to the principal's agency subtree (or a chosen agency inside it). Nothing
here writes: the roster reads the officers, the exam qualifications and the yearly training totals
kept by their own domains. Inside the domain, import from the module that defines a name.
"""

from __future__ import annotations

from app.rosters.services.counts import CountCache, roster_count
from app.rosters.services.figures import Figures, indicator_figures, roll_up
from app.rosters.services.paging import RosterPage, RowMaker, roster_page, roster_stream
from app.rosters.services.scope import Scope, roster_scope

__all__ = [
    "CountCache",
    "Figures",
    "RosterPage",
    "RowMaker",
    "Scope",
    "indicator_figures",
    "roll_up",
    "roster_count",
    "roster_page",
    "roster_scope",
    "roster_stream",
]
