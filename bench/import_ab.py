"""Attendance import, before and after: the importer of an earlier commit against this tree's, interleaved.

    .venv/bin/python bench/import_ab.py --before d9b656f --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/import_ab.py --before d9b656f --officers 20000 --rows 10000 --kind xlsx   # SQLite

On a shared machine absolute seconds say little; the same sheet imported by both versions in turn,
against the same database and under the same load, does. The earlier commit's ``app/`` is taken with
``git archive`` into a temporary directory (the database schema must be the same). The database is
loaded once as by ``bench/training.py``; each import runs in a fresh process and its final commit is
turned into a rollback, so every run sees the same ledger. Prints wall-clock seconds and the importing
process's CPU time (the rest is the database's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import training as bt

CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
async def main(url, path, year):
    from app.db import make_engine, make_sessionmaker
    from app.training import services
    from app.training.services import imports as importer
    engine = make_engine(url)
    data = Path(path).read_bytes()
    try:
        async with make_sessionmaker(engine)() as db:
            db.commit = db.rollback  # every run sees the same ledger
            wall, cpu = time.perf_counter(), time.process_time()
            r = await importer.training_import_commit(
                db, principal=services.system_principal(), data=data, filename=Path(path).name,
                year=year, source="cli")
            await db.commit()
            print(json.dumps({"rows": r.imported, "s": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
    finally:
        await engine.dispose()
asyncio.run(main(sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def run(root: Path, url: str, sheet: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), url, str(sheet), str(bt.YEAR)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({root}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the earlier commit (e.g. d9b656f)")
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--rows", type=int, choices=bt.IMPORT_SIZES, default=100_000)
    parser.add_argument("--kind", choices=bt.IMPORT_KINDS, default="csv")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres-url", help="a server to create a scratch database on (default: SQLite)")
    args = parser.parse_args()

    from app.lib import migrate

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ab-")))
        before = tmp / "before"
        before.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.before, "app"], cwd=bt.ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        if args.postgres_url:
            url = stack.enter_context(bt.postgres_database(args.postgres_url))
        else:
            url = stack.enter_context(bt.sqlite_database())
        migrate.upgrade(url, "head")
        asyncio.run(bt.seed(url, args.officers, args.records))
        sheet = bt.write_sheets(tmp, args.rows, args.officers, (args.kind,))[args.kind]
        engine = "PostgreSQL" if args.postgres_url else "SQLite"
        for _ in range(args.rounds):
            for name, root in (("before", before), ("after", bt.ROOT)):
                r = run(root, url, sheet)
                print(
                    f"[{engine}] {args.kind} {r['rows']:,} rows {name:<6}: {r['s']:6.2f} s "
                    f"(importing process CPU {r['cpu']:.2f} s)  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
