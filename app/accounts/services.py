"""Use cases of the accounts domain. One transaction each: load, apply rules, write, audit.

Every function that takes a ``principal`` scopes what it reads and writes to the principal's
agency subtree; an object outside it is reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts import rules
from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.accounts.schemas import (
    AccountIn,
    AccountOut,
    AgencyIn,
    AgencyOut,
    OfficerDetail,
    OfficerIn,
    OfficerMove,
    OfficerOut,
    OfficerUpdate,
    PostingOut,
)
from app.lib.audit import Actor, audit_record
from app.lib.clock import today, utcnow
from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden, NotFound, StaleForm
from app.lib.policy import DEFAULT_POLICY, Policy, policy_from_json
from app.lib.security import (
    Principal,
    burn_password_check,
    hash_password,
    password_policy_error,
    verify_password,
)

# ---------------------------------------------------------------- agencies


def agency_out(a: Agency) -> AgencyOut:
    return AgencyOut(
        id=a.id,
        parent_id=a.parent_id,
        name=a.name,
        short_name=a.short_name,
        region_code=a.region_code,
        level=AgencyLevel(a.level),
        kind=AgencyKind(a.kind),
        depth=a.depth,
        is_enforcement_subject=a.is_enforcement_subject,
        enforcement_basis=a.enforcement_basis,
        is_issuing_authority=a.is_issuing_authority,
        authority_name=a.authority_name,
        is_active=a.is_active,
    )


async def agency_get(db: AsyncSession, principal: Principal, agency_id: int) -> Agency:
    agency = await db.get(Agency, agency_id)
    if agency is None or not principal.can_see_agency_path(agency.path):
        raise NotFound("单位不存在或不在您的管理范围内", field="agency_id")
    return agency


async def agency_tree(db: AsyncSession, principal: Principal) -> list[Agency]:
    stmt = select(Agency).where(Agency.path.startswith(principal.agency_path)).order_by(Agency.path)
    return list((await db.scalars(stmt)).all())


_IN_CHUNK = 1000  # ids per IN list: well inside SQLite's and asyncpg's parameter limits


async def agency_policies(db: AsyncSession, paths: dict[int, str]) -> dict[int, Policy]:
    """Effective policy of each agency (id → path given): its nearest issuing authority's.

    One query per thousand distinct ancestors, whatever the number of agencies asked about.
    """
    wanted = sorted({i for path in paths.values() for i in rules.path_ids(path)})
    authorities: dict[int, str | None] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = await db.execute(
            select(Agency.id, Agency.policy_json).where(
                Agency.id.in_(wanted[start : start + _IN_CHUNK]), Agency.is_issuing_authority.is_(True)
            )
        )
        authorities.update({row.id: row.policy_json for row in rows})
    parsed: dict[int, Policy] = {}
    out: dict[int, Policy] = {}
    for agency_id, path in paths.items():
        # The path runs root first, so the last authority on it is the nearest.
        nearest = next((i for i in reversed(rules.path_ids(path)) if i in authorities), None)
        if nearest is None:
            out[agency_id] = DEFAULT_POLICY
        else:
            if nearest not in parsed:
                parsed[nearest] = policy_from_json(authorities[nearest])
            out[agency_id] = parsed[nearest]
    return out


async def agency_policy(db: AsyncSession, agency: Agency) -> Policy:
    """The policy of the nearest issuing authority at or above ``agency``."""
    return (await agency_policies(db, {agency.id: agency.path})).get(agency.id, DEFAULT_POLICY)


def _agency_errors(data: AgencyIn) -> list[FieldError]:
    errors: list[FieldError] = []
    if data.is_issuing_authority and not data.authority_name.strip():
        errors.append(FieldError("authority_name", "发证机关须填写机关名称（如：某某市司法局）"))
    if data.is_enforcement_subject and not data.enforcement_basis.strip():
        errors.append(FieldError("enforcement_basis", "行政执法主体须填写执法依据"))
    return errors


async def agency_create(db: AsyncSession, *, principal: Principal, data: AgencyIn) -> Agency:
    if not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以维护单位")
    errors = _agency_errors(data)
    if data.parent_id is None:
        raise DomainError("须选择上级单位", field="parent_id")
    parent = await agency_get(db, principal, data.parent_id)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if await db.scalar(select(Agency.id).where(Agency.name == data.name.strip())):
        raise Conflict("单位名称已存在", field="name")
    agency = Agency(
        parent_id=parent.id,
        name=data.name.strip(),
        short_name=data.short_name.strip(),
        region_code=data.region_code,
        level=data.level.value,
        kind=data.kind.value,
        depth=parent.depth + 1,
        is_enforcement_subject=data.is_enforcement_subject,
        enforcement_basis=data.enforcement_basis.strip(),
        is_issuing_authority=data.is_issuing_authority,
        authority_name=data.authority_name.strip(),
    )
    db.add(agency)
    await db.flush()
    agency.path = rules.agency_path(parent.path, agency.id)
    await audit_record(
        db,
        actor=principal.actor,
        action="agency.create",
        entity_type="agency",
        entity_id=agency.id,
        agency_id=agency.id,
        data={"name": agency.name, "parent_id": parent.id, "region_code": agency.region_code},
    )
    await db.commit()
    return agency


async def agency_update(db: AsyncSession, *, principal: Principal, agency_id: int, data: AgencyIn) -> Agency:
    if not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以维护单位")
    agency = await agency_get(db, principal, agency_id)
    errors = _agency_errors(data)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if data.parent_id != agency.parent_id:
        raise DomainError("不支持在此修改上级单位", field="parent_id")
    clash = await db.scalar(select(Agency.id).where(Agency.name == data.name.strip(), Agency.id != agency.id))
    if clash:
        raise Conflict("单位名称已存在", field="name")
    before = agency_out(agency)
    agency.name = data.name.strip()
    agency.short_name = data.short_name.strip()
    agency.region_code = data.region_code
    agency.level = data.level.value
    agency.kind = data.kind.value
    agency.is_enforcement_subject = data.is_enforcement_subject
    agency.enforcement_basis = data.enforcement_basis.strip()
    agency.is_issuing_authority = data.is_issuing_authority
    agency.authority_name = data.authority_name.strip()
    after = agency_out(agency)
    changes = {
        k: [getattr(before, k), getattr(after, k)]
        for k in before.__struct_fields__
        if getattr(before, k) != getattr(after, k)
    }
    await audit_record(
        db,
        actor=principal.actor,
        action="agency.update",
        entity_type="agency",
        entity_id=agency.id,
        agency_id=agency.id,
        data={"changes": changes},
    )
    await db.commit()
    return agency


# ---------------------------------------------------------------- officers


def officer_out(o: Officer, agency_name: str, principal: Principal | None, policy: Policy) -> OfficerOut:
    return OfficerOut(
        id=o.id,
        name=o.name,
        id_number=_visible_id_number(o, principal),
        gender=o.gender,
        birth_date=o.birth_date,
        agency_id=o.agency_id,
        agency_name=agency_name,
        staff_type=StaffType(o.staff_type),
        post=Post(o.post),
        field=o.field,
        area=o.area,
        employment_status=EmploymentStatus(o.employment_status),
        phone=o.phone,
        version=o.version,
        has_photo=o.photo_path is not None,
        may_hold_certificate=policy.staff_type_allowed(StaffType(o.staff_type)),
    )


def _visible_id_number(o: Officer, principal: Principal | None) -> str:
    """Full ID number only to the officer's own agency (its administrators) and the officer themself."""
    if principal is not None and (
        principal.officer_id == o.id or (principal.is_admin and principal.agency_id == o.agency_id)
    ):
        return o.id_number
    return rules.mask_id_number(o.id_number)


@dataclass(frozen=True)
class OfficerFilter:
    q: str = ""
    agency_id: int | None = None
    staff_type: StaffType | None = None
    post: Post | None = None
    employment_status: EmploymentStatus | None = None
    field: str = ""


def _officer_query(principal: Principal, f: OfficerFilter, scope_path: str) -> Select[Officer, str, str]:
    stmt = (
        select(Officer, Agency.name.label("agency_name"), Agency.path.label("agency_path"))
        .join(Agency, Agency.id == Officer.agency_id)
        .where(Agency.path.startswith(scope_path))
    )
    if f.q.strip():
        q = f.q.strip()
        if q.isdigit() or (len(q) == 18 and q[:17].isdigit()):
            stmt = stmt.where(Officer.id_number == rules.normalize_id_number(q))
        else:
            stmt = stmt.where(or_(Officer.name.startswith(q), Officer.name == q))
    if f.staff_type:
        stmt = stmt.where(Officer.staff_type == f.staff_type.value)
    if f.post:
        stmt = stmt.where(Officer.post == f.post.value)
    if f.employment_status:
        stmt = stmt.where(Officer.employment_status == f.employment_status.value)
    if f.field:
        stmt = stmt.where(Officer.field == f.field)
    return stmt


async def officer_list(
    db: AsyncSession, principal: Principal, f: OfficerFilter, *, page: int = 1, per_page: int = 50
) -> tuple[list[OfficerOut], int]:
    scope_path = principal.agency_path
    if f.agency_id is not None:
        scope_path = (await agency_get(db, principal, f.agency_id)).path
    stmt = _officer_query(principal, f, scope_path)
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await db.execute(
            stmt.order_by(Agency.path, Officer.name, Officer.id).limit(per_page).offset((page - 1) * per_page)
        )
    ).all()
    policies = await agency_policies(db, {o.agency_id: path for o, _, path in rows})
    out = [officer_out(o, name, principal, policies.get(o.agency_id, DEFAULT_POLICY)) for o, name, _ in rows]
    return out, total


async def officer_get(db: AsyncSession, principal: Principal, officer_id: int) -> tuple[Officer, Agency]:
    row = (
        await db.execute(
            select(Officer, Agency)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Officer.id == officer_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("执法人员不存在或不在您的管理范围内")
    officer, agency = row
    if principal.officer_id == officer.id:
        return officer, agency
    # An officer's account sits in an agency too, but it manages nobody: it sees only itself.
    if not principal.is_admin or not principal.can_see_agency_path(agency.path):
        raise NotFound("执法人员不存在或不在您的管理范围内")
    return officer, agency


async def officer_detail(db: AsyncSession, principal: Principal, officer_id: int) -> OfficerDetail:
    officer, agency = await officer_get(db, principal, officer_id)
    policy = await agency_policy(db, agency)
    rows = (
        await db.execute(
            select(PostingHistory, Agency.name)
            .join(Agency, Agency.id == PostingHistory.agency_id)
            .where(PostingHistory.officer_id == officer.id)
            .order_by(PostingHistory.started_on.desc(), PostingHistory.id.desc())
        )
    ).all()
    base = officer_out(officer, agency.name, principal, policy)
    return OfficerDetail(
        **{k: getattr(base, k) for k in base.__struct_fields__},
        postings=[
            PostingOut(
                agency_id=p.agency_id,
                agency_name=name,
                post=Post(p.post),
                field=p.field,
                area=p.area,
                started_on=p.started_on,
                ended_on=p.ended_on,
                end_reason=p.end_reason,
            )
            for p, name in rows
        ],
    )


def officer_field_errors(*, name: str, id_number: str | None, field: str, policy: Policy) -> list[FieldError]:
    errors: list[FieldError] = []
    if msg := rules.name_error(name):
        errors.append(FieldError("name", msg))
    if id_number is not None and (msg := rules.id_number_error(id_number)):
        errors.append(FieldError("id_number", msg))
    if field.strip() not in policy.enforcement_fields:
        errors.append(FieldError("field", f"执法类别“{field}”不在本地区的执法类别目录中"))
    return errors


async def officer_create(db: AsyncSession, *, principal: Principal, data: OfficerIn) -> Officer:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以新增执法人员")
    agency = await agency_get(db, principal, data.agency_id)
    policy = await agency_policy(db, agency)
    errors = officer_field_errors(name=data.name, id_number=data.id_number, field=data.field, policy=policy)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    id_number = rules.normalize_id_number(data.id_number)
    if await db.scalar(select(Officer.id).where(Officer.id_number == id_number)):
        raise Conflict("该身份证号码已登记", field="id_number")
    officer = Officer(
        agency_id=agency.id,
        name=data.name.strip(),
        id_number=id_number,
        gender=rules.gender_from_id(id_number),
        birth_date=rules.birth_date_from_id(id_number),
        staff_type=data.staff_type.value,
        post=data.post.value,
        field=data.field.strip(),
        area=data.area.strip(),
        phone=data.phone.strip(),
        employment_status=EmploymentStatus.ACTIVE.value,
    )
    db.add(officer)
    try:
        await db.flush()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict("该身份证号码已登记", field="id_number") from exc
    db.add(
        PostingHistory(
            officer_id=officer.id,
            agency_id=agency.id,
            post=officer.post,
            field=officer.field,
            area=officer.area,
            started_on=data.started_on or today(),
        )
    )
    await audit_record(
        db,
        actor=principal.actor,
        action="officer.create",
        entity_type="officer",
        entity_id=officer.id,
        agency_id=agency.id,
        data={"name": officer.name, "staff_type": officer.staff_type, "post": officer.post},
    )
    await db.commit()
    return officer


def _check_version(officer: Officer, version: int) -> None:
    if officer.version != version:
        raise StaleForm("该记录已被他人修改，请刷新页面后重新编辑", field="version")


async def officer_update(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: OfficerUpdate
) -> Officer:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以修改执法人员信息")
    officer, agency = await officer_get(db, principal, officer_id)
    _check_version(officer, data.version)
    policy = await agency_policy(db, agency)
    errors = officer_field_errors(name=data.name, id_number=None, field=data.field, policy=policy)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    new = {
        "name": data.name.strip(),
        "staff_type": data.staff_type.value,
        "post": data.post.value,
        "field": data.field.strip(),
        "area": data.area.strip(),
        "phone": data.phone.strip(),
    }
    changes = {k: [getattr(officer, k), v] for k, v in new.items() if getattr(officer, k) != v}
    if not changes:
        return officer
    for k, v in new.items():
        setattr(officer, k, v)
    if {"post", "field", "area"} & changes.keys():
        await _rotate_posting(db, officer, officer.agency_id, today(), "岗位信息变更")
    await audit_record(
        db,
        actor=principal.actor,
        action="officer.update",
        entity_type="officer",
        entity_id=officer.id,
        agency_id=officer.agency_id,
        data={"changes": changes},
    )
    try:
        await db.commit()
    except StaleDataError as exc:
        await db.rollback()
        raise StaleForm("该记录已被他人修改，请刷新页面后重新编辑", field="version") from exc
    return officer


async def _rotate_posting(
    db: AsyncSession, officer: Officer, agency_id: int, on: dt.date, reason: str, *, open_new: bool = True
) -> None:
    current = await db.scalar(
        select(PostingHistory)
        .where(PostingHistory.officer_id == officer.id, PostingHistory.ended_on.is_(None))
        .order_by(PostingHistory.id.desc())
        .limit(1)
    )
    if current is not None:
        if on < current.started_on:
            raise DomainError("生效日期不能早于当前任职的开始日期", field="effective_on")
        current.ended_on = on
        current.end_reason = reason
    if open_new:
        db.add(
            PostingHistory(
                officer_id=officer.id,
                agency_id=agency_id,
                post=officer.post,
                field=officer.field,
                area=officer.area,
                started_on=on,
            )
        )


async def officer_move(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: OfficerMove
) -> Officer:
    """调动 (to another agency or post) or end of service (调离 / 退休 / 离职); history is kept."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以办理调动或离岗")
    officer, agency = await officer_get(db, principal, officer_id)
    _check_version(officer, data.version)
    if officer.employment_status != EmploymentStatus.ACTIVE.value:
        raise Conflict("该人员已不在岗，不能再办理调动或离岗", field="employment_status")
    if data.effective_on > today() + dt.timedelta(days=366):
        raise DomainError("生效日期不能晚于一年以后", field="effective_on")
    before = {k: getattr(officer, k) for k in ("agency_id", "post", "field", "area", "employment_status")}
    ending = data.employment_status not in (None, EmploymentStatus.ACTIVE)
    if ending:
        assert data.employment_status is not None
        officer.employment_status = data.employment_status.value
        await _rotate_posting(db, officer, officer.agency_id, data.effective_on, data.reason, open_new=False)
    else:
        target = agency
        if data.to_agency_id is not None and data.to_agency_id != agency.id:
            target = await agency_get(db, principal, data.to_agency_id)
        policy = await agency_policy(db, target)
        if data.field is not None and data.field not in policy.enforcement_fields:
            raise DomainError(f"执法类别“{data.field}”不在本地区的执法类别目录中", field="field")
        officer.agency_id = target.id
        officer.post = (data.post or Post(officer.post)).value
        officer.field = data.field if data.field is not None else officer.field
        officer.area = data.area if data.area is not None else officer.area
        after = {k: getattr(officer, k) for k in before}
        if after == before:
            raise DomainError("调动后的单位、岗位、类别与区域与当前相同", field="to_agency_id")
        await _rotate_posting(db, officer, officer.agency_id, data.effective_on, data.reason)
    after = {k: getattr(officer, k) for k in before}
    await audit_record(
        db,
        actor=principal.actor,
        action="officer.end_service" if ending else "officer.transfer",
        entity_type="officer",
        entity_id=officer.id,
        agency_id=officer.agency_id,
        data={
            "before": before,
            "after": after,
            "effective_on": data.effective_on.isoformat(),
            "reason": data.reason,
        },
    )
    try:
        await db.commit()
    except StaleDataError as exc:
        await db.rollback()
        raise StaleForm("该记录已被他人修改，请刷新页面后重新编辑", field="version") from exc
    return officer


async def officer_set_photo(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: bytes
) -> Officer:
    """证件照: replace the officer's photo (the old file is kept for the audit trail)."""
    from litestar.concurrency import sync_to_thread

    from app.accounts.photos import normalise_photo, store_photo

    if not principal.is_admin:
        raise Forbidden("只有管理员可以上传照片")
    officer, _ = await officer_get(db, principal, officer_id)
    jpeg = await sync_to_thread(normalise_photo, data)
    before = officer.photo_path
    officer.photo_path = await sync_to_thread(store_photo, officer.id, jpeg)
    await audit_record(
        db,
        actor=principal.actor,
        action="officer.photo",
        entity_type="officer",
        entity_id=officer.id,
        agency_id=officer.agency_id,
        data={"before": before, "after": officer.photo_path},
    )
    await db.commit()
    return officer


# ---------------------------------------------------------------- accounts


def account_out(a: Account, agency_name: str) -> AccountOut:
    now = utcnow()
    return AccountOut(
        id=a.id,
        username=a.username,
        display_name=a.display_name,
        role=Role(a.role),
        agency_id=a.agency_id,
        agency_name=agency_name,
        officer_id=a.officer_id,
        is_active=a.is_active,
        must_change_password=a.must_change_password,
        locked=a.locked_until is not None and a.locked_until > now,
        last_login_at=a.last_login_at,
    )


def generate_initial_password() -> str:
    # Letters and digits, no look-alikes: read out over the phone or printed on a slip.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(12))
        if password_policy_error(pw) is None:
            return pw


async def account_list(
    db: AsyncSession, principal: Principal, *, page: int = 1, per_page: int = 50
) -> tuple[list[AccountOut], int]:
    stmt = (
        select(Account, Agency.name)
        .join(Agency, Agency.id == Account.agency_id)
        .where(Agency.path.startswith(principal.agency_path))
    )
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await db.execute(
            stmt.order_by(Agency.path, Account.username).limit(per_page).offset((page - 1) * per_page)
        )
    ).all()
    return [account_out(a, n) for a, n in rows], total


async def account_get(db: AsyncSession, principal: Principal, account_id: int) -> tuple[Account, Agency]:
    row = (
        await db.execute(
            select(Account, Agency)
            .join(Agency, Agency.id == Account.agency_id)
            .where(Account.id == account_id)
        )
    ).one_or_none()
    if row is None or not principal.can_see_agency_path(row[1].path):
        raise NotFound("账号不存在或不在您的管理范围内")
    return row[0], row[1]


async def account_create(
    db: AsyncSession, *, principal: Principal, data: AccountIn, password: str | None = None
) -> tuple[Account, str]:
    """Creates an account with a one-time password that must be changed at first login."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以创建账号")
    if data.role is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以创建发证机关管理员账号", field="role")
    agency = await agency_get(db, principal, data.agency_id)
    if data.role is Role.AUTHORITY_ADMIN and not agency.is_issuing_authority:
        raise DomainError("发证机关管理员账号须属于发证机关", field="agency_id")
    if data.role is Role.OFFICER:
        if data.officer_id is None:
            raise DomainError("执法人员账号须关联一名执法人员", field="officer_id")
        officer, _ = await officer_get(db, principal, data.officer_id)
        if officer.agency_id != agency.id:
            raise DomainError("账号所属单位须与执法人员所在单位一致", field="agency_id")
        if await db.scalar(select(Account.id).where(Account.officer_id == officer.id)):
            raise Conflict("该执法人员已有账号", field="officer_id")
    elif data.officer_id is not None:
        raise DomainError("只有执法人员账号可以关联执法人员", field="officer_id")
    if await db.scalar(select(Account.id).where(func.lower(Account.username) == data.username.lower())):
        raise Conflict("用户名已被使用", field="username")
    initial = password or generate_initial_password()
    account = Account(
        username=data.username,
        display_name=data.display_name.strip(),
        password_hash=await hash_password(initial),
        role=data.role.value,
        agency_id=agency.id,
        officer_id=data.officer_id,
        must_change_password=True,
    )
    db.add(account)
    try:
        await db.flush()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict("用户名已被使用或该执法人员已有账号", field="username") from exc
    await audit_record(
        db,
        actor=principal.actor,
        action="account.create",
        entity_type="account",
        entity_id=account.id,
        agency_id=agency.id,
        data={"username": account.username, "role": account.role, "officer_id": account.officer_id},
    )
    await db.commit()
    return account, initial


async def account_set_active(
    db: AsyncSession, *, principal: Principal, account_id: int, active: bool
) -> Account:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以停用账号")
    account, agency = await account_get(db, principal, account_id)
    if account.id == principal.account_id:
        raise DomainError("不能停用自己的账号", field="account_id")
    if Role(account.role) is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("无权停用发证机关管理员账号")
    if account.is_active == active:
        return account
    account.is_active = active
    account.auth_epoch += 1
    await audit_record(
        db,
        actor=principal.actor,
        action="account.activate" if active else "account.deactivate",
        entity_type="account",
        entity_id=account.id,
        agency_id=agency.id,
        data={"username": account.username},
    )
    await db.commit()
    return account


async def account_reset_password(
    db: AsyncSession, *, principal: Principal, account_id: int
) -> tuple[Account, str]:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以重置密码")
    account, agency = await account_get(db, principal, account_id)
    if Role(account.role) is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("无权重置发证机关管理员的密码")
    initial = generate_initial_password()
    account.password_hash = await hash_password(initial)
    account.must_change_password = True
    account.failed_logins = 0
    account.locked_until = None
    account.auth_epoch += 1
    await audit_record(
        db,
        actor=principal.actor,
        action="account.reset_password",
        entity_type="account",
        entity_id=account.id,
        agency_id=agency.id,
        data={"username": account.username},
    )
    await db.commit()
    return account, initial


class LoginFailed(DomainError):
    status_code = 401
    title = "登录失败"


class AccountLocked(DomainError):
    status_code = 423
    title = "账号已锁定"


async def authenticate(
    db: AsyncSession, *, username: str, password: str, max_failures: int, lock_minutes: int
) -> Account:
    """Checks a password; 5 failures lock the account for 15 minutes (both from settings)."""
    account = await db.scalar(select(Account).where(func.lower(Account.username) == username.strip().lower()))
    generic = "用户名或密码错误"
    if account is None:
        await burn_password_check(password)
        raise LoginFailed(generic)
    now = utcnow()
    if account.locked_until is not None and account.locked_until > now:
        # Spend the same time as a real check, so that a locked account cannot be told apart by timing.
        await burn_password_check(password)
        minutes = max(1, int((account.locked_until - now).total_seconds() // 60) + 1)
        raise AccountLocked(f"登录失败次数过多，账号已锁定，请{minutes}分钟后再试")
    ok = await verify_password(password, account.password_hash)
    if not ok or not account.is_active:
        if not ok:
            account.failed_logins += 1
            locked = account.failed_logins >= max_failures
            if locked:
                account.locked_until = now + dt.timedelta(minutes=lock_minutes)
                account.failed_logins = 0
            await audit_record(
                db,
                actor=Actor(account_id=None, name=username[:64]),
                action="account.lock" if locked else "account.login_failed",
                entity_type="account",
                entity_id=account.id,
                agency_id=account.agency_id,
                data={},
            )
            await db.commit()
            if locked:
                raise AccountLocked(f"登录失败次数过多，账号已锁定{lock_minutes}分钟")
        raise LoginFailed(generic if ok is False else "该账号已停用，请联系管理员")
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    if pwd_needs_rehash(account.password_hash):
        account.password_hash = await hash_password(password)
    await audit_record(
        db,
        actor=Actor(account_id=account.id, name=account.username),
        action="account.login",
        entity_type="account",
        entity_id=account.id,
        agency_id=account.agency_id,
        data={},
    )
    await db.commit()
    return account


async def account_logout(db: AsyncSession, *, principal: Principal) -> None:
    """退出登录: void every session cookie of the account, not just the browser's copy.

    Sessions live in the (encrypted) cookie, so clearing it in the browser does nothing to a copy
    taken earlier; moving the account's epoch on makes every older cookie worthless.
    """
    await db.execute(
        update(Account).where(Account.id == principal.account_id).values(auth_epoch=Account.auth_epoch + 1)
    )
    await audit_record(
        db,
        actor=principal.actor,
        action="account.logout",
        entity_type="account",
        entity_id=principal.account_id,
        agency_id=principal.agency_id,
        data={},
    )
    await db.commit()


def pwd_needs_rehash(h: str) -> bool:
    from app.lib.security import pwd_context

    return bool(pwd_context.needs_update(h))


async def password_change(
    db: AsyncSession, *, principal: Principal, current_password: str, new_password: str
) -> Account:
    account = await db.get(Account, principal.account_id)
    if account is None:
        raise NotFound("账号不存在")
    if not await verify_password(current_password, account.password_hash):
        raise DomainError("当前密码不正确", field="current_password")
    if msg := password_policy_error(new_password, username=account.username):
        raise DomainError(msg, field="new_password")
    if await verify_password(new_password, account.password_hash):
        raise DomainError("新密码不能与当前密码相同", field="new_password")
    account.password_hash = await hash_password(new_password)
    account.must_change_password = False
    account.auth_epoch += 1
    await audit_record(
        db,
        actor=principal.actor,
        action="account.change_password",
        entity_type="account",
        entity_id=account.id,
        agency_id=account.agency_id,
        data={},
    )
    await db.commit()
    return account
