"""The read side's pure parts: roster filters, sort orders, keyset cursors, indicator arithmetic.

No I/O, no session: the services turn a ``RosterFilter`` into SQL, these functions decide what a
filter means, how a cursor is written, and how a ratio is rounded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from app.certificates.rules import CertificateKind
from app.lib.enums import LabeledEnum, Post, StaffType
from app.lib.errors import DomainError, FieldError
from app.lib.policy import GRADE_PRESETS


class ExamFilter(LabeledEnum):
    """资格考试: whether the officer holds an exam qualification valid today."""

    VALID = "valid", "资格有效"
    NONE = "none", "无有效资格"


class TrainingFilter(LabeledEnum):
    """年度学时: the year's net hours against the policy's requirement."""

    MET = "met", "学时达标"
    SHORT = "short", "学时不足"


class StatusFilter(LabeledEnum):
    """在岗状态: one employment status, or every status but 在岗 (the clean-up lists' holders)."""

    ACTIVE = "active", "在岗"
    TRANSFERRED = "transferred", "调离"
    RETIRED = "retired", "退休"
    RESIGNED = "resigned", "离职"
    INACTIVE = "inactive", "非在岗（调离、退休、离职）"


class EligibleFilter(LabeledEnum):
    """Whether the staff type may hold a certificate under the authority's policy."""

    YES = "yes", "可以申领执法证件"
    NO = "no", "不得申领执法证件（工勤、合同、临时、派遣、辅助等）"


class CertFilter(LabeledEnum):
    """执法证件: by the effective status of the officer's cards (of the chosen kind)."""

    VALID = "valid", "持有有效证件"
    NONE = "none", "无有效证件"
    EXPIRING = "expiring", "有效证件即将到期（换证期内）"
    EXPIRED = "expired", "证件已过期"
    SUSPENDED = "suspended", "证件暂扣"
    REVOKED = "revoked", "证件吊销"
    CANCELLED = "cancelled", "证件注销"
    LOST = "lost", "证件遗失作废"
    DUPLICATE = "duplicate", "同类有效证件两个以上"


class ExitFilter(LabeledEnum):
    """退出程序: an exit case (two unqualified years running) not yet closed, or none."""

    OPEN = "open", "退出程序未办结"
    NONE = "none", "无未办结的退出程序"


class RosterSort(LabeledEnum):
    AGENCY = "agency", "按单位"
    NAME = "name", "按姓名"
    NEWEST = "newest", "最新登记在前"


# One update per enum: members of different enums with the same value ("valid") are equal
# as dict keys, so a single dict literal would keep only one of them.

GRADES = tuple(dict.fromkeys([*(g for s in GRADE_PRESETS.values() for g in s.grades), "基本合格"]))
"""Every grade of the policy presets (seed 004's 优秀 / 合格 / 不合格, the civil-service scale), and
基本合格 where a policy adds it."""
FAILING = "failing"
"""The rating filter's value for "a failing grade of the authority's policy" (不合格, or 不称职 on the
civil-service scale): what the dashboard and the ready-made lists link to, whatever the scale."""
FAILING_LABEL = "不合格等次（按发证机关的考核等次）"

PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 200
Q_MAX = 50


@dataclass(frozen=True)
class RosterFilter:
    """One roster view: every field is optional; together they are the shareable URL's query."""

    agency_id: int | None = None
    q: str = ""
    field: str = ""
    staff_type: StaffType | None = None
    post: Post | None = None
    status: StatusFilter | None = None
    eligible: EligibleFilter | None = None
    exam: ExamFilter | None = None
    cert_kind: CertificateKind | None = None
    cert: CertFilter | None = None
    rating: str = ""
    """A grade (优秀 / 合格 / 基本合格 / 不合格 ...) or ``FAILING`` (any failing grade of the policy): of
    ``rating_year``, or of the latest rating when not given."""
    rating_year: int | None = None
    exit: ExitFilter | None = None
    year: int | None = None
    training: TrainingFilter | None = None
    sort: RosterSort = RosterSort.AGENCY

    def query(self, **override: Any) -> dict[str, str]:
        """The non-empty fields as query parameters (enums by value), e.g. for a link."""
        f = replace(self, **override) if override else self
        out: dict[str, str] = {}
        for fl in fields(f):
            value = getattr(f, fl.name)
            if value is None or value == "":
                continue
            if fl.name == "sort" and value is RosterSort.AGENCY:
                continue
            out[fl.name] = value.value if isinstance(value, StrEnum) else str(value)
        return out

    def url(self, base: str = "/rosters", **override: Any) -> str:
        q = self.query(**override)
        return f"{base}?{urlencode(q)}" if q else base


def _enum(raw: str, enum: type[LabeledEnum], name: str, errors: list[FieldError]) -> Any:
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        member = enum.from_label_or_value(raw)
        if member is None:
            errors.append(FieldError(name, f"“{raw[:20]}”不是有效的选项"))
        return member


def parse_filter(params: Mapping[str, str], *, default_year: int) -> RosterFilter:
    """Read a filter from query parameters; every bad value is named in Chinese (DomainError)."""
    errors: list[FieldError] = []

    def text(name: str) -> str:
        return str(params.get(name) or "").strip()

    agency_id: int | None = None
    if text("agency_id"):
        try:
            agency_id = int(text("agency_id"))
        except ValueError:
            errors.append(FieldError("agency_id", "单位编号须为整数"))
    year = default_year
    if text("year"):
        try:
            year = int(text("year"))
        except ValueError:
            year = 0
        if not 2000 <= year <= 2100:
            errors.append(FieldError("year", "年度须在 2000 至 2100 之间"))
    q = text("q")
    if len(q) > Q_MAX:
        errors.append(FieldError("q", f"搜索词不能超过 {Q_MAX} 个字"))
    field = text("field")
    if len(field) > 50:
        errors.append(FieldError("field", "执法类别过长"))
    f = RosterFilter(
        agency_id=agency_id,
        q=q,
        field=field,
        staff_type=_enum(text("staff_type"), StaffType, "staff_type", errors),
        post=_enum(text("post"), Post, "post", errors),
        status=_enum(text("status"), StatusFilter, "status", errors),
        eligible=_enum(text("eligible"), EligibleFilter, "eligible", errors),
        exam=_enum(text("exam"), ExamFilter, "exam", errors),
        cert_kind=_enum(text("cert_kind"), CertificateKind, "cert_kind", errors),
        cert=_enum(text("cert"), CertFilter, "cert", errors),
        year=year,
        training=_enum(text("training"), TrainingFilter, "training", errors),
        sort=_enum(text("sort"), RosterSort, "sort", errors) or RosterSort.AGENCY,
    )
    rating = text("rating")
    if rating and rating != FAILING and rating not in GRADES:
        errors.append(
            FieldError("rating", f"考核等次须为{'、'.join(GRADES)}之一，或 {FAILING}（{FAILING_LABEL}）")
        )
    rating_year: int | None = None
    if text("rating_year"):
        try:
            rating_year = int(text("rating_year"))
        except ValueError:
            rating_year = 0
        if not 2000 <= rating_year <= 2100:
            errors.append(FieldError("rating_year", "考核年度须在 2000 至 2100 之间"))
    f = replace(
        f, rating=rating, rating_year=rating_year, exit=_enum(text("exit"), ExitFilter, "exit", errors)
    )
    if errors:
        raise DomainError("筛选条件有误：" + "；".join(e.message for e in errors), errors=errors)
    return f


# ---------------------------------------------------------------- keyset cursors


def sort_key(sort: RosterSort, row: Mapping[str, Any]) -> list[Any]:
    """The values of the row that its sort order compares (id last: unique, so ties never skip)."""
    if sort is RosterSort.AGENCY:
        return [row["agency_id"], row["name"], row["officer_id"]]
    if sort is RosterSort.NAME:
        return [row["name"], row["officer_id"]]
    return [row["officer_id"]]


_KEY_SHAPES: dict[RosterSort, tuple[type, ...]] = {
    RosterSort.AGENCY: (int, str, int),
    RosterSort.NAME: (str, int),
    RosterSort.NEWEST: (int,),
}


def encode_cursor(sort: RosterSort, key: list[Any]) -> str:
    raw = json.dumps([sort.value, *key], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: RosterSort, cursor: str) -> list[Any]:
    """The key a cursor carries; a cursor from another sort order or a mangled one is refused."""
    bad = DomainError("翻页参数无效，请从第一页重新查询", field="after")
    if len(cursor) > 400:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    shape = _KEY_SHAPES[sort]
    if (
        not isinstance(data, list)
        or len(data) != len(shape) + 1
        or data[0] != sort.value
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(data[1:], shape, strict=True))
    ):
        raise bad
    return list(data[1:])


# ---------------------------------------------------------------- indicators


def percent(part: int, whole: int) -> float | None:
    """A share in percent to one decimal; None when there is nothing to divide by."""
    if whole <= 0:
        return None
    return round(part * 100 / whole, 1)


def legal_review_ok(legal_review: int, enforcement: int, minimum: float) -> bool | None:
    """Seed 003 indicator 63: legal-review staff at least ``minimum`` (5%) of enforcement staff."""
    if enforcement <= 0:
        return None
    return legal_review >= minimum * enforcement


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later, or the month's last day when it has none (31 Aug + 6 → 28/29 Feb)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)
