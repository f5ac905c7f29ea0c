"""The public register of certificate holders (公示, seed 000 item 5: 网上查询系统).

What a card prints and its live status: holder's name, agency, post, certificate number, kind,
field, area, status, valid until. Never an ID number, a photo or anything the card does not show.
Searchable by name, number or agency; keyset-paged by number; rate limited per client.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.certificates.models import Certificate
from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib.enums import Post
from app.lib.errors import DomainError, FieldError
from app.rosters.schemas import RegisterEntry

PER_PAGE = 20
_NUMBER = re.compile(r"^[A-Za-z0-9-]{4,40}$")


def effective_status(today: dt.date) -> Any:
    """``certificates.rules.effective_status`` in SQL: valid or suspended past the last day reads 过期."""
    c = Certificate
    return case(
        (
            and_(
                c.status.in_([CertificateStatus.VALID.value, CertificateStatus.SUSPENDED.value]),
                c.valid_until < today,
            ),
            CertificateStatus.EXPIRED.value,
        ),
        else_=c.status,
    )


@dataclass(frozen=True)
class RegisterQuery:
    q: str = ""
    """A name (prefix) or a certificate number (exact)."""
    agency: str = ""
    """Part of the agency's name."""
    status: CertificateStatus | None = CertificateStatus.VALID
    after: str = ""


def parse_register_query(params: dict[str, str]) -> RegisterQuery:
    errors: list[FieldError] = []
    q = str(params.get("q") or "").strip()
    agency = str(params.get("agency") or "").strip()
    after = str(params.get("after") or "").strip()
    raw_status = str(params.get("status", "valid")).strip()
    status: CertificateStatus | None = None
    if raw_status and raw_status != "all":
        found = CertificateStatus.from_label_or_value(raw_status)
        if found is None:
            errors.append(FieldError("status", "证件状态无效"))
        status = found  # type: ignore[assignment]
    if len(q) > 40:
        errors.append(FieldError("q", "姓名或证号不能超过 40 个字符"))
    if len(agency) > 50:
        errors.append(FieldError("agency", "单位名称不能超过 50 个字"))
    if after and not _NUMBER.match(after):
        errors.append(FieldError("after", "翻页参数无效，请从第一页重新查询"))
    if errors:
        raise DomainError("查询条件有误：" + "；".join(e.message for e in errors), errors=errors)
    return RegisterQuery(q=q, agency=agency, status=status, after=after)


async def register_search(
    db: AsyncSession, rq: RegisterQuery, *, today: dt.date, per_page: int = PER_PAGE
) -> tuple[list[RegisterEntry], str | None]:
    """One page of holders in order of certificate number, and the cursor of the next page."""
    c = Certificate
    status = effective_status(today)
    stmt = select(
        c.holder_name, c.agency_name, Officer.post, c.number, c.kind, c.field, c.area, status, c.valid_until
    ).join(Officer, Officer.id == c.officer_id)
    if rq.q:
        if _NUMBER.match(rq.q) and not rq.q.isalpha():
            stmt = stmt.where(c.number == rq.q)
        else:
            stmt = stmt.where(c.holder_name.startswith(rq.q, autoescape=True))
    if rq.agency:
        stmt = stmt.where(c.agency_name.contains(rq.agency, autoescape=True))
    if rq.status is not None:
        stmt = stmt.where(status == rq.status.value)
    if rq.after:
        stmt = stmt.where(c.number > rq.after)
    rows = (await db.execute(stmt.order_by(c.number).limit(per_page + 1))).all()
    entries = [
        RegisterEntry(
            name=r[0],
            agency=r[1],
            post=Post(r[2]).label,
            number=r[3],
            kind=CertificateKind(r[4]).label,
            field=r[5],
            area=r[6],
            status=CertificateStatus(r[7]).label,
            status_code=r[7],
            valid_until=r[8],
        )
        for r in rows[:per_page]
    ]
    nxt = entries[-1].number if len(rows) > per_page else None
    return entries, nxt
