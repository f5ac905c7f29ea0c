"""Pages show instants on Beijing's wall clock (``templating.fmt_dt``, through ``clock.CHINA``)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.lib.templating import fmt_dt


@pytest.mark.parametrize(
    ("instant", "shown"),
    [
        (dt.datetime(2026, 12, 7, 15, 59, tzinfo=dt.UTC), "2026-12-07 23:59"),
        (dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.UTC), "2026-12-08 00:00"),  # past midnight in Beijing
        (dt.datetime(2026, 12, 31, 20, 30, tzinfo=dt.UTC), "2027-01-01 04:30"),
        (None, ""),
    ],
)
def test_instants_are_shown_in_beijing_time(instant: dt.datetime | None, shown: str) -> None:
    assert fmt_dt(instant) == shown
