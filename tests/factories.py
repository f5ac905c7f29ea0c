"""Test data factories: a small agency tree with one account per role, built straight with the ORM."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from itertools import count

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.accounts.rules import id_check_digit
from app.certificates.models import Certificate
from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType
from app.lib.security import hash_password_sync
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord
from app.training.services import totals_add

PASSWORD = "Passw0rd-test"
_HASH = hash_password_sync(PASSWORD)  # once per session: argon2 is deliberately slow
_seq = count(1)


def make_id_number(region: str = "320102", born: str | None = None, seq: int | None = None) -> str:
    """A synthetic ID number with a valid GB 11643 check digit.

    Numbers asked for by ``seq`` are born on another day than the counted ones: a test's fixed number
    never equals one the counter hands the same test (it wraps every 1,000)."""
    n = next(_seq) if seq is None else seq
    born = born or ("19850612" if seq is None else "19791103")
    first17 = f"{region}{born}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


async def add_agency(
    db: AsyncSession,
    name: str,
    *,
    parent: Agency | None = None,
    region_code: str = "320000",
    level: AgencyLevel = AgencyLevel.PROVINCE,
    kind: AgencyKind = AgencyKind.GOVERNMENT,
    issuing: bool = False,
    enforcement: bool = False,
) -> Agency:
    a = Agency(
        parent_id=parent.id if parent else None,
        name=name,
        region_code=region_code,
        level=level.value,
        kind=kind.value,
        depth=(parent.depth + 1) if parent else 0,
        is_issuing_authority=issuing,
        authority_name=f"{name}司法局" if issuing else "",
        is_enforcement_subject=enforcement,
        enforcement_basis="《中华人民共和国行政处罚法》" if enforcement else "",
    )
    db.add(a)
    await db.flush()
    a.path = f"{parent.path if parent else '/'}{a.id}/"
    await db.flush()
    return a


async def add_officer(
    db: AsyncSession,
    agency: Agency,
    name: str = "张三",
    *,
    staff_type: StaffType = StaffType.CIVIL_SERVANT,
    post: Post = Post.ENFORCEMENT,
    field: str = "市场监管",
    id_number: str | None = None,
) -> Officer:
    idn = id_number or make_id_number()
    o = Officer(
        agency_id=agency.id,
        name=name,
        id_number=idn,
        gender="男" if int(idn[16]) % 2 else "女",
        birth_date=dt.date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14])),
        staff_type=staff_type.value,
        post=post.value,
        field=field,
        area="全区",
        employment_status=EmploymentStatus.ACTIVE.value,
    )
    db.add(o)
    await db.flush()
    db.add(
        PostingHistory(
            officer_id=o.id,
            agency_id=agency.id,
            post=o.post,
            field=o.field,
            area=o.area,
            started_on=dt.date(2020, 1, 1),
        )
    )
    await db.flush()
    return o


async def add_account(
    db: AsyncSession,
    username: str,
    role: Role,
    agency: Agency,
    *,
    officer: Officer | None = None,
    must_change: bool = False,
) -> Account:
    a = Account(
        username=username,
        display_name=username,
        password_hash=_HASH,
        role=role.value,
        agency_id=agency.id,
        officer_id=officer.id if officer else None,
        must_change_password=must_change,
    )
    db.add(a)
    await db.flush()
    return a


async def add_course(
    db: AsyncSession,
    agency: Agency,
    title: str,
    *,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    hours_tenths: int = 20,
    category: str = "general_law",
    created_by: Account | None = None,
) -> TrainingCourse:
    c = TrainingCourse(
        agency_id=agency.id,
        year=starts_on.year,
        title=title,
        category=category,
        hours_tenths=hours_tenths,
        starts_on=starts_on,
        ends_on=ends_on or starts_on,
        provider="",
        verification="sign_in_sheet",
        note="",
        created_by_id=created_by.id if created_by else None,
        created_by_name=created_by.username if created_by else "system",
    )
    db.add(c)
    await db.flush()
    return c


async def add_record(
    db: AsyncSession,
    officer: Officer,
    course: TrainingCourse,
    *,
    attended_on: dt.date | None = None,
    hours_tenths: int | None = None,
    entered_by: Account | None = None,
    batch: TrainingImportBatch | None = None,
) -> TrainingRecord:
    """A plain record (登记) straight into the ledger (and its yearly totals); corrections go through the services."""
    day = attended_on or course.ends_on
    r = TrainingRecord(
        officer_id=officer.id,
        course_id=course.id,
        year=day.year,
        category=course.category,
        attended_on=day,
        hours_tenths=hours_tenths or course.hours_tenths,
        kind="record",
        corrects_id=None,
        reason="",
        generation=0,
        batch_id=batch.id if batch else None,
        entered_by_id=entered_by.id if entered_by else None,
        entered_by_name=entered_by.username if entered_by else "system",
    )
    db.add(r)
    await db.flush()
    await totals_add(db, [(r.year, r.officer_id, r.category, r.hours_tenths)])
    return r


async def add_training(
    db: AsyncSession, agency: Agency, officer: Officer, admin: Account, title: str
) -> tuple[TrainingCourse, TrainingRecord, TrainingImportBatch]:
    """A 2020 course of ``agency``, one imported record of ``officer`` at it, and that import's batch."""
    course = await add_course(db, agency, title, starts_on=dt.date(2020, 6, 1), created_by=admin)
    sha = f"{agency.id:064x}"
    batch = TrainingImportBatch(
        agency_id=admin.agency_id,
        sha256=sha,
        committed_sha256=sha,
        filename="签到表.csv",
        file_type="csv",
        source="web",
        year=2020,
        outcome="committed",
        rows_total=1,
        rows_imported=1,
        rows_rejected=0,
        hours_tenths=course.hours_tenths,
        errors_json="[]",
        created_by_id=admin.id,
        created_by_name=admin.username,
    )
    db.add(batch)
    await db.flush()
    record = await add_record(db, officer, course, entered_by=admin, batch=batch)
    return course, record, batch


@dataclass
class World:
    """省 (issuing) → 市A (→ 市A市场监管局), 市B (sibling); officers in each department; accounts per role."""

    province: Agency
    city_a: Agency
    dept_a: Agency
    city_b: Agency
    dept_b: Agency
    officer_a: Officer
    officer_b: Officer
    authority: Account
    admin_a: Account
    admin_b: Account
    officer_account: Account
    # Training (in 2020, so that tests of the current year start from an empty ledger).
    course_a: TrainingCourse
    course_b: TrainingCourse
    record_a: TrainingRecord
    record_b: TrainingRecord
    batch_a: TrainingImportBatch
    batch_b: TrainingImportBatch
    # Certificates (one valid card each, not signed: enough for scope and access tests).
    cert_a: Certificate
    cert_b: Certificate


async def add_certificate(
    db: AsyncSession,
    officer: Officer,
    agency: Agency,
    authority: Agency,
    number: str,
    *,
    status: str = "valid",
    kind: str = "supervision",  # so that enforcement-card tests start from no card
) -> Certificate:
    c = Certificate(
        number=number,
        kind=kind,
        officer_id=officer.id,
        authority_id=authority.id,
        agency_id=agency.id,
        holder_name=officer.name,
        agency_name=agency.name,
        field=officer.field,
        area=officer.area,
        authority_name=authority.authority_name,
        valid_from=dt.date(2024, 1, 1),
        valid_until=dt.date(2028, 12, 31),
        issued_on=dt.date(2024, 1, 1),
        status=status,
        status_changed_on=dt.date(2024, 1, 1),
        qr_text=f"http://testserver.local/v/{number}#unsigned",
        token="-",
        kid="-",
    )
    db.add(c)
    await db.flush()
    return c


async def build_world(db: AsyncSession) -> World:
    province = await add_agency(db, "江南省", issuing=True)
    city_a = await add_agency(db, "江南省甲市", parent=province, region_code="320100", level=AgencyLevel.CITY)
    dept_a = await add_agency(
        db,
        "甲市市场监督管理局",
        parent=city_a,
        region_code="320100",
        level=AgencyLevel.CITY,
        kind=AgencyKind.DEPARTMENT,
        enforcement=True,
    )
    city_b = await add_agency(db, "江南省乙市", parent=province, region_code="320200", level=AgencyLevel.CITY)
    dept_b = await add_agency(
        db,
        "乙市生态环境局",
        parent=city_b,
        region_code="320200",
        level=AgencyLevel.CITY,
        kind=AgencyKind.DEPARTMENT,
        enforcement=True,
    )
    officer_a = await add_officer(db, dept_a, "李明")
    officer_b = await add_officer(db, dept_b, "王芳", field="生态环境")
    authority = await add_account(db, "sfj_admin", Role.AUTHORITY_ADMIN, province)
    admin_a = await add_account(db, "admin_a", Role.AGENCY_ADMIN, city_a)
    admin_b = await add_account(db, "admin_b", Role.AGENCY_ADMIN, city_b)
    officer_account = await add_account(db, "officer_a", Role.OFFICER, dept_a, officer=officer_a)
    course_a, record_a, batch_a = await add_training(
        db, dept_a, officer_a, admin_a, "甲市2020年行政处罚法培训"
    )
    course_b, record_b, batch_b = await add_training(db, dept_b, officer_b, admin_b, "乙市2020年环保法规培训")
    cert_a = await add_certificate(db, officer_a, dept_a, province, "A2024000001")
    cert_b = await add_certificate(db, officer_b, dept_b, province, "B2024000001")
    await db.commit()
    return World(
        province,
        city_a,
        dept_a,
        city_b,
        dept_b,
        officer_a,
        officer_b,
        authority,
        admin_a,
        admin_b,
        officer_account,
        course_a,
        course_b,
        record_a,
        record_b,
        batch_a,
        batch_b,
        cert_a,
        cert_b,
    )
