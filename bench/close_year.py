"""The year-end close over a province: ``close_year`` beside the bare query that finds the same officers.

    .venv/bin/python bench/close_year.py                        # SQLite only
    .venv/bin/python bench/close_year.py --start-postgres       # and a throwaway PostgreSQL 15 cluster
    .venv/bin/python bench/close_year.py --officers 20000       # a quick run

For each engine the bench makes a fresh database, upgrades it, and loads (not timed) the province
of ``bench/training.py`` (``--officers`` officers in 100 departments, ``--records`` training ledger
lines each in 2025, their yearly totals) plus two years of confirmed ratings (2024, 2025): one
officer in a hundred 不合格 in both years, one in a hundred in 2025 only, one in a hundred in 2024
and 2023 with 合格 in 2025, the rest 合格. Then it measures, in one run:

* the bare queries: the SQL that finds the officers in post of the province with confirmed 不合格
  ratings in 2024 and 2025, and the SQL that finds those short of 40 hours in 2025 over the yearly
  totals (best of three each): together, the officers the close acts on;
* ``close_year(2025)``, the whole use case as the console command runs it: that query, the exit
  cases opened with their timeline events, the training shortfall of every officer of the province
  read from the yearly totals and flagged, the run recorded and audited, one commit;
* ``close_year(2025)`` again: nothing opened or flagged twice (best of three).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import training as province  # noqa: E402  (bench/training.py: the province and its ledger)

YEAR = province.YEAR  # 2025: the year with the ledger is the year closed

BARE = """
SELECT r2.officer_id
FROM assessment_ratings r2
JOIN assessment_ratings r1
  ON r1.officer_id = r2.officer_id AND r1.year = :prev AND r1.grade = '不合格' AND r1.status = 'confirmed'
JOIN officers o ON o.id = r2.officer_id
WHERE r2.year = :year AND r2.grade = '不合格' AND r2.status = 'confirmed'
  AND o.employment_status = 'active'
  AND o.agency_id IN (SELECT id FROM agencies WHERE path LIKE '/1/%')
"""

# The other half of what the close finds: officers in post of the province short of 40 hours in the year.
BARE_SHORTFALL = """
SELECT o.id
FROM officers o
LEFT JOIN training_year_totals t ON t.year = :year AND t.officer_id = o.id
WHERE o.employment_status = 'active'
  AND o.agency_id IN (SELECT id FROM agencies WHERE path LIKE '/1/%')
  AND coalesce(t.general_law, 0) + coalesce(t.special_law, 0) + coalesce(t.new_law, 0) < 400
"""

RATING_COLUMNS = (
    "officer_id", "agency_id", "year", "grade", "comment", "excellent_barred", "remedy", "status", "reason",
    "entered_by_name", "entered_at", "confirmed_by_name", "confirmed_at",
)  # fmt: skip


async def seed_ratings(url: str, officers: int) -> dict[str, int]:
    from sqlalchemy import text

    from app.db import make_engine

    now = dt.datetime.now(dt.UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            agency_of = dict((await conn.execute(text("SELECT id, agency_id FROM officers"))).all())
            rows: list[tuple[Any, ...]] = []
            plans = {
                0: {YEAR - 1: "不合格", YEAR: "不合格"},
                1: {YEAR - 1: "合格", YEAR: "不合格"},
                2: {YEAR - 2: "不合格", YEAR - 1: "合格", YEAR: "不合格"},
            }
            for i in range(1, officers + 1):
                plan = plans.get(i % 100, {YEAR - 1: "合格", YEAR: "合格"})
                for year, grade in plan.items():
                    bad = grade == "不合格"
                    rows.append(
                        (i, agency_of[i], year, grade, "", bad, "criticism" if bad else None, "confirmed", "",
                         "bench", now, "bench", now)
                    )  # fmt: skip
                if len(rows) >= 200_000:
                    await province._copy(conn, "assessment_ratings", RATING_COLUMNS, rows)
                    rows = []
            if rows:
                await province._copy(conn, "assessment_ratings", RATING_COLUMNS, rows)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE assessment_ratings"))
        else:
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        async with engine.connect() as conn:
            return {
                "ratings": int(
                    (await conn.execute(text("SELECT count(*) FROM assessment_ratings"))).scalar_one()
                )
            }
    finally:
        await engine.dispose()


async def measure(url: str, repeat: int = 3) -> dict[str, Any]:
    from sqlalchemy import text

    from app.assessments import services as svc
    from app.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    out: dict[str, Any] = {}
    try:
        bare = []
        for _ in range(repeat):
            async with engine.connect() as conn:
                t = time.perf_counter()
                found = (await conn.execute(text(BARE), {"year": YEAR, "prev": YEAR - 1})).all()
                bare.append(time.perf_counter() - t)
        out["bare_s"] = min(bare)
        out["bare_rows"] = len(found)
        short = []
        for _ in range(repeat):
            async with engine.connect() as conn:
                t = time.perf_counter()
                found_short = (await conn.execute(text(BARE_SHORTFALL), {"year": YEAR})).all()
                short.append(time.perf_counter() - t)
        out["short_s"] = min(short)
        out["short_rows"] = len(found_short)
        maker = make_sessionmaker(engine)

        def stepper(into: list[tuple[str, float]]) -> Any:
            mark = [time.perf_counter(), "准备"]

            def step(description: str, _done: int, _total: int) -> None:
                now = time.perf_counter()
                into.append((str(mark[1]), now - float(mark[0])))
                mark[0], mark[1] = now, description

            return step

        out["first_steps"], out["again_steps"] = [], []
        async with maker() as session:
            t = time.perf_counter()
            first = await svc.close_year(
                session, principal=svc.system_principal(), year=YEAR, progress=stepper(out["first_steps"])
            )
            await session.commit()  # the close leaves the commit to its caller
            out["first_s"] = time.perf_counter() - t
            out["first"] = first
        again = []
        for _ in range(repeat):
            steps: list[tuple[str, float]] = []
            async with maker() as session:
                t = time.perf_counter()
                second = await svc.close_year(
                    session, principal=svc.system_principal(), year=YEAR, progress=stepper(steps)
                )
                await session.commit()
                again.append(time.perf_counter() - t)
            if again[-1] == min(again):
                out["again_steps"] = steps
        out["again_s"] = min(again)
        out["again"] = second
        async with engine.connect() as conn:
            explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
            plan = (await conn.execute(text(explain + BARE), {"year": YEAR, "prev": YEAR - 1})).all()
            out["plan"] = [str(row[-1]) for row in plan]
    finally:
        await engine.dispose()
    return out


def bench(name: str, url: str, args: argparse.Namespace) -> None:
    from app.lib import migrate

    migrate.upgrade(url, "head")
    started = time.perf_counter()
    counts = asyncio.run(province.seed(url, args.officers, args.records))
    counts.update(asyncio.run(seed_ratings(url, args.officers)))
    print(
        f"[{name}] loaded {counts['officers']:,} officers, {counts['training_records']:,} ledger lines, "
        f"{counts['ratings']:,} ratings in {time.perf_counter() - started:.1f} s (not measured)",
        flush=True,
    )
    m = asyncio.run(measure(url))
    first, again = m["first"], m["again"]
    bare = m["bare_s"] + m["short_s"]
    print(
        f"[{name}] bare queries: {m['bare_rows']:,} officers unqualified in {YEAR - 1} and {YEAR} in "
        f"{m['bare_s']:.3f} s; {m['short_rows']:,} officers short of hours in {YEAR} in {m['short_s']:.3f} s; "
        f"together {bare:.3f} s (best of 3)",
        flush=True,
    )
    print(
        f"[{name}] close_year({YEAR}) first run: {m['first_s']:.3f} s "
        f"({m['first_s'] / bare:.1f}x the bare queries): {first.cases_opened:,} cases opened, "
        f"{first.flags_added:,} training shortfalls flagged, {len(first.agencies)} agencies in the summary",
        flush=True,
    )
    print(
        f"[{name}] close_year({YEAR}) again: {m['again_s']:.3f} s ({m['again_s'] / bare:.1f}x): "
        f"{again.cases_opened} opened, {again.cases_existing:,} already open, {again.flags_added} flagged (best of 3)",
        flush=True,
    )
    for label, key in (("first run", "first_steps"), ("again", "again_steps")):
        parts = ", ".join(f"{d} {sec:.2f} s" for d, sec in m[key])
        print(f"[{name}]   {label} by step: {parts}", flush=True)
    print(f"[{name}]   plan: {' | '.join(p.strip() for p in m['plan'] if p.strip())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument(
        "--records", type=int, default=20, help="training ledger lines per officer in the year"
    )
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway cluster")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    print(
        f"bench/close_year.py: {args.officers:,} officers, {args.records} ledger lines each, "
        f"two years of ratings, {os.cpu_count()} CPUs",
        flush=True,
    )
    if not args.skip_sqlite:
        with province.sqlite_database() as url:
            bench("SQLite", url, args)
    with contextlib.ExitStack() as stack:
        server = args.postgres_url
        if args.start_postgres:
            server = stack.enter_context(province.throwaway_postgres())
        if server:
            with province.postgres_database(server) as url:
                bench("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
