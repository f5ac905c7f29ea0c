"""`app demo-data`: a consistent province, valid people, the documented logins, and no mixing."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.demo.load import DEMO_ACCOUNTS
from app.accounts.demo.people import AS_OF, _People
from app.accounts.demo.tree import _build_tree
from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.accounts.rules import birth_date_from_id, gender_from_id, id_number_error
from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from app.demo.province import DemoDataRefused, generate_demo
from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType
from app.lib.policy import DEFAULT_FIELDS, DEFAULT_POLICY
from app.lib.security import verify_password

OFFICERS = 300
SEED = 7

# A department's enforcement field, read from its name.
FIELD_MARKS = {
    "市场监管": ("市场监督管理局",),
    "生态环境": ("生态环境",),
    "交通运输": ("交通运输",),
    "城市管理": ("城市管理", "住房和城乡建设"),
    "农业农村": ("农业农村",),
    "自然资源": ("自然资源",),
    "应急管理": ("应急管理",),
    "文化市场": ("文化市场",),
    "卫生健康": ("卫生健康",),
    "水利": ("水利",),
}


async def count(db: AsyncSession, model: type) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def load(database_url: str, **kw: object) -> str:
    args: dict[str, object] = {"officers": OFFICERS, "seed": SEED, "if_empty": False, "progress": False}
    args.update(kw)
    return await generate_demo(database_url=database_url, **args)  # type: ignore[arg-type]


async def test_demo_province(db: AsyncSession, database_url: str) -> None:
    report = await load(database_url)
    for demo in DEMO_ACCOUNTS:
        assert demo.username in report and demo.password in report

    agencies = {a.id: a for a in (await db.scalars(select(Agency))).all()}
    officers = list((await db.scalars(select(Officer))).all())
    postings = list((await db.scalars(select(PostingHistory))).all())
    assert len(officers) == OFFICERS == await count(db, Officer)
    assert await count(db, Account) == len(DEMO_ACCOUNTS)

    # The tree: one province, ~8 cities of 3-6 counties, ten departments under every government.
    by_level = Counter((a.level, a.kind) for a in agencies.values())
    assert by_level[(AgencyLevel.PROVINCE, AgencyKind.GOVERNMENT)] == 1
    assert by_level[(AgencyLevel.CITY, AgencyKind.GOVERNMENT)] == 8
    governments = [a for a in agencies.values() if a.kind == AgencyKind.GOVERNMENT]
    departments = [a for a in agencies.values() if a.kind == AgencyKind.DEPARTMENT]
    assert 8 * 3 <= by_level[(AgencyLevel.COUNTY, AgencyKind.GOVERNMENT)] <= 8 * 6
    assert len(departments) == 10 * len(governments)
    assert len({a.name for a in agencies.values()}) == len(agencies)
    for a in agencies.values():
        assert len(a.region_code) == 6 and a.region_code.isdigit()
        if a.parent_id is None:
            assert (a.path, a.depth, a.level) == (f"/{a.id}/", 0, AgencyLevel.PROVINCE)
            assert a.is_issuing_authority and a.authority_name == "江南省司法厅"
            continue
        parent = agencies[a.parent_id]
        assert a.path == f"{parent.path}{a.id}/"
        assert a.depth == parent.depth + 1
        assert parent.kind == AgencyKind.GOVERNMENT
        if a.kind == AgencyKind.DEPARTMENT:
            assert a.level == parent.level and a.region_code == parent.region_code
            assert a.is_enforcement_subject and a.enforcement_basis
            assert not a.is_issuing_authority
        elif a.level == AgencyLevel.CITY:
            assert a.is_issuing_authority and a.authority_name.endswith("司法局")
            assert a.region_code.endswith("00") and a.region_code[:2] == parent.region_code[:2]
        else:
            assert a.level == AgencyLevel.COUNTY and a.region_code[:4] == parent.region_code[:4]

    # People: valid, unique ID numbers that agree with gender, birthday and the agency's region.
    ids = [o.id_number for o in officers]
    assert len(set(ids)) == len(ids)
    fields_by_agency: dict[int, set[str]] = defaultdict(set)
    for o in officers:
        assert id_number_error(o.id_number) is None, o.id_number
        assert o.gender == gender_from_id(o.id_number)
        assert o.birth_date == birth_date_from_id(o.id_number)
        assert 1965 <= o.birth_date.year <= 2000
        agency = agencies[o.agency_id]
        assert agency.kind == AgencyKind.DEPARTMENT
        assert o.id_number[:6] == agency.region_code
        assert o.field in DEFAULT_FIELDS
        assert any(mark in agency.name for mark in FIELD_MARKS[o.field]), (agency.name, o.field)
        assert agency.name.startswith(o.area)
        fields_by_agency[o.agency_id].add(o.field)
    assert all(len(f) == 1 for f in fields_by_agency.values())

    staff = Counter(StaffType(o.staff_type) for o in officers)
    assert set(DEFAULT_POLICY.excluded_staff_types) <= set(staff)
    assert staff[StaffType.CIVIL_SERVANT] > OFFICERS // 2
    posts = Counter(Post(o.post) for o in officers)
    assert posts[Post.ENFORCEMENT] > posts[Post.LEGAL_REVIEW] > 0 and posts[Post.SUPERVISION] > 0
    statuses = Counter(EmploymentStatus(o.employment_status) for o in officers)
    assert statuses[EmploymentStatus.ACTIVE] > OFFICERS * 0.8 and statuses[EmploymentStatus.RETIRED] > 0

    # The edge cases later features need.
    assert any(o.staff_type == StaffType.ASSISTANT and o.post == Post.ENFORCEMENT for o in officers), (
        "an assistant on an enforcement post"
    )
    assert any(
        o.employment_status == EmploymentStatus.RETIRED and o.staff_type == StaffType.CIVIL_SERVANT
        for o in officers
    ), "a retired civil servant"
    assert any(o.post == Post.LEGAL_REVIEW and o.staff_type == StaffType.CIVIL_SERVANT for o in officers)

    # Postings: one current (or last) posting in the officer's own agency; rotations ended before it.
    by_officer: dict[int, list[PostingHistory]] = defaultdict(list)
    for p in postings:
        by_officer[p.officer_id].append(p)
    assert set(by_officer) == {o.id for o in officers}
    rotated = 0
    for o in officers:
        rows = sorted(by_officer[o.id], key=lambda p: p.started_on)
        assert 1 <= len(rows) <= 2
        last = rows[-1]
        assert last.agency_id == o.agency_id and last.field == o.field and last.post == o.post
        assert (last.ended_on is None) == (o.employment_status == EmploymentStatus.ACTIVE)
        if len(rows) == 2:
            rotated += 1
            first = rows[0]
            assert first.ended_on is not None and first.ended_on < last.started_on
            assert first.agency_id != o.agency_id
            assert agencies[first.agency_id].parent_id == agencies[o.agency_id].parent_id
    assert 0 < rotated < OFFICERS * 0.25

    # The documented logins.
    accounts = {a.username: a for a in (await db.scalars(select(Account))).all()}
    assert set(accounts) == {d.username for d in DEMO_ACCOUNTS}
    for demo in DEMO_ACCOUNTS:
        account = accounts[demo.username]
        assert account.role == demo.role and account.is_active and not account.must_change_password
        assert await verify_password(demo.password, account.password_hash)
    root = agencies[accounts["sfj_admin"].agency_id]
    assert accounts["sfj_admin"].role == Role.AUTHORITY_ADMIN and root.parent_id is None
    city = agencies[accounts["shi_admin"].agency_id]
    assert (city.level, city.kind, city.is_issuing_authority) == (
        AgencyLevel.CITY,
        AgencyKind.GOVERNMENT,
        True,
    )
    county = agencies[accounts["xian_admin"].agency_id]
    assert (county.level, county.kind) == (AgencyLevel.COUNTY, AgencyKind.GOVERNMENT)
    assert not county.path.startswith(city.path), "xian_admin must sit in another city"
    zhifa = accounts["zhifa01"]
    assert zhifa.officer_id is not None
    officer = next(o for o in officers if o.id == zhifa.officer_id)
    assert zhifa.agency_id == officer.agency_id
    market = agencies[officer.agency_id]
    assert market.path.startswith(city.path) and market.name.endswith("市场监督管理局")
    assert (officer.staff_type, officer.post, officer.employment_status) == (
        StaffType.CIVIL_SERVANT,
        Post.ENFORCEMENT,
        EmploymentStatus.ACTIVE,
    )

    # The starter banks' imports (one event per bank file), the load and the year-end close of the
    # assessments; the chain holds.
    events = list((await db.scalars(select(AuditEvent))).all())
    assert [e.action for e in events] == ["exam.bank.import"] * 3 + ["demo.load", "assessment.year_closed"]
    chain = await audit_verify(db)
    assert chain.ok and chain.checked == 5
    await db.rollback()  # SQLite: release the write lock before the next load

    # --if-empty leaves a loaded database alone; without it, mixing is refused.
    again = await load(database_url, if_empty=True, officers=50, seed=SEED + 1)
    assert "未载入" in again
    with pytest.raises(DemoDataRefused):
        await load(database_url, officers=50)
    assert await count(db, Officer) == OFFICERS
    assert await count(db, PostingHistory) == len(postings)
    assert await count(db, Agency) == len(agencies)
    assert await count(db, Account) == len(DEMO_ACCOUNTS)
    assert await count(db, AuditEvent) == 5  # unchanged by the refused loads
    await db.rollback()


async def test_demo_ids_continue_after_the_bulk_load(db: AsyncSession, database_url: str) -> None:
    """The bulk path assigns ids itself; the ORM must carry on after them, not collide."""
    await load(database_url, officers=40)
    top = await db.scalar(select(func.max(Officer.id)))
    province = await db.scalar(select(Agency).where(Agency.parent_id.is_(None)))
    assert province is not None and top == 40
    added = Agency(
        parent_id=province.id,
        name="江南省测试局",
        region_code="320000",
        level=AgencyLevel.PROVINCE.value,
        kind=AgencyKind.DEPARTMENT.value,
    )
    db.add(added)
    await db.flush()
    assert added.id == await db.scalar(select(func.count()).select_from(Agency))
    await db.rollback()


def test_demo_is_deterministic() -> None:
    def draw(seed: int) -> list[tuple[object, ...]]:
        rng = random.Random(seed)
        people = _People(rng, _build_tree(rng), date_out=lambda d: d, now=None)
        officers, postings = people.batch(500)
        return officers + postings

    assert draw(SEED) == draw(SEED)
    assert draw(SEED) != draw(SEED + 1)


async def test_demo_training_ledger(db: AsyncSession, database_url: str) -> None:
    """Courses for the closed and the current year; totals agree with the ledger; some officers short."""
    from app.training.models import TrainingCourse, TrainingRecord, TrainingYearTotal
    from app.training.services import totals_check

    await load(database_url)
    assert await count(db, TrainingCourse) == 50
    records = list((await db.scalars(select(TrainingRecord))).all())
    assert records and all(r.kind == "record" and r.hours_tenths > 0 for r in records)
    assert {r.year for r in records} == {AS_OF.year - 1, AS_OF.year}
    assert all(r.attended_on <= AS_OF for r in records if r.year == AS_OF.year)
    assert await totals_check(db) == []
    closed = (
        await db.scalars(select(TrainingYearTotal).where(TrainingYearTotal.year == AS_OF.year - 1))
    ).all()
    hours = [t.general_law + t.special_law + t.new_law for t in closed]
    short = sum(1 for h in hours if h < 400)
    assert 0 < short < len(hours) / 3  # most meet the 40 hours, some do not


async def test_demo_assessments_trigger_each_rule(db: AsyncSession, database_url: str) -> None:
    """zhifa01's officer has an open exit case; the one-year and the gap examples have none."""
    from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase

    report = await load(database_url)
    assert "年度结转已开立退出案件" in report
    zhifa01 = await db.scalar(select(Account).where(Account.username == "zhifa01"))
    assert zhifa01 is not None
    cases = (await db.scalars(select(ExitCase))).all()
    mine = [c for c in cases if c.officer_id == zhifa01.officer_id]
    assert len(mine) == 1 and mine[0].status == "open" and mine[0].year == AS_OF.year - 1
    ratings = (await db.scalars(select(AssessmentRating))).all()
    grades: dict[int, dict[int, str]] = {}
    for r in ratings:
        grades.setdefault(r.officer_id, {})[r.year] = r.grade
    bad = "不合格"
    with_case = {c.officer_id for c in cases}
    last = AS_OF.year - 1
    one_year = [o for o, g in grades.items() if g.get(last) == bad and g.get(last - 1) != bad]
    gap = [
        o
        for o, g in grades.items()
        if g.get(last) == bad and g.get(last - 2) == bad and g.get(last - 1) != bad
    ]
    assert one_year and gap and not (set(one_year) | set(gap)) & with_case
    two = {o for o, g in grades.items() if g.get(last) == bad and g.get(last - 1) == bad}
    assert two == with_case  # the close opened exactly the cases the rule asks for
    assert await count(db, AssessmentFlag) > 0  # the closed year's training shortfalls are flagged


async def test_demo_load_leaves_the_schema_as_it_found_it(db: AsyncSession, database_url: str) -> None:
    """The load drops the bulk tables' secondary indexes (and on PostgreSQL their foreign keys) and
    makes them again from the catalog's definitions: afterwards the schema is the same."""
    from sqlalchemy import inspect

    from app.db import make_engine
    from app.demo.province import BULK_TABLES

    def described(item: Mapping[str, Any]) -> str:  # a partial index's condition by its SQL text
        return repr(
            sorted(
                (k, {o: str(w) for o, w in v.items()} if isinstance(v, dict) else v) for k, v in item.items()
            )
        )

    def read(sync_conn: object) -> dict[str, tuple[list[str], list[str]]]:
        found = inspect(sync_conn)
        return {
            t: (
                sorted(described(i) for i in found.get_indexes(t)),
                sorted(described(k) for k in found.get_foreign_keys(t)),
            )
            for t in BULK_TABLES
        }

    async def schema() -> dict[str, tuple[list[str], list[str]]]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    before = await schema()
    await load(database_url, officers=60)
    assert await schema() == before
    assert all(indexes and keys for indexes, keys in before.values())
    await db.rollback()


async def test_demo_rows_that_break_a_check_constraint_are_refused(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite evaluates the bulk tables' CHECK constraints once over the loaded rows, not row by
    row: a row that breaks one still fails the load, which leaves the database empty."""
    from app.accounts.demo import people

    monkeypatch.setattr(people, "_POSTS", ("enforcement", "not_a_post", "supervision"))
    with pytest.raises(Exception, match=r"(?i)check constraint"):
        await load(database_url, officers=200)
    await db.rollback()
    assert await count(db, Agency) == 0
    assert await count(db, Officer) == 0


async def test_demo_load_leaves_sqlite_in_wal(db: AsyncSession, database_url: str) -> None:
    """The load runs in SQLite's rollback-journal mode (its commit writes each page once) and puts
    the database back in WAL, which a plain connection (not the application's) then finds."""
    import sqlite3

    if not database_url.startswith("sqlite"):
        pytest.skip("journal modes are SQLite's")
    await load(database_url, officers=60)
    plain = sqlite3.connect(database_url.split("///", 1)[1])
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert plain.execute("SELECT count(*) FROM officers").fetchone() == (60,)
    finally:
        plain.close()
    await db.rollback()
