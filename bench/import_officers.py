"""Time the officer bulk import (preview, then commit) on N generated rows, as CSV and as XLSX.

    .venv/bin/app db upgrade                                   # the database must be migrated first
    .venv/bin/python bench/import_officers.py                  # 100 000 rows, DATABASE_URL or var/app.db
    .venv/bin/python bench/import_officers.py --rows 20000 --format csv
    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench .venv/bin/python bench/import_officers.py

Each format runs in a child process of its own, so that its peak RSS is its own. A run adds a small
agency tree (``基准测试…``) and an administrator account to the database, then imports into it with
``officer_import_preview`` and ``officer_import_commit``, the functions the pages and the API call.
The rows stay in the database (``--cleanup`` deletes them again; audit events are append-only and
stay). ID numbers use a random region code and birth year per run, so runs do not collide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADERS = [
    "姓名",
    "身份证号码",
    "单位",
    "人员性质",
    "岗位",
    "执法类别",
    "执法区域",
    "联系电话",
    "任职起始日期",
]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰文辉建国红云飞鹏宇浩然晨曦婷雪梅海波"
STAFF = ["行政编制", "行政编制", "参照公务员法管理", "事业编制"]
POSTS = ["执法岗位", "执法岗位", "执法岗位", "法制审核岗位", "执法监督岗位"]


def reset_peak_rss() -> None:
    """Forget the peak so far (Linux 4.0+): importing the app briefly hashes with argon2 (64 MB)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB."""
    # VmHWM starts afresh at exec; ru_maxrss would carry over the parent's peak on Linux.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def id_numbers(n: int, offset: int, rng: random.Random) -> list[str]:
    from app.accounts.rules import id_check_digit

    region = f"{rng.randint(11, 65)}{rng.randint(0, 99):02d}{rng.randint(1, 99):02d}"
    base = dt.date(rng.randint(1960, 1995), 1, 1)
    out = []
    for i in range(offset, offset + n):
        born = base + dt.timedelta(days=i // 999)
        first17 = f"{region}{born:%Y%m%d}{i % 999 + 1:03d}"
        out.append(first17 + id_check_digit(first17))
    return out


def rows(n: int, offset: int, agencies: list[str], seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    ids = id_numbers(n, offset, rng)
    out = []
    for idn in ids:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        out.append(
            [
                name,
                idn,
                rng.choice(agencies),
                rng.choice(STAFF),
                rng.choice(POSTS),
                rng.choice(["市场监管", "生态环境", "交通运输"]),
                rng.choice(["城区", "开发区", "全市", ""]),
                f"1{rng.randint(3000000000, 9999999999)}",
                f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            ]
        )
    return out


def write_csv(path: Path, data: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows(data)


def write_xlsx(path: Path, data: list[list[str]]) -> None:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("执法人员")
    ws.append(HEADERS)
    for row in data:
        ws.append(row)
    wb.save(path)


@dataclass
class Setup:
    suffix: str
    account_id: int
    agency_ids: list[int]
    agency_names: list[str]


async def setup(database_url: str) -> Setup:
    from app.accounts.models import Account, Agency
    from app.accounts.rules import agency_path
    from app.db import make_engine, make_sessionmaker
    from app.lib.enums import AgencyKind, AgencyLevel, Role
    from app.lib.security import hash_password_sync

    suffix = secrets.token_hex(3)
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            province = Agency(
                name=f"基准测试省{suffix}",
                region_code="990000",
                level=AgencyLevel.PROVINCE.value,
                kind=AgencyKind.GOVERNMENT.value,
                depth=0,
                is_issuing_authority=True,
                authority_name=f"基准测试省{suffix}司法厅",
            )
            db.add(province)
            await db.flush()
            province.path = agency_path(None, province.id)
            depts = []
            for name in ("市场监督管理局", "生态环境局", "交通运输局"):
                dept = Agency(
                    parent_id=province.id,
                    name=f"基准测试{name}{suffix}",
                    region_code="990000",
                    level=AgencyLevel.PROVINCE.value,
                    kind=AgencyKind.DEPARTMENT.value,
                    depth=1,
                    is_enforcement_subject=True,
                    enforcement_basis="基准测试",
                )
                db.add(dept)
                await db.flush()
                dept.path = agency_path(province.path, dept.id)
                depts.append(dept)
            account = Account(
                username=f"bench_{suffix}",
                display_name="基准测试",
                password_hash=hash_password_sync(secrets.token_urlsafe(16)),
                role=Role.AUTHORITY_ADMIN.value,
                agency_id=province.id,
                must_change_password=False,
            )
            db.add(account)
            await db.flush()
            result = Setup(suffix, account.id, [province.id, *(d.id for d in depts)], [d.name for d in depts])
            await db.commit()
            return result
    finally:
        await engine.dispose()


async def run_import(database_url: str, data: bytes, filename: str, setup: Setup) -> dict[str, float | int]:
    from app.accounts.services.imports import ImportRejected, officer_import_commit, officer_import_preview
    from app.db import make_engine, make_sessionmaker
    from app.lib.enums import Role
    from app.lib.security import Principal

    principal = Principal(
        account_id=setup.account_id,
        username=f"bench_{setup.suffix}",
        display_name="基准测试",
        role=Role.AUTHORITY_ADMIN,
        agency_id=setup.agency_ids[0],
        agency_path=f"/{setup.agency_ids[0]}/",
        agency_name=f"基准测试省{setup.suffix}",
        officer_id=None,
        must_change_password=False,
    )
    reset_peak_rss()
    rss_before = rss_mb()
    engine = make_engine(database_url)
    try:
        maker = make_sessionmaker(engine)
        async with maker() as db:
            t0 = time.perf_counter()
            preview = await officer_import_preview(db, principal=principal, data=data, filename=filename)
            t_preview = time.perf_counter() - t0
        if not preview.ok:
            raise SystemExit(f"preview found {len(preview.errors)} errors, first: {preview.errors[:3]}")
        async with maker() as db:
            t0 = time.perf_counter()
            try:
                result = await officer_import_commit(db, principal=principal, data=data, filename=filename)
            except ImportRejected as exc:
                raise SystemExit(f"commit rejected: {exc.preview.errors[:3]}") from exc
            # The request's edge commits (lib/web.transaction_edge): the COMMIT is part of the import.
            await db.commit()
            t_commit = time.perf_counter() - t0
    finally:
        await engine.dispose()
    return {
        "rows": result.imported,
        "bytes": len(data),
        "preview_s": t_preview,
        "commit_s": t_commit,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


async def cleanup(database_url: str, setup: Setup) -> None:
    from sqlalchemy import delete, select

    from app.accounts.models import Account, Agency, Officer, PostingHistory
    from app.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            officers = select(Officer.id).where(Officer.agency_id.in_(setup.agency_ids))
            await db.execute(delete(PostingHistory).where(PostingHistory.officer_id.in_(officers)))
            await db.execute(delete(Officer).where(Officer.agency_id.in_(setup.agency_ids)))
            await db.execute(delete(Account).where(Account.id == setup.account_id))
            await db.execute(delete(Agency).where(Agency.id.in_(setup.agency_ids[1:])))
            await db.execute(delete(Agency).where(Agency.id == setup.agency_ids[0]))
            await db.commit()
    finally:
        await engine.dispose()


def child(args: argparse.Namespace) -> None:
    """One format, in a process of its own: prints a JSON line with the figures."""
    setup_ = Setup(**json.loads(args.setup))
    path = Path(args.child)
    figures = asyncio.run(run_import(args.database_url, path.read_bytes(), path.name, setup_))
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=["csv", "xlsx", "both"], default="both")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--cleanup", action="store_true", help="delete the bench's rows afterwards")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from app.settings import load_settings

    args.database_url = load_settings({**os.environ, "DATABASE_URL": args.database_url}).database_url
    if args.child:
        child(args)
        return

    formats = ["csv", "xlsx"] if args.format == "both" else [args.format]
    print(
        f"database: {args.database_url.split('@')[-1]}  rows per file: {args.rows:,}  "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    setup_ = asyncio.run(setup(args.database_url))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            for n, fmt in enumerate(formats):
                data = rows(args.rows, n * args.rows, setup_.agency_names, args.seed + n)
                path = Path(tmp) / f"officers.{fmt}"
                t0 = time.perf_counter()
                (write_csv if fmt == "csv" else write_xlsx)(path, data)
                made = time.perf_counter() - t0
                del data
                load = os.getloadavg()[0]
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(path),
                        "--setup",
                        json.dumps(setup_.__dict__),
                        "--database-url",
                        args.database_url,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    sys.stderr.write(proc.stdout + proc.stderr)
                    raise SystemExit(f"{fmt} import failed")
                f = json.loads(proc.stdout.strip().splitlines()[-1])
                rows_ = int(f["rows"])
                print(
                    f"{fmt:<5} (load {load:4.1f}) {f['bytes'] / 1e6:6.1f} MB (generated in {made:4.1f} s)  "
                    f"preview {f['preview_s']:6.2f} s = {rows_ / f['preview_s']:>8,.0f} rows/s  "
                    f"commit {f['commit_s']:6.2f} s = {rows_ / f['commit_s']:>8,.0f} rows/s  "
                    f"peak RSS {f['peak_rss_mb']:5.0f} MB (of which before the import {f['rss_before_mb']:.0f} MB)"
                )
    finally:
        if args.cleanup:
            asyncio.run(cleanup(args.database_url, setup_))
            print("bench rows deleted (audit events stay)")


if __name__ == "__main__":
    main()
