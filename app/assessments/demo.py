"""Assessment demo data: two closed years of ratings, and officers that trigger each rule.

Called by ``app demo-data`` after the officers and the training ledger, through the same bulk
writer. Deterministic from the seed. The first ``MAX_OFFICERS`` active officers are rated for the
two years before the reference date (mostly 合格, some 优秀, about one in twenty-five 不合格), all
confirmed. Three officers of the first city's market-regulation bureau (the demo's agency
administrator sees them) show the rules:

- zhifa01's own officer: 不合格 in both closed years, so the year-end close opens an exit case that
  the demo officer can answer with a statement and the authority can decide;
- one officer 不合格 in the last closed year only: the consequences, no case;
- one officer 不合格 three years back and in the last closed year, 合格 between: a gap, no case.

``generate_demo`` then closes the last year with the real ``close_year``, so the cases are open.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import text

from app.lib.bulk import BulkLoad, Row

RATING_COLUMNS = (
    "id", "officer_id", "agency_id", "year", "grade", "daily_score", "legal_test_score",
    "standard_test_score", "case_review_score", "comment", "excellent_barred", "remedy", "status",
    "corrects_id", "reason", "entered_by_id", "entered_by_name", "entered_at", "confirmed_by_name",
    "confirmed_at",
)  # fmt: skip
MAX_OFFICERS = 20_000
BATCH = 50_000


@dataclass
class AssessmentLoaded:
    ratings: int = 0
    examples: list[tuple[str, int]] = field(default_factory=list)
    """(what the officer shows, officer id)."""


def _scores(rng: random.Random, grade: str) -> tuple[int, int, int, int]:
    base = {"优秀": 90, "合格": 78, "基本合格": 65, "不合格": 52}[grade]
    return tuple(max(0, min(100, base + int(rng.random() * 12) - 6)) for _ in range(4))  # type: ignore[return-value]


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """``rows`` in lists of ``size`` (the last one shorter): the bulk writer's batches."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _ratings(
    rng: random.Random,
    rated: list[tuple[int, int]],
    fixed: dict[int, dict[int, str]],
    years: tuple[int, int],
    now: Any,
) -> Iterator[Row]:
    """The rows of ``assessment_ratings``: the fixed officers' plans, a random one for the others."""
    next_id = 1
    for officer_id, agency_id in rated:
        plan = fixed.get(officer_id)
        if plan is None:
            plan = {}
            for year in years:
                r = rng.random()
                plan[year] = "不合格" if r < 0.04 else ("优秀" if r < 0.2 else "合格")
        for year, grade in sorted(plan.items()):
            bad = grade == "不合格"
            daily, legal, standard, review = _scores(rng, grade)
            yield (next_id, officer_id, agency_id, year, grade, daily, legal, standard, review,
                   "演示数据" + ("：案卷评查问题较多，执法规范测试未达标" if bad else ""), bad,
                   ("off_post_training" if rng.random() < 0.3 else "criticism") if bad else None,
                   "confirmed", None, "", None, "demo", now, "demo", now)  # fmt: skip
            next_id += 1


async def load_assessment_demo(
    run: BulkLoad, *, zhifa01_officer_id: int, reserved: set[int], market_id: int
) -> AssessmentLoaded:
    conn, write, seed, as_of, _date_out, now = run  # ratings carry no dates but the timestamps
    rng = random.Random(seed + 6)
    last = as_of.year - 1
    years = (last - 1, last)
    loaded = AssessmentLoaded()
    officers = (
        await conn.execute(
            text(
                "SELECT id, agency_id FROM officers WHERE employment_status = 'active' ORDER BY id LIMIT :n"
            ),
            {"n": MAX_OFFICERS},
        )
    ).all()
    # Two officers besides the fixed ones for the one-year and the gap examples: of the market
    # bureau when it has them (its administrator sees them), else any civil servant in post.
    extra: list[int] = []
    for where in ("agency_id = :a AND ", ""):
        candidates = await conn.execute(
            text(
                f"SELECT id FROM officers WHERE {where}employment_status = 'active' "
                "AND staff_type = 'civil_servant' ORDER BY id LIMIT 20"
            ),
            {"a": market_id},
        )
        extra = [int(i) for (i,) in candidates if int(i) not in reserved][:2]
        if len(extra) == 2:
            break
    fixed: dict[int, dict[int, str]] = {zhifa01_officer_id: {years[0]: "不合格", years[1]: "不合格"}}
    loaded.examples.append(
        ("连续两年考核不合格：年度结转后已开立退出案件（zhifa01 可登录提交陈述申辩）", zhifa01_officer_id)
    )
    if len(extra) == 2:
        fixed[extra[0]] = {years[0]: "合格", years[1]: "不合格"}
        fixed[extra[1]] = {years[0] - 1: "不合格", years[0]: "合格", years[1]: "不合格"}
        loaded.examples.append((f"仅 {last} 年度考核不合格：不得评优、批评教育，不开立案件", extra[0]))
        loaded.examples.append(
            (f"{years[0] - 1}、{last} 年度不合格，中间一年合格：不连续，不开立案件", extra[1])
        )

    rated = [(int(o), int(a)) for o, a in officers]
    listed = {o for o, _ in rated}
    rated += [(o, market_id) for o in fixed if o not in listed]
    for rows in batches(_ratings(rng, rated, fixed, years, now), BATCH):
        await write("assessment_ratings", RATING_COLUMNS, rows)
        loaded.ratings += len(rows)
    return loaded
