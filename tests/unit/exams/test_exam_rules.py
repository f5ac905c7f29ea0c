"""The exam's pure rules, table-tested: blueprints, drawing, grading, time, retakes, review, statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from app.exams import rules as r
from app.exams.rules import BlueprintRule, Candidate, PaperItem

UTC = dt.UTC
T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------- blueprint


@pytest.mark.parametrize(
    "text,ok,message",
    [
        ("public_law single 40 1\npublic_law multiple 20 2\nnew_law judge 20 1", True, ""),
        ("公共法律知识 单选题 40 1\n公共法律知识 多选 20 2\n新法律法规 判断题 20 1", True, ""),
        ("# 注释\n\npublic_law single 100 1", True, ""),
        ("public_law single 50 1", False, "各题分值之和应为 100 分，现为 50 分"),
        ("public_law essay 100 1", False, "第 1 行：题型 essay 无效"),
        ("law single 100 1", False, "第 1 行：题目类别 law 无效"),
        ("public_law single x 1", False, "第 1 行：数量 x 应为正整数"),
        ("public_law single 100", False, "第 1 行：应为“类别 题型 数量 每题分值 [题库代码]”"),
        ("public_law single 0 1\npublic_law judge 100 1", False, "第 1 行：数量应为正整数"),
        ("public_law single 300 0.25", False, "每题分值最多保留一位小数"),
        ("public_law single 201 0.5", False, "一个部分最多 200 题"),
        ("public_law single 50 1\npublic_law single 50 1", False, "第 2 行：与前面的规则重复"),
        ("", False, "组卷规则不能为空"),
        ("specialised_law single 50 1 market_regulation\nspecialised_law single 50 1", True, ""),
    ],
)
def test_parse_blueprint(text: str, ok: bool, message: str) -> None:
    rules, errors = r.parse_blueprint(text)
    assert (not errors) is ok, errors
    if not ok:
        assert any(message in str(e) for e in errors), [str(e) for e in errors]
    else:
        assert r.blueprint_total(rules) == 100


def test_blueprint_text_round_trips() -> None:
    rules, errors = r.parse_blueprint("public_law single 40 1\nnew_law multiple 20 2 pl\nnew_law judge 20 1")
    assert not errors
    again, errors = r.parse_blueprint(r.blueprint_text(rules))
    assert not errors and again == rules


# ---------------------------------------------------------------- drawing


def _pool() -> tuple[list[Candidate], dict[int, str]]:
    pool: list[Candidate] = []
    banks: dict[int, str] = {}
    n = 0
    for bank in ("a", "b"):
        for qtype, count in (("single", 10), ("multiple", 6), ("judge", 6)):
            for i in range(count):
                n += 1
                category = "new_law" if i % 3 == 0 else "public_law"
                pool.append(
                    Candidate(n, (bank, f"{qtype}-{i}"), qtype, category, 0 if qtype == "judge" else 4)
                )
                banks[n] = bank
    return pool, banks


BP = [
    BlueprintRule("public_law", "single", 8, 5.0),
    BlueprintRule("public_law", "multiple", 4, 5.0),
    BlueprintRule("public_law", "judge", 4, 5.0),
    BlueprintRule("new_law", "single", 2, 5.0, bank="a"),
    BlueprintRule("new_law", "judge", 2, 5.0),
]


def test_draw_is_reproducible_by_seed_and_varies_between_seeds() -> None:
    pool, banks = _pool()
    a = r.draw_paper(BP, pool, seed=7, banks_of=banks)
    b = r.draw_paper(BP, list(reversed(pool)), seed=7, banks_of=banks)
    c = r.draw_paper(BP, pool, seed=8, banks_of=banks)
    assert a == b
    assert a != c


def test_a_seed_draws_the_paper_it_always_drew_from_the_pool_or_its_index() -> None:
    """The draw over the cached index (rules.PoolIndex) is the draw over the pool, question for
    question and option for option; seed 7's paper is the one the unindexed draw made."""
    pool, banks = _pool()
    index = r.PoolIndex.of(list(reversed(pool)))
    for seed in range(50):
        assert r.draw_paper(BP, index, seed=seed, banks_of=banks) == r.draw_paper(
            BP, pool, seed=seed, banks_of=banks
        )
    assert [(x.question_id, x.order) for x in r.draw_paper(BP, index, seed=7, banks_of=banks)] == [
        (1, (1, 3, 2, 0)), (7, (1, 0, 2, 3)), (24, (3, 0, 1, 2)), (6, (1, 2, 0, 3)), (28, (3, 1, 2, 0)),
        (27, (3, 0, 2, 1)), (9, (1, 2, 0, 3)), (30, (1, 3, 2, 0)), (2, (1, 3, 2, 0)), (25, (3, 1, 2, 0)),
        (35, (0, 3, 1, 2)), (12, (1, 3, 2, 0)), (34, (0, 2, 3, 1)), (15, (2, 0, 3, 1)), (41, (0, 1)),
        (20, (0, 1)), (44, (0, 1)), (17, (0, 1)), (19, (0, 1)), (21, (0, 1)),
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_draw_follows_blueprint_without_repeats(seed: int) -> None:
    pool, banks = _pool()
    by_id = {c.id: c for c in pool}
    paper = r.draw_paper(BP, pool, seed=seed, banks_of=banks)
    assert len(paper) == 20
    keys = [by_id[p.question_id].key for p in paper]
    assert len(set(keys)) == len(keys), "a question repeated in a paper"
    # grouped by type in the fixed order
    types = [p.type for p in paper]
    assert types == sorted(types, key=r.TYPE_ORDER.index)
    counts: dict[tuple[str, str], int] = {}
    for p in paper:
        counts[(p.category, p.type)] = counts.get((p.category, p.type), 0) + 1
    assert counts == {
        ("public_law", "single"): 8,
        ("public_law", "multiple"): 4,
        ("public_law", "judge"): 4,
        ("new_law", "single"): 2,
        ("new_law", "judge"): 2,
    }
    for p in paper:
        if p.category == "new_law" and p.type == "single":
            assert banks[p.question_id] == "a"
        if p.type == "judge":
            assert p.order == (0, 1)
        else:
            assert sorted(p.order) == [0, 1, 2, 3]


def test_options_are_shuffled_across_draws() -> None:
    pool, banks = _pool()
    orders = {
        p.order
        for s in range(10)
        for p in r.draw_paper(BP, pool, seed=s, banks_of=banks)
        if p.type == "single"
    }
    assert len(orders) > 5


def test_draw_reports_every_shortfall() -> None:
    pool, banks = _pool()
    bp = [BlueprintRule("public_law", "single", 30, 2.0), BlueprintRule("new_law", "multiple", 20, 2.0)]
    with pytest.raises(r.DrawError) as exc:
        r.draw_paper(bp, pool, seed=1, banks_of=banks)
    assert "公共法律知识单选题需要 30 题，题库中只有 12 题" in str(exc.value)
    assert "新法律法规多选题需要 20 题，题库中只有 4 题" in str(exc.value)


# ---------------------------------------------------------------- grading


@pytest.mark.parametrize(
    "qtype,key,chosen,scoring,weights,expected",
    [
        ("single", {1}, {1}, "all_or_nothing", None, 1.0),
        ("single", {1}, {2}, "all_or_nothing", None, 0.0),
        ("single", {1}, set(), "all_or_nothing", None, 0.0),
        ("judge", {0}, {0}, "all_or_nothing", None, 1.0),
        ("judge", {1}, {0}, "all_or_nothing", None, 0.0),
        ("multiple", {0, 2}, {0, 2}, "all_or_nothing", None, 1.0),
        ("multiple", {0, 2}, {0}, "all_or_nothing", None, 0.0),
        ("multiple", {0, 2}, {0, 1, 2}, "all_or_nothing", None, 0.0),
        ("multiple", {0, 2, 3}, {0, 2}, "partial", None, 2 / 3),
        ("multiple", {0, 2}, {0, 1}, "partial", None, 0.0),
        ("multiple", {0, 2}, {0, 2}, "partial", None, 1.0),
        ("multiple", {0, 2}, {0}, "all_or_nothing", [0.5, -1.0, 0.5], 0.5),
        ("multiple", {0, 2}, {0, 1}, "all_or_nothing", [0.5, -1.0, 0.5], 0.0),
        ("multiple", {0, 2}, {0, 2}, "all_or_nothing", [0.5, -1.0, 0.5], 1.0),
    ],
)
def test_item_fraction(
    qtype: str, key: set[int], chosen: set[int], scoring: str, weights: list[float] | None, expected: float
) -> None:
    got = r.item_fraction(qtype, frozenset(key), frozenset(chosen), scoring=scoring, weights=weights)
    assert got == pytest.approx(expected)


def test_display_indexes_map_back_through_the_order() -> None:
    order = (2, 0, 3, 1)  # display 0 shows bank option 2, ...
    assert r.to_bank_indexes([0, 3], order) == frozenset({2, 1})
    assert r.to_bank_indexes([9], order) == frozenset()
    assert r.key_indexes("judge", True) == frozenset({0})
    assert r.key_indexes("judge", False) == frozenset({1})
    assert r.key_indexes("multiple", (0, 3)) == frozenset({0, 3})


@pytest.mark.parametrize(
    "raw,qtype,n,ok",
    [
        ((0,), "single", 4, True),
        ((0, 1), "single", 4, False),
        ((0, 1), "multiple", 4, True),
        ((4,), "multiple", 4, False),
        ((1, 1), "multiple", 4, False),
        ((), "single", 4, True),
        ((1,), "judge", 2, True),
        ((0, 1), "judge", 2, False),
    ],
)
def test_valid_choice(raw: tuple[int, ...], qtype: str, n: int, ok: bool) -> None:
    assert r.valid_choice(raw, qtype=qtype, option_count=n) is ok


def test_choice_text_round_trip() -> None:
    assert r.choice_text([2, 0, 2]) == "0,2"
    assert r.parse_choice("0,2") == (0, 2)
    assert r.parse_choice("") == ()


def _items(spec: list[tuple[str, float]]) -> list[PaperItem]:
    return [PaperItem(i, (0, 1), pts, cat, "single") for i, (cat, pts) in enumerate(spec)]


@pytest.mark.parametrize(
    "fractions,score,passed",
    [
        ([1, 1, 1, 1], 100.0, True),
        ([1, 1, 0, 0], 60.0, True),
        ([1, 0, 1, 0], 50.0, False),
        ([0, 0, 0, 0], 0.0, False),
        ([1, 0.5, 0, 0], 45.0, False),
    ],
)
def test_grade_scores_points_and_categories(fractions: list[float], score: float, passed: bool) -> None:
    items = _items([("public_law", 30), ("public_law", 30), ("new_law", 20), ("new_law", 20)])
    g = r.grade(items, fractions, pass_mark=60)
    assert g.score == score and g.passed is passed
    cats = {c.category: c for c in g.categories}
    assert cats["public_law"].possible == 60 and cats["new_law"].possible == 40
    assert cats["public_law"].earned == pytest.approx(30 * fractions[0] + 30 * fractions[1])
    assert [c.category for c in g.categories] == ["public_law", "new_law"]


# ---------------------------------------------------------------- time and attempts


@pytest.mark.parametrize(
    "minutes,closes_in,expected_minutes",
    [(60, 600, 60), (60, 30, 30), (90, 90, 90)],
)
def test_deadline_is_duration_but_never_after_the_session(
    minutes: int, closes_in: int, expected_minutes: int
) -> None:
    closes = T0 + dt.timedelta(minutes=closes_in)
    assert r.attempt_deadline(T0, duration_minutes=minutes, closes_at=closes) == T0 + dt.timedelta(
        minutes=expected_minutes
    )


@pytest.mark.parametrize(
    "offset,left,saves,overdue",
    [
        (-61, 61, True, False),
        (-0.2, 1, True, False),
        (0, 0, True, False),
        (10, 0, True, False),
        (15, 0, True, False),
        (16, 0, False, True),
        (3600, 0, False, True),
    ],
)
def test_time_left_grace_and_overdue(offset: float, left: int, saves: bool, overdue: bool) -> None:
    now = T0 + dt.timedelta(seconds=offset)
    assert r.seconds_left(T0, now) == left
    assert r.accepts_saves(T0, now) is saves
    assert r.is_overdue(T0, now) is overdue


OPENS, CLOSES = T0, T0 + dt.timedelta(hours=4)


@pytest.mark.parametrize(
    "now,previous,retakes,refusal",
    [
        (T0 - dt.timedelta(minutes=1), [], 1, r.StartRefusal.NOT_OPEN_YET),
        (T0, [], 1, None),
        (CLOSES, [], 1, r.StartRefusal.CLOSED),
        (T0, [False], 1, None),
        (T0, [False, False], 1, r.StartRefusal.NO_RETAKES_LEFT),
        (T0, [False], 0, r.StartRefusal.NO_RETAKES_LEFT),
        (T0, [True], 1, r.StartRefusal.PASSED),
        (T0, [False, False], 2, None),
    ],
)
def test_start_refusal(
    now: dt.datetime, previous: list[bool], retakes: int, refusal: r.StartRefusal | None
) -> None:
    assert (
        r.start_refusal(now=now, opens_at=OPENS, closes_at=CLOSES, previous=previous, retakes=retakes)
        == refusal
    )


@pytest.mark.parametrize(
    "policy,attempt_closed,session_closed,allowed",
    [
        ("after_submit", False, False, False),
        ("after_submit", True, False, True),
        ("after_close", True, False, False),
        ("after_close", True, True, True),
        ("after_close", False, True, False),
        ("never", True, True, False),
    ],
)
def test_review_allowed(policy: str, attempt_closed: bool, session_closed: bool, allowed: bool) -> None:
    assert r.review_allowed(policy, attempt_closed=attempt_closed, session_closed=session_closed) is allowed


@pytest.mark.parametrize(
    "results,required,ok",
    [
        ({"public": True, "specialised": True}, ["public", "specialised"], True),
        ({"public": True, "specialised": False}, ["public", "specialised"], False),
        ({"public": True}, ["public", "specialised"], False),
        ({"public": True, "specialised": None}, ["public", "specialised"], False),
        ({"public": True}, ["public"], True),
    ],
)
def test_qualified(results: dict[str, bool | None], required: list[str], ok: bool) -> None:
    assert r.qualified(results, required) is ok


@pytest.mark.parametrize(
    "passed_on,years,until",
    [
        (dt.date(2026, 9, 1), 5, dt.date(2031, 8, 31)),
        (dt.date(2028, 2, 29), 5, dt.date(2033, 2, 28)),
        (dt.date(2026, 1, 1), 1, dt.date(2026, 12, 31)),
    ],
)
def test_valid_until(passed_on: dt.date, years: int, until: dt.date) -> None:
    assert r.valid_until(passed_on, years) == until


# ---------------------------------------------------------------- statistics


def test_item_statistics_share_and_discrimination() -> None:
    # 10 candidates ranked by score; question 1 answered right by the strong only, question 2 by all,
    # question 3 by the weak only (a bad question: negative discrimination).
    results = []
    for rank in range(10):
        strong = rank < 5
        results.append((100.0 - rank * 10, {1: 1.0 if strong else 0.0, 2: 1.0, 3: 0.0 if strong else 1.0}))
    stats = {s.question_id: s for s in r.item_statistics(results)}
    assert stats[1].share_correct == 0.5 and stats[1].discrimination == 1.0
    assert stats[2].share_correct == 1.0 and stats[2].discrimination == 0.0
    assert stats[3].discrimination == -1.0
    assert all(s.drawn == 10 for s in stats.values())


def test_item_statistics_small_groups() -> None:
    assert r.item_statistics([]) == []
    (only,) = r.item_statistics([(80.0, {5: 1.0})])
    assert only.share_correct == 1.0 and only.discrimination is None
    # partial credit does not count as correct
    two = {s.question_id: s for s in r.item_statistics([(90.0, {5: 1.0}), (10.0, {5: 0.5})])}
    assert two[5].share_correct == 0.5 and two[5].discrimination == 1.0
