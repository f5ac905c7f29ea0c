"""The one clock: Beijing dates whatever the host's time zone, on either side of Beijing's midnight."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest

from app.certificates.rules import CertificateStatus, effective_status
from app.lib import clock

UTC = dt.UTC

# (instant in UTC, the Beijing date it falls on)
CASES = [
    (dt.datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC), dt.date(2026, 12, 31)),  # 23:59:59 in Beijing
    (dt.datetime(2026, 12, 31, 16, 0, 0, tzinfo=UTC), dt.date(2027, 1, 1)),  # 00:00:00 in Beijing
    (dt.datetime(2026, 12, 31, 23, 59, 0, tzinfo=UTC), dt.date(2027, 1, 1)),  # UTC still on the 31st
    (dt.datetime(2027, 1, 1, 0, 30, 0, tzinfo=UTC), dt.date(2027, 1, 1)),
    (dt.datetime(2027, 2, 28, 16, 0, 0, tzinfo=UTC), dt.date(2027, 3, 1)),
]
HOST_ZONES = ["UTC", "Asia/Shanghai", "America/Los_Angeles", "Pacific/Kiritimati"]


@pytest.fixture(params=HOST_ZONES)
def host_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with the process's local time zone set to each host zone in turn."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize(("instant", "beijing_day"), CASES)
def test_today_is_the_beijing_date_on_any_host(
    host_zone: str, instant: dt.datetime, beijing_day: dt.date
) -> None:
    with clock.frozen(instant):
        assert clock.today() == beijing_day
        assert clock.now().utcoffset() == dt.timedelta(hours=8)
        assert clock.utcnow() == instant and clock.utcnow().tzinfo is not None
        assert clock.beijing_date(clock.utcnow()) == beijing_day


@pytest.mark.parametrize(("instant", "beijing_day"), CASES)
def test_a_card_expiring_on_new_years_eve_is_judged_on_the_beijing_day(
    host_zone: str, instant: dt.datetime, beijing_day: dt.date
) -> None:
    """The card page and the roster both ask ``clock.today()``: they agree at every hour of the host."""
    with clock.frozen(instant):
        status = effective_status("valid", dt.date(2026, 12, 31), clock.today())
    expected = CertificateStatus.VALID if beijing_day <= dt.date(2026, 12, 31) else CertificateStatus.EXPIRED
    assert status == expected


def test_frozen_refuses_a_naive_instant_and_restores_the_clock() -> None:
    with pytest.raises(ValueError, match="aware"), clock.frozen(dt.datetime(2027, 1, 1)):
        pass
    real = clock.utcnow()
    assert abs((dt.datetime.now(UTC) - real).total_seconds()) < 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2027, 1, 1, 8, 0), dt.datetime(2027, 1, 1, 8, 0, tzinfo=clock.CHINA)),
        (dt.datetime(2027, 1, 1, 0, 0, tzinfo=UTC), dt.datetime(2027, 1, 1, 8, 0, tzinfo=clock.CHINA)),
    ],
)
def test_to_beijing_takes_naive_input_as_beijing_time(value: dt.datetime, expected: dt.datetime) -> None:
    out = clock.to_beijing(value)
    assert out == expected and out.utcoffset() == dt.timedelta(hours=8)
