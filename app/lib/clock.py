"""The one clock: every date and time the service reasons with comes from here.

The law's days are Beijing days (Asia/Shanghai, UTC+8 all year, no daylight saving): a certificate
expires, a training year ends and a rating year closes at midnight in Beijing, whatever time zone
the host runs in. Instants are stored as aware UTC datetimes; dates are Beijing dates.

Tests move the clock with :func:`frozen` rather than patching ``datetime`` in several modules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time. A fixed offset rather than zoneinfo: the country has had no DST since 1991,
and the fixed offset needs no tz database on the host."""


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_source: Callable[[], dt.datetime] = _system_now


def utcnow() -> dt.datetime:
    """The current instant, an aware UTC datetime (what timestamps are stored as)."""
    return _source()


def now() -> dt.datetime:
    """The current instant on Beijing's wall clock (aware, UTC+8)."""
    return _source().astimezone(CHINA)


def today() -> dt.date:
    """Today's date in Beijing: the day every legal deadline and validity is judged on."""
    return now().date()


def beijing_date(instant: dt.datetime) -> dt.date:
    """The Beijing date of an instant; a naive datetime is taken as already on Beijing time."""
    return instant.astimezone(CHINA).date() if instant.tzinfo else instant.date()


def to_beijing(instant: dt.datetime) -> dt.datetime:
    """An instant on Beijing's wall clock; a naive datetime is taken as Beijing time."""
    return instant.astimezone(CHINA) if instant.tzinfo else instant.replace(tzinfo=CHINA)


@contextmanager
def frozen(instant: dt.datetime) -> Iterator[None]:
    """Stop the clock at ``instant`` (aware) for the block: tests of date-sensitive rules."""
    global _source
    if instant.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    previous = _source
    _source = lambda: instant.astimezone(dt.UTC)  # noqa: E731
    try:
        yield
    finally:
        _source = previous


__all__ = ["CHINA", "beijing_date", "frozen", "now", "to_beijing", "today", "utcnow"]
