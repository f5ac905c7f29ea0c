"""Yearly training at scale: attendance import (CSV and XLSX) and the compliance of a whole province.

    .venv/bin/python bench/training.py                          # SQLite only
    .venv/bin/python bench/training.py --start-postgres         # and a throwaway PostgreSQL 15 cluster
    .venv/bin/python bench/training.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/training.py --officers 20000 --import-rows 10000   # a quick run

For each engine the bench makes a fresh database (a temporary SQLite file; ``bench_<random>`` on
the PostgreSQL server, dropped afterwards), upgrades it, and loads (not timed) a province of
``--officers`` officers in 100 departments, each with ``--records`` ledger lines in the measured
year. Then it measures:

* compliance: ``training_compliance`` for the whole province — the one set-based query
  (GROUP BY officer, category over the covering index) alone, and the whole use case with the
  rules applied to every officer; best of three, plus the query plan's use of the index;
* import: ``training_import_commit`` of sheets of each ``--import-rows`` length (default 10,000,
  100,000 and 200,000; every row checked against the officers, courses and ledger, then written),
  as CSV and as XLSX, each into its own course and in a fresh process: seconds, rows/s, and the
  process's peak RSS above its resident size just before the import (the file itself already
  loaded), which shows whether memory grows with the length of the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import os
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_BIN = Path("/usr/lib/postgresql/15/bin")
YEAR = 2025
CITIES = 10
DEPARTMENTS_PER_CITY = 10
COURSES = 20
IMPORT_SIZES = (10_000, 100_000, 200_000)
IMPORT_KINDS = ("csv", "xlsx")


def import_course(kind: str, rows: int) -> str:
    """The course each measured sheet is imported into (one per sheet: imports never collide)."""
    return f"基准导入课程（{kind.upper()} {rows}）"


IMPORT_COURSES = [import_course(kind, n) for n in IMPORT_SIZES for kind in IMPORT_KINDS]


# ================================================================= data


def id_number(i: int) -> str:
    """A valid, unique citizen ID number for officer ``i`` (GB 11643 check digit)."""
    from app.accounts.rules import id_check_digit

    born = dt.date(1960, 1, 1) + dt.timedelta(days=i // 1000)
    first17 = f"320102{born:%Y%m%d}{i % 1000:03d}"
    return first17 + id_check_digit(first17)


async def _copy(conn: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Bulk load straight through the driver (COPY / executemany): the bench's set-up, not measured."""
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.copy_records_to_table(table, records=rows, columns=list(columns))
        return

    def text(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, dt.date):
            return v.isoformat()
        return v

    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    await conn.exec_driver_sql(sql, [tuple(text(v) for v in r) for r in rows])


async def seed(url: str, officers: int, records: int) -> dict[str, int]:
    from sqlalchemy import text

    from app.db import make_engine

    rnd = random.Random(20261122)
    now = dt.datetime.now(dt.UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            # The tree: province (issuing authority) → cities → departments, with materialised paths.
            agencies: list[tuple[Any, ...]] = [
                (1, None, "基准省", "320000", "province", "government", "/1/", 0, True, "基准省司法厅")
            ]
            departments: list[int] = []
            next_id = 2
            for c in range(CITIES):
                city = next_id
                agencies.append(
                    (city, 1, f"基准市{c}", "320100", "city", "government", f"/1/{city}/", 1, False, "")
                )
                next_id += 1
                for d in range(DEPARTMENTS_PER_CITY):
                    agencies.append(
                        (
                            next_id,
                            city,
                            f"基准市{c}部门{d}",
                            "320100",
                            "city",
                            "department",
                            f"/1/{city}/{next_id}/",
                            2,
                            False,
                            "",
                        )
                    )
                    departments.append(next_id)
                    next_id += 1
            await _copy(
                conn,
                "agencies",
                (
                    "id",
                    "parent_id",
                    "name",
                    "region_code",
                    "level",
                    "kind",
                    "path",
                    "depth",
                    "is_issuing_authority",
                    "authority_name",
                    "short_name",
                    "is_enforcement_subject",
                    "enforcement_basis",
                    "is_active",
                    "created_at",
                    "updated_at",
                ),
                [(*a, "", True, "", True, now, now) for a in agencies],
            )
            officer_cols = (
                "id",
                "agency_id",
                "name",
                "id_number",
                "gender",
                "birth_date",
                "staff_type",
                "post",
                "field",
                "area",
                "employment_status",
                "phone",
                "version",
                "created_at",
                "updated_at",
            )
            posting_cols = ("officer_id", "agency_id", "post", "field", "area", "started_on", "end_reason")
            step = 50_000
            for start in range(1, officers + 1, step):
                chunk = range(start, min(officers, start + step - 1) + 1)
                rows = []
                postings = []
                for i in chunk:
                    idn = id_number(i)
                    agency = departments[i % len(departments)]
                    born = dt.date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14]))
                    rows.append(
                        (
                            i,
                            agency,
                            f"人员{i}",
                            idn,
                            "男" if int(idn[16]) % 2 else "女",
                            born,
                            "civil_servant",
                            "enforcement",
                            "市场监管",
                            "",
                            "active",
                            "",
                            1,
                            now,
                            now,
                        )
                    )
                    postings.append((i, agency, "enforcement", "市场监管", "", dt.date(2015, 1, 1), ""))
                await _copy(conn, "officers", officer_cols, rows)
                await _copy(conn, "posting_history", posting_cols, postings)
            categories = ["general_law", "special_law", "new_law"]
            courses = [
                (
                    c + 1,
                    1,
                    YEAR,
                    f"基准课程{c + 1}",
                    categories[c % 3],
                    40,
                    dt.date(YEAR, 1 + c % 12, 1),
                    dt.date(YEAR, 1 + c % 12, 20),
                    "",
                    "sign_in_sheet",
                    "",
                    "bench",
                    now,
                )
                for c in range(COURSES)
            ]
            for n, title in enumerate(IMPORT_COURSES, start=COURSES + 1):
                courses.append(
                    (
                        n,
                        1,
                        YEAR,
                        title,
                        "new_law",
                        40,
                        dt.date(YEAR, 9, 1),
                        dt.date(YEAR, 9, 2),
                        "",
                        "certificate",
                        "",
                        "bench",
                        now,
                    )
                )
            await _copy(
                conn,
                "training_courses",
                (
                    "id",
                    "agency_id",
                    "year",
                    "title",
                    "category",
                    "hours_tenths",
                    "starts_on",
                    "ends_on",
                    "provider",
                    "verification",
                    "note",
                    "created_by_name",
                    "created_at",
                ),
                courses,
            )
            record_cols = (
                "officer_id",
                "course_id",
                "year",
                "category",
                "attended_on",
                "hours_tenths",
                "kind",
                "reason",
                "generation",
                "entered_by_name",
                "entered_at",
            )
            batch: list[tuple[Any, ...]] = []
            for i in range(1, officers + 1):
                for c in rnd.sample(range(COURSES), records) if records < COURSES else range(records):
                    course = courses[c % COURSES]
                    batch.append(
                        (
                            i,
                            course[0],
                            YEAR,
                            course[4],
                            course[6],
                            rnd.choice((10, 15, 20, 25, 30)),
                            "record",
                            "",
                            c // COURSES,
                            "bench",
                            now,
                        )
                    )
                if len(batch) >= 200_000:
                    await _copy(conn, "training_records", record_cols, batch)
                    batch = []
            if batch:
                await _copy(conn, "training_records", record_cols, batch)
            # The yearly totals the compliance query reads (the application keeps them in step).
            await conn.execute(
                text(
                    "INSERT INTO training_year_totals (year, officer_id, general_law, special_law, new_law) "
                    "SELECT year, officer_id, "
                    "sum(CASE WHEN category = 'general_law' THEN hours_tenths ELSE 0 END), "
                    "sum(CASE WHEN category = 'special_law' THEN hours_tenths ELSE 0 END), "
                    "sum(CASE WHEN category = 'new_law' THEN hours_tenths ELSE 0 END) "
                    "FROM training_records GROUP BY year, officer_id"
                )
            )
            if conn.dialect.name == "postgresql":
                for table in ("agencies", "officers", "training_courses"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                        )
                    )
        # Statistics (and, on PostgreSQL, the visibility map an index-only scan needs).
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        else:
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        async with engine.connect() as conn:
            counts = {
                t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
                for t in ("officers", "training_records")
            }
    finally:
        await engine.dispose()
    return counts


# ================================================================= compliance


async def measure_compliance(url: str, repeat: int = 3) -> dict[str, Any]:
    from sqlalchemy import text

    from app.db import make_engine, make_sessionmaker
    from app.training import services as svc
    from app.training.selectors.compliance import compliance_statement

    engine = make_engine(url)
    principal = svc.system_principal()
    out: dict[str, Any] = {}
    try:
        maker = make_sessionmaker(engine, write=False)
        stmt = compliance_statement("/1/", YEAR, with_joined=False, scan=engine.dialect.name == "sqlite")
        async with maker() as db:
            compiled = stmt.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
            plan = (await db.execute(text(f"{prefix} {compiled}"))).all()
            out["plan"] = [" ".join(str(c) for c in row) for row in plan]
            query_times = []
            conn = await db.connection()
            for _ in range(repeat):
                started = time.perf_counter()
                rows = (await conn.execute(stmt)).all()
                query_times.append(time.perf_counter() - started)
            out["rows"] = len(rows)
            del rows
            timings: dict[str, list[float]] = {"page": [], "short_page": [], "everything": []}
            as_of = dt.date(YEAR, 12, 31)
            for _ in range(repeat):
                started = time.perf_counter()
                result = await svc.training_compliance(db, principal, YEAR, as_of=as_of, limit=100)
                timings["page"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await svc.training_compliance(db, principal, YEAR, status="short", as_of=as_of, limit=100)
                timings["short_page"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await svc.training_compliance(db, principal, YEAR, as_of=as_of)
                timings["everything"].append(time.perf_counter() - started)
            out["summary"] = {
                "officers": result.summary.officers,
                "met": result.summary.met,
                "short": result.summary.short,
            }
            for key, values in timings.items():
                out[f"{key}_s"] = min(values)
        out["query_s"] = min(query_times)
    finally:
        await engine.dispose()
    return out


# ================================================================= import


def write_sheets(
    directory: Path, rows: int, officers: int, kinds: Sequence[str] = IMPORT_KINDS
) -> dict[str, Path]:
    """A ``rows``-long attendance sheet per kind: distinct officers, the sheet's own course."""
    headers = ["姓名", "身份证号码", "课程名称", "培训日期", "学时"]
    picks = random.Random(7).sample(range(1, officers + 1), min(rows, officers))
    paths = {}
    if "csv" in kinds:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(headers)
        title = import_course("csv", rows)
        for i in picks:
            w.writerow([f"人员{i}", id_number(i), title, f"{YEAR}-09-02", "2"])
        paths["csv"] = directory / f"csv-{rows}.csv"
        paths["csv"].write_bytes(buf.getvalue().encode("utf-8-sig"))
    if "xlsx" in kinds:
        import openpyxl

        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet()
        ws.append(headers)
        title = import_course("xlsx", rows)
        for i in picks:
            ws.append([f"人员{i}", id_number(i), title, dt.date(YEAR, 9, 2), 2])
        paths["xlsx"] = directory / f"xlsx-{rows}.xlsx"
        wb.save(paths["xlsx"])
    return paths


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Start the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


async def _child_import(url: str, data: bytes, filename: str, *, trace: bool = False) -> dict[str, Any]:
    import tracemalloc

    from app.db import make_engine, make_sessionmaker
    from app.training import services
    from app.training.services import imports as importer

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            principal = services.system_principal()
            if trace:
                tracemalloc.start()
            _reset_peak()
            baseline = _status_kib("VmRSS")
            started = time.perf_counter()
            result = await importer.training_import_commit(
                db, principal=principal, data=data, filename=filename, year=YEAR, source="cli"
            )
            await db.commit()  # the service leaves the commit to its caller (here, the console's part)
            seconds = time.perf_counter() - started
            heap_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        await engine.dispose()
    peak = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": result.imported,
        "seconds": seconds,
        "bytes": len(data),
        "baseline_mib": baseline / 1024,
        "peak_mib": peak / 1024,
        "delta_mib": (peak - baseline) / 1024,
        "heap_peak_mib": heap_peak / 2**20,
    }


def measure_import(url: str, path: Path, *, trace: bool = False) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-import",
            str(path),
            "--url",
            url,
            *(["--trace"] if trace else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"import of {path.name} failed:\n{proc.stdout}\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ================================================================= engines


def _libpq(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


async def _pg(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_libpq(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        yield f"sqlite+aiosqlite:///{tmp}/app.db"


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    name = f"bench_{secrets.token_hex(4)}"
    head, _, _ = _libpq(server_url).rpartition("/")
    asyncio.run(_pg(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{head.split('://', 1)[1]}/{name}"
    finally:
        asyncio.run(_pg(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL 15 cluster with default settings in a temporary directory."""
    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"no PostgreSQL 15 server binaries in {PG_BIN}")
    tmp = tempfile.mkdtemp(prefix="bench-pgdata-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(tmp, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = f"{tmp}/data"

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], cwd=tmp, check=True, stdout=subprocess.DEVNULL)

    run(str(PG_BIN / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
    with open(f"{data}/postgresql.conf", "a") as conf:
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{tmp}'\n")
    run(str(PG_BIN / "pg_ctl"), "start", "-D", data, "-l", f"{tmp}/log", "-w", "-s")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(PG_BIN / "pg_ctl"), "stop", "-D", data, "-m", "fast", "-s")
        shutil.rmtree(tmp, ignore_errors=True)


def bench(name: str, url: str, args: argparse.Namespace) -> None:
    from app.lib import migrate

    migrate.upgrade(url, "head")
    started = time.perf_counter()
    counts = asyncio.run(seed(url, args.officers, args.records))
    print(
        f"[{name}] loaded {counts['officers']:,} officers, {counts['training_records']:,} ledger lines "
        f"in {time.perf_counter() - started:.1f} s (not measured)",
        flush=True,
    )
    if not args.skip_compliance:
        c = asyncio.run(measure_compliance(url))
        covering = [line for line in c["plan"] if "training_year_totals" in line]
        print(
            f"[{name}] compliance of {c['summary']['officers']:,} officers "
            f"({c['summary']['met']:,} met, {c['summary']['short']:,} short): "
            f"query {c['query_s']:.3f} s; use case: first page {c['page_s']:.3f} s, "
            f"first page of the short {c['short_page_s']:.3f} s, every row (CSV export) {c['everything_s']:.3f} s "
            f"(best of 3)",
            flush=True,
        )
        print(
            f"[{name}]   plan over the yearly totals: {' | '.join(x.strip() for x in covering)}", flush=True
        )
    if not args.skip_import:
        with tempfile.TemporaryDirectory(prefix="bench-sheets-") as tmp:
            for size in args.import_rows:
                if size not in IMPORT_SIZES:
                    raise SystemExit(f"--import-rows: one of {IMPORT_SIZES}")
                sheets = write_sheets(Path(tmp), size, args.officers, args.import_kinds)
                for kind in args.import_kinds:
                    r = measure_import(url, sheets[kind], trace=args.tracemalloc)
                    heap = (
                        f"  Python heap peak {r['heap_peak_mib']:.1f} MiB (tracemalloc)"
                        if args.tracemalloc
                        else ""
                    )
                    print(
                        f"[{name}] import {kind:<4} {r['rows']:>7,} rows {r['bytes'] / 1e6:5.1f} MB: "
                        f"{r['seconds']:6.2f} s {r['rows'] / r['seconds']:>9,.0f} rows/s  "
                        f"peak RSS {r['peak_mib']:.0f} MiB (+{r['delta_mib']:.0f} MiB over {r['baseline_mib']:.0f} MiB before)"
                        f"{heap}  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                    sheets[kind].unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--records", type=int, default=20, help="ledger lines per officer in the year")
    parser.add_argument(
        "--import-rows",
        type=lambda v: [int(x) for x in v.split(",")],
        default=list(IMPORT_SIZES),
        help="sheet lengths, comma-separated (of 10000,100000,200000)",
    )
    parser.add_argument(
        "--import-kinds", type=lambda v: v.split(","), default=list(IMPORT_KINDS), help="csv,xlsx"
    )
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway cluster")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-compliance", action="store_true")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report the Python heap's peak during each import (slower: time figures are then not comparable)",
    )
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-import", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_import:
        data = args.child_import.read_bytes()
        print(
            json.dumps(asyncio.run(_child_import(args.url, data, args.child_import.name, trace=args.trace)))
        )
        return
    print(
        f"bench/training.py: {args.officers:,} officers × {args.records} lines, {args.import_rows}-row sheets, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    if not args.skip_sqlite:
        with sqlite_database() as url:
            bench("SQLite", url, args)
    with contextlib.ExitStack() as stack:
        server = args.postgres_url
        if args.start_postgres:
            server = stack.enter_context(throwaway_postgres())
        if server:
            with postgres_database(server) as url:
                bench("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
