"""Roster filters, keyset cursors, indicator arithmetic and the SVG charts: pure, table-tested."""

from __future__ import annotations

import datetime as dt

import pytest

from app.lib.enums import Post, StaffType
from app.lib.errors import DomainError
from app.rosters import charts, rules
from app.rosters.rules import (
    EligibleFilter,
    ExamFilter,
    RosterFilter,
    RosterSort,
    StatusFilter,
    TrainingFilter,
)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({}, RosterFilter(year=2026)),
        ({"year": "2025", "training": "short"}, RosterFilter(year=2025, training=TrainingFilter.SHORT)),
        (
            {"exam": "valid", "post": "legal_review"},
            RosterFilter(year=2026, exam=ExamFilter.VALID, post=Post.LEGAL_REVIEW),
        ),
        # Chinese labels are accepted as well as values (hand-typed URLs, links from a sheet).
        (
            {"staff_type": "劳动合同工", "status": "退休"},
            RosterFilter(year=2026, staff_type=StaffType.CONTRACT, status=StatusFilter.RETIRED),
        ),
        (
            {"agency_id": " 7 ", "q": " 张 ", "field": "市场监管"},
            RosterFilter(year=2026, agency_id=7, q="张", field="市场监管"),
        ),
        ({"sort": "name"}, RosterFilter(year=2026, sort=RosterSort.NAME)),
        (
            {"status": "inactive", "eligible": "no"},
            RosterFilter(year=2026, status=StatusFilter.INACTIVE, eligible=EligibleFilter.NO),
        ),
        ({"exam": "", "training": ""}, RosterFilter(year=2026)),
    ],
)
def test_parse_filter_reads_query_parameters(params: dict[str, str], expected: RosterFilter) -> None:
    assert rules.parse_filter(params, default_year=2026) == expected


@pytest.mark.parametrize(
    "params,field",
    [
        ({"agency_id": "x"}, "agency_id"),
        ({"year": "1999"}, "year"),
        ({"year": "abc"}, "year"),
        ({"exam": "maybe"}, "exam"),
        ({"training": "half"}, "training"),
        ({"staff_type": "boss"}, "staff_type"),
        ({"sort": "salary"}, "sort"),
        ({"eligible": "maybe"}, "eligible"),
        ({"q": "张" * 51}, "q"),
    ],
)
def test_parse_filter_names_the_bad_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(DomainError) as exc:
        rules.parse_filter(params, default_year=2026)
    assert field in exc.value.field_messages()
    assert "筛选条件有误" in exc.value.message


def test_filter_url_round_trips_through_the_parser() -> None:
    f = RosterFilter(
        agency_id=3,
        q="李",
        field="生态环境",
        staff_type=StaffType.CIVIL_SERVANT,
        post=Post.ENFORCEMENT,
        status=StatusFilter.ACTIVE,
        eligible=EligibleFilter.YES,
        exam=ExamFilter.NONE,
        year=2025,
        training=TrainingFilter.MET,
        sort=RosterSort.NEWEST,
    )
    url = f.url()
    assert url.startswith("/rosters?")
    from urllib.parse import parse_qsl, urlsplit

    params = dict(parse_qsl(urlsplit(url).query))
    assert rules.parse_filter(params, default_year=2000) == f
    # The default sort is left out, and an override replaces one field only.
    assert "sort" not in RosterFilter(year=2025).query()
    assert RosterFilter(year=2025).url(training=TrainingFilter.SHORT) == "/rosters?year=2025&training=short"


@pytest.mark.parametrize(
    "sort,key",
    [(RosterSort.AGENCY, [3, "张三", 17]), (RosterSort.NAME, ["王芳", 2]), (RosterSort.NEWEST, [99])],
)
def test_cursor_round_trip(sort: RosterSort, key: list[object]) -> None:
    assert rules.decode_cursor(sort, rules.encode_cursor(sort, key)) == key


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        rules.encode_cursor(RosterSort.NAME, ["王芳", 2]),  # another sort's cursor
        rules.encode_cursor(RosterSort.AGENCY, ["3", "张三", 17]),  # wrong types
        rules.encode_cursor(RosterSort.AGENCY, [True, "张三", 17]),
        "A" * 500,
    ],
)
def test_cursor_tampered_or_foreign_is_refused(cursor: str) -> None:
    with pytest.raises(DomainError) as exc:
        rules.decode_cursor(RosterSort.AGENCY, cursor)
    assert exc.value.field_messages() == {"after": "翻页参数无效，请从第一页重新查询"}


@pytest.mark.parametrize(
    "part,whole,expected", [(0, 0, None), (1, 3, 33.3), (2, 3, 66.7), (5, 5, 100.0), (0, 7, 0.0)]
)
def test_percent(part: int, whole: int, expected: float | None) -> None:
    assert rules.percent(part, whole) == expected


@pytest.mark.parametrize(
    "legal,enforcement,ok", [(0, 0, None), (1, 20, True), (1, 21, False), (5, 100, True), (4, 100, False)]
)
def test_legal_review_ratio_against_the_five_percent_line(
    legal: int, enforcement: int, ok: bool | None
) -> None:
    assert rules.legal_review_ok(legal, enforcement, 0.05) is ok


def test_bar_chart_escapes_labels_links_each_bar_and_draws_the_target() -> None:
    svg = str(
        charts.bar_chart(
            [("<script>甲</script>", 40.0, "/rosters?a=1&b=2"), ("乙市", None, "")],
            title="法制审核人员比例",
            target=5.0,
        )
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'href="/rosters?a=1&amp;b=2"' in svg
    assert "—" in svg  # nothing to divide: no bar, a dash
    assert 'class="chart-target"' in svg and "5%" in svg
    assert "style=" not in svg  # the CSP allows no inline style


def test_bar_chart_marks_bars_below_the_target() -> None:
    svg = str(charts.bar_chart([("甲", 3.0, "/x"), ("乙", 8.0, "/y")], title="t", target=5.0))
    assert svg.count("chart-bar warn") == 1
    empty = str(charts.bar_chart([], title="t"))
    assert "暂无数据" in empty


def test_every_filter_option_has_its_own_label() -> None:
    # "valid" is a value of several filters: each must keep its own Chinese label.
    from app.rosters.rules import CertFilter, ExitFilter

    enums = (StatusFilter, EligibleFilter, ExamFilter, CertFilter, ExitFilter, TrainingFilter, RosterSort)
    for enum in enums:
        for member in enum:
            assert member.label
    assert ExamFilter.VALID.label != CertFilter.VALID.label


@pytest.mark.parametrize(
    "day,months,expected",
    [
        (dt.date(2026, 11, 22), 6, dt.date(2027, 5, 22)),
        (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
        (dt.date(2027, 8, 31), 6, dt.date(2028, 2, 29)),
        (dt.date(2026, 12, 31), 1, dt.date(2027, 1, 31)),
    ],
)
def test_add_months(day: dt.date, months: int, expected: dt.date) -> None:
    assert rules.add_months(day, months) == expected


def test_cert_filters_parse() -> None:
    from app.certificates.rules import CertificateKind
    from app.rosters.rules import CertFilter

    f = rules.parse_filter({"cert": "expiring", "cert_kind": "行政执法证"}, default_year=2026)
    assert (f.cert, f.cert_kind) == (CertFilter.EXPIRING, CertificateKind.ENFORCEMENT)
    with pytest.raises(DomainError):
        rules.parse_filter({"cert": "fake"}, default_year=2026)


def test_rating_and_exit_filters_parse() -> None:
    from app.rosters.rules import ExitFilter

    f = rules.parse_filter({"rating": "不合格", "rating_year": "2025", "exit": "open"}, default_year=2026)
    assert (f.rating, f.rating_year, f.exit) == ("不合格", 2025, ExitFilter.OPEN)
    for bad in ({"rating": "差"}, {"rating_year": "20x5"}, {"exit": "maybe"}):
        with pytest.raises(DomainError) as exc:
            rules.parse_filter(bad, default_year=2026)
        assert next(iter(bad)) in exc.value.field_messages()
