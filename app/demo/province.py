"""Load the demo province into an empty database: one transaction for every domain's demo rows,
then the last closed year is closed with the real year-end pass.

Everything follows from the seed, so a seed always gives the same province, people and ID numbers.
The domains' demo modules write plain tuples through ``_BulkWriter`` (COPY on PostgreSQL,
executemany on SQLite) with ids assigned by them, so 200 000 officers take seconds; the few ORM
rows (accounts, the exam session, the audit event) go in the same transaction.

This is a job like a console command: it opens its own engine (the tests hand it their database)
and commits its own work.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.accounts.demo.load import (
    DEMO_ACCOUNTS,
    DemoAccount,
    PeopleLoaded,
    Progress,
    add_demo_accounts,
    hash_demo_passwords,
    load_people_demo,
)
from app.accounts.demo.people import AS_OF, _Special
from app.accounts.models import Agency, Officer
from app.accounts.services.officer_status import officer_status_triggers_held
from app.assessments.demo import AssessmentLoaded, load_assessment_demo
from app.audit.services import audit_record
from app.certificates.demo import TABLES as CERTIFICATE_TABLES
from app.certificates.demo import CertificatesLoaded, prepare_signing, start_certificates_demo
from app.db import make_engine, make_sessionmaker
from app.demo import sqlite_load
from app.exams.demo import ExamsLoaded, load_exam_demo
from app.lib.actor import SYSTEM
from app.lib.bulk import BulkLoad, Row
from app.lib.clock import utcnow
from app.training.demo import TrainingLoaded, load_training_demo

BULK_TABLES = (
    "officers",
    "posting_history",
    "training_records",
    "exam_qualifications",
    "certificates",
    "certificate_events",
    "assessment_ratings",
)
"""The tables the load fills by the hundred thousand (SQLite builds their indexes after the rows)."""


class DemoDataRefused(Exception):
    """The database already holds agencies: demo data is never mixed into real (or other demo) data.

    `app demo-data` prints the reason, not a traceback, and exits 1.
    """

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Step:
    """One step of the load as the report shows it: wall time and the rows written per table."""

    name: str
    seconds: float = 0.0
    cpu: float = 0.0
    """CPU seconds of this process (all its threads) and of its signing workers; not the PostgreSQL server's."""
    tables: dict[str, int] = dc_field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def count(self, table: str, rows: int) -> None:
        self.tables[table] = self.tables.get(table, 0) + rows


class _Steps:
    """Times the load step by step; the bulk writer counts each step's rows as it writes them."""

    def __init__(self) -> None:
        self.done: list[Step] = []
        self.current: Step | None = None
        self.worker_cpu = 0.0  # CPU of worker processes, counted in their steps
        self._started = (0.0, 0.0)

    @contextmanager
    def __call__(self, name: str) -> Iterator[Step]:
        step = self.start(name)
        try:
            yield step
        finally:
            self.stop()

    def start(self, name: str) -> Step:
        self.current = Step(name)
        self._started = time.perf_counter(), time.process_time()
        return self.current

    def stop(self) -> None:
        step = self.current
        if step is None:
            return
        step.seconds = time.perf_counter() - self._started[0]
        step.cpu = time.process_time() - self._started[1]
        self.current = None
        self.done.append(step)

    def count(self, table: str, rows: int) -> None:
        if self.current is not None:
            self.current.count(table, rows)


class _BulkWriter:
    """Writes tuples through the driver connection inside the session's transaction."""

    def __init__(self, conn: AsyncConnection, driver: Any, steps: _Steps):
        self.dialect = conn.dialect.name
        self.driver = driver
        self.steps = steps
        self.held: list[tuple[str, str]] = []  # (index, its CREATE statement)
        self.written: list[str] = []  # the tables, in their first write's order
        self.checks_held = False

    async def write(self, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        if not rows:
            return
        self.steps.count(table, len(rows))
        if table not in self.written:
            self.written.append(table)
        if self.dialect == "postgresql":
            await self.driver.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        marks = ", ".join("?" for _ in columns)
        cursor = await self.driver.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            rows,
        )
        await cursor.close()

    async def before_load(self) -> None:
        if self.dialect == "sqlite":
            self.checks_held = await sqlite_load.prepare(self.driver)

    async def check_tables(self, conn: AsyncConnection) -> None:
        """SQLite: the CHECK constraints held off for the load, checked over the loaded rows."""
        if self.checks_held:
            self.checks_held = False
            await sqlite_load.check_tables(conn, self.written)

    async def hold_indexes(self, conn: AsyncConnection, tables: Sequence[str]) -> None:
        """Drop the secondary indexes of ``tables`` (and on PostgreSQL their foreign keys) until
        ``restore_indexes``, which makes them again from their own definitions in the catalog.

        One sorted index build over the loaded rows costs less than inserting the rows one by one
        in random order (names, ID numbers), and one join that validates a re-added foreign key
        less than a lookup and a row lock per row (on PostgreSQL 60 % of a COPY of postings). The
        checks are not skipped: a unique index checks its rows when made, a foreign key all rows
        when added. All of it is in the load's transaction: a failed load rolls back to the schema
        as it was. Primary keys, unique constraints and SQLite's foreign keys stay.
        """
        names = ", ".join(f"'{t}'" for t in tables)
        if self.dialect == "sqlite":
            found = await conn.execute(
                text(
                    f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({names})"
                )
            )
            self.held = [(f'DROP INDEX "{name}"', sql) for name, sql in found]
        else:
            keys = await conn.execute(
                text(
                    "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                    f"WHERE c.contype = 'f' AND c.conrelid::regclass::text IN ({names}) ORDER BY c.conname"
                )
            )
            indexes = await conn.execute(
                text(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    f"WHERE i.indrelid::regclass::text IN ({names}) AND NOT i.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1"
                )
            )
            self.held = [(f'DROP INDEX "{name}"', sql) for name, sql in indexes] + [
                (
                    f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"',
                    f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {sql}',
                )
                for table, name, sql in keys
            ]
        for drop, _make in self.held:
            await conn.exec_driver_sql(drop)

    async def restore_indexes(self, conn: AsyncConnection) -> None:
        for _drop, make in self.held:
            await conn.exec_driver_sql(make)
        self.held = []

    async def after_load(self, conn: AsyncConnection, tables: Sequence[str]) -> None:
        if self.dialect != "postgresql":
            return  # SQLite's INTEGER PRIMARY KEY continues from max(rowid) by itself
        for table in tables:
            # Ids were assigned here: move the serial/identity sequence past them.
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {table}"
                )
            )
        await conn.execute(text(f"ANALYZE {', '.join(tables)}"))


def _bound_values(dialect: Dialect) -> tuple[Callable[[Any], Any], Any]:
    """How dates and the load's timestamp are bound on this dialect (SQLite stores text)."""
    now = utcnow()
    if dialect.name != "sqlite":
        return (lambda d: d), now
    date_proc = Officer.__table__.c.birth_date.type.dialect_impl(dialect).bind_processor(dialect)
    ts_proc = Officer.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert date_proc is not None and ts_proc is not None
    # A province repeats a few thousand distinct dates hundreds of thousands of times.
    return functools.cache(date_proc), ts_proc(now)


def _no_progress(_description: str, _completed: int, _total: int) -> None:
    return None


@dataclass
class _Loaded:
    people: PeopleLoaded
    accounts: list[tuple[DemoAccount, str]] = dc_field(default_factory=list)  # with where it sits
    training: TrainingLoaded = dc_field(default_factory=TrainingLoaded)
    certificates: CertificatesLoaded = dc_field(default_factory=CertificatesLoaded)
    exams: ExamsLoaded = dc_field(default_factory=ExamsLoaded)
    assessments: AssessmentLoaded = dc_field(default_factory=AssessmentLoaded)
    cases_opened: int = 0

    @property
    def specials(self) -> list[tuple[_Special, int, str]]:
        return self.people.specials


async def generate_demo(
    *,
    officers: int,
    seed: int,
    if_empty: bool,
    progress: Progress | bool = False,
    database_url: str | None = None,
) -> str:
    """Load the demo province into an empty database and return a report naming the demo logins.

    ``officers`` is the head count including the five fixed officers (so at least five are made).
    With ``if_empty`` an existing tree is left alone; without it, existing data is refused.
    ``progress``: the console's ``update(description, completed, total)``, or nothing.
    The report ends with the time and the rows of each step.
    """
    from app.settings import get_settings

    if database_url is None:
        database_url = get_settings().database_url
    update = progress if callable(progress) else _no_progress
    started = time.perf_counter()
    steps = _Steps()
    engine = make_engine(database_url)
    try:
        async with sqlite_load.rollback_journal(engine), make_sessionmaker(engine)() as session:
            conn = await session.connection()
            if conn.dialect.name == "postgresql":
                # Two loads at once would both see an empty table and then collide on the ids.
                await conn.execute(text("LOCK TABLE agencies IN SHARE ROW EXCLUSIVE MODE"))
            existing = await session.scalar(select(Agency.name).order_by(Agency.id).limit(1))
            if existing is not None:
                if if_empty:
                    return f"数据库中已有单位（{existing} 等），未载入演示数据（--if-empty）。"
                raise DemoDataRefused(
                    f"数据库中已有单位（{existing} 等）：演示数据只能载入空数据库，不会与现有数据混在一起。"
                    "请换一个空数据库，或加 --if-empty 跳过。"
                )
            loaded = await _load(session, conn, officers=officers, seed=seed, update=update, steps=steps)
            with steps("提交"):
                await session.commit()
            # The last closed year is closed with the real year-end pass: the exit cases are open at once.
            from app.assessments.services.closing import close_year
            from app.lib.security import system_principal

            with steps(f"{AS_OF.year - 1} 年度结转") as step:
                closed = await close_year(session, principal=system_principal(), year=AS_OF.year - 1)
                await session.commit()
            step.count("exit_cases", closed.cases_opened)
            step.count("assessment_flags", closed.flags_added)
            loaded.cases_opened = closed.cases_opened
    finally:
        await engine.dispose()
    return _report(
        loaded,
        seed=seed,
        seconds=time.perf_counter() - started,
        steps=steps.done,
        worker_cpu=steps.worker_cpu,
    )


async def _load_rows(
    conn: AsyncConnection,
    *,
    officers: int,
    seed: int,
    update: Progress,
    steps: _Steps,
    on_rows_written: Callable[[], None],
) -> _Loaded:
    """Every domain's bulk rows: agencies, officers, postings, training, certificates, ratings.
    ``on_rows_written`` is called once they are, before the indexes and status columns are made."""
    from app.settings import get_settings

    settings = get_settings()
    prepare_signing(officers)
    raw = await conn.get_raw_connection()
    writer = _BulkWriter(conn, raw.driver_connection, steps)
    await writer.before_load()
    date_out, now = _bound_values(conn.dialect)
    run = BulkLoad(conn, writer.write, seed, AS_OF, date_out, now)
    await writer.hold_indexes(conn, BULK_TABLES)
    with steps("单位、执法人员、任职记录"):
        people = await load_people_demo(run, officers=officers, progress=update)
    loaded = _Loaded(people=people)
    tree = people.tree
    # The officers' status columns are rebuilt once at the end, not by a trigger per chunk or row.
    async with officer_status_triggers_held(conn):
        update("执法证件", 0, 1)
        with steps("执法资格、执法证件编排（开始签名）"):
            cards = await start_certificates_demo(
                run, officers=people.roster, secret_key=settings.secret_key, base_url=settings.public_base_url
            )
        try:
            # The cards are signed in worker processes meanwhile.
            update("培训学时", 0, 1)
            with steps("培训课程与学时"):
                loaded.training = await load_training_demo(
                    run, province_id=tree.province.id, fields=sorted({d.field for d in tree.departments})
                )
            update("培训学时", 1, 1)
            with steps("年度考核结果"):
                loaded.assessments = await load_assessment_demo(
                    run,
                    zhifa01_officer_id=people.specials[0][1],
                    reserved={officer_id for _, officer_id, _ in people.specials},
                    market_id=people.market.id,
                )
            with steps("执法证件写入（签名完成后）") as step:
                loaded.certificates = await cards.finish()
            step.cpu += loaded.certificates.worker_cpu  # signed in worker processes
            steps.worker_cpu += loaded.certificates.worker_cpu
        finally:
            cards.close()
        on_rows_written()
        if writer.dialect == "sqlite":  # its rebuild seeks the sources' indexes, officer by officer
            with steps("约束检查"):
                await writer.check_tables(conn)
            with steps("索引重建"):
                await writer.restore_indexes(conn)
        steps.start("执法人员状态列（一次重算）")
    steps.stop()
    if writer.held:  # PostgreSQL: after the rebuild, which then rewrote officers with fewer indexes
        with steps("索引与外键重建"):
            await writer.restore_indexes(conn)
    update("执法证件", 1, 1)
    with steps("编号序列、统计信息"):
        await writer.after_load(
            conn,
            (
                "agencies",
                "officers",
                "posting_history",
                "training_courses",
                "training_records",
                *CERTIFICATE_TABLES,
                "assessment_ratings",
            ),
        )
    return loaded


async def _load(
    session: AsyncSession,
    conn: AsyncConnection,
    *,
    officers: int,
    seed: int,
    update: Progress,
    steps: _Steps,
) -> _Loaded:
    hashing: asyncio.Future[list[str]] | None = None

    def start_hashing() -> None:
        # argon2 is slow on purpose (1.4 s of CPU for the four): hashed in threads while the
        # database makes the indexes and status columns, when a core is free; while the rows are
        # drawn and signed both are busy.
        nonlocal hashing
        hashing = hash_demo_passwords()

    try:
        loaded = await _load_rows(
            conn, officers=officers, seed=seed, update=update, steps=steps, on_rows_written=start_hashing
        )
    except BaseException:
        if hashing is not None:
            with suppress(Exception):
                await hashing
        raise
    people = loaded.people
    with steps("演示账号") as step:
        hashes = await (hashing or hash_demo_passwords())
        loaded.accounts = await add_demo_accounts(session, people, hashes)
        step.count("accounts", len(loaded.accounts))
    with steps("考试题库、考试场次") as step:
        loaded.exams = await load_exam_demo(
            session, authority_id=people.tree.province.id, department_id=people.market.id
        )
        step.count("exam_questions", loaded.exams.questions)
        step.count("exam_enrolments", loaded.exams.enrolled)

    with steps("审计记录") as step:
        await audit_record(
            session,
            actor=SYSTEM,
            action="demo.load",
            entity_type="demo",
            entity_id=seed,
            agency_id=people.tree.province.id,
            data={
                "seed": seed,
                "agencies": people.agencies,
                "officers": people.officers,
                "postings": people.postings,
                "accounts": [d.username for d in DEMO_ACCOUNTS],
            },
        )
        step.count("audit_events", 1)
    return loaded


def _status_label(status: str) -> str:
    from app.certificates.public import STATUS_LABELS
    from app.certificates.rules import CertificateStatus

    return STATUS_LABELS[CertificateStatus(status)]


def _report(
    loaded: _Loaded, *, seed: int, seconds: float, steps: Sequence[Step], worker_cpu: float = 0.0
) -> str:
    width = max(len(a.username) for a in DEMO_ACCOUNTS)
    pw_width = max(len(a.password) for a in DEMO_ACCOUNTS)
    lines = [
        f"演示数据已载入（种子 {seed}，用时 {seconds:.1f} 秒）：",
        f"  单位 {loaded.people.agencies} 个：人民政府 {loaded.people.governments} 个（其中发证机关 {loaded.people.authorities} 个），"
        f"执法部门 {loaded.people.departments} 个",
        f"  执法人员 {loaded.people.officers} 人，任职记录 {loaded.people.postings} 条",
        f"  培训课程 {loaded.training.courses} 门，培训学时记录 {loaded.training.records} 条"
        f"（{AS_OF.year - 1} 年度已结束，{AS_OF.year} 年度截至 {AS_OF.isoformat()}）",
        f"  执法资格（历史考试合格）{loaded.certificates.qualifications} 人，执法证件 {loaded.certificates.certificates} 张"
        + "".join(
            f"，{_status_label(k)} {v}" for k, v in sorted((loaded.certificates.by_status or {}).items())
        ),
        "  公开核验页示例："
        + "，".join(
            f"{_status_label(k)} /v/{v}" for k, v in sorted((loaded.certificates.examples or {}).items())
        ),
        f"  执法资格考试：题库试题 {loaded.exams.questions} 道，开放中的考试场次 1 个"
        f"（zhifa01 所在部门 {loaded.exams.enrolled} 人已报名，zhifa01 可在“我的考试”中作答）",
        f"  年度考核结果 {loaded.assessments.ratings} 条（{AS_OF.year - 2}、{AS_OF.year - 1} 年度），"
        f"{AS_OF.year - 1} 年度结转已开立退出案件 {loaded.cases_opened} 件",
        "演示账号（无需首次改密）：",
    ]
    for demo, where in loaded.accounts:
        lines.append(f"  {demo.username:<{width}}  {demo.password:<{pw_width}}  {demo.role.label} · {where}")
    lines.append("边界样例人员：")
    for spec, officer_id, id_number in loaded.specials:
        lines.append(f"  #{officer_id} {spec.name}（{id_number}）：{spec.note}")
    lines.append("年度考核样例人员（/assessments/officers/编号）：")
    for note, officer_id in loaded.assessments.examples:
        lines.append(f"  #{officer_id}：{note}")
    lines.extend(_step_table(steps, seconds, worker_cpu))
    return "\n".join(lines)


def _step_table(steps: Sequence[Step], seconds: float, worker_cpu: float) -> list[str]:
    """The per-step breakdown: time, rows, and the rows of each table the step wrote."""
    total = "合计（含连接与检查）"
    width = max(_columns(n) for n in [total, *(s.name for s in steps)])
    lines = [
        "各步骤用时与行数：",
        f"  {_pad('步骤', width)}  {_pad('用时（秒）', 10, right=True)}  {_pad('CPU（秒）', 9, right=True)}"
        f"  {_pad('行数', 11, right=True)}  各表行数",
    ]
    for s in steps:
        tables = "，".join(f"{t} {n:,}" for t, n in s.tables.items())
        lines.append(
            f"  {_pad(s.name, width)}  {s.seconds:>10.2f}  {s.cpu:>9.2f}  {s.rows:>11,}  {tables}".rstrip()
        )
    lines.append(
        f"  {_pad(total, width)}  {seconds:>10.2f}  {time.process_time() + worker_cpu:>9.2f}  {sum(s.rows for s in steps):>11,}"
    )
    return lines


def _columns(text: str) -> int:
    """Columns on a terminal: a CJK character takes two."""
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    space = " " * max(0, width - _columns(text))
    return space + text if right else text + space
