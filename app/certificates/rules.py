"""The rules of certificates (行政执法证 / 行政执法监督证): statuses, transitions, dates and numbers.

Pure functions over plain values: no I/O, no session, no framework. Services load a certificate,
ask these functions what is allowed, write the result and audit it.

Statuses. A certificate stores one of 有效 · 暂扣 · 吊销 · 注销 · 遗失作废 (``expired`` may also be
stored by an import, but is never required): expiry needs no job, ``effective_status`` derives 过期
from the date, so a card past its ``valid_until`` reads expired the day after its last valid day.

Transitions (``transition``) are checked against the *effective* status:

=============  ===============================  =========
action         from                             to
=============  ===============================  =========
suspend 暂扣    valid                            suspended
restore 恢复    suspended                        valid
revoke 吊销     valid, suspended, expired        revoked
cancel 注销     valid, suspended, expired        cancelled
declare_lost   valid                            lost
renew 换发      valid (window: ``renewal_open``)  valid
=============  ===============================  =========

Revoked, cancelled and lost are final: a lost card is replaced by reissue under a new number
(a new certificate), never by bringing the old one back. A revocation found after expiry (e.g. a
card got by fraud) is still recorded, because it starts the reapplication bar. An expired card
cannot be renewed: the holder applies again.

Periods follow the Civil Code (民法典 arts. 201–203): a period in years ends on the corresponding
day of the last year, or on the last day of that month when there is none (29 Feb → 28 Feb).
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from app.lib.enums import LABELS, LabeledEnum


class CertificateKind(LabeledEnum):
    """证件种类: the two-certificate database (seed 000 item 5)."""

    ENFORCEMENT = "enforcement"
    SUPERVISION = "supervision"

    @property
    def code(self) -> str:
        """One letter used in the QR payload and, by default, in the ``{kind}`` number field."""
        return _KIND_CODES[self]

    @classmethod
    def from_code(cls, code: str) -> CertificateKind:
        for kind, c in _KIND_CODES.items():
            if c == code:
                return kind
        raise ValueError(f"未知的证件种类代码“{code}”")


_KIND_CODES = {CertificateKind.ENFORCEMENT: "E", CertificateKind.SUPERVISION: "S"}


class CertificateStatus(LabeledEnum):
    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    LOST = "lost"


class CertificateAction(LabeledEnum):
    SUSPEND = "suspend"
    RESTORE = "restore"
    REVOKE = "revoke"
    CANCEL = "cancel"
    DECLARE_LOST = "declare_lost"
    RENEW = "renew"


class CancelReason(LabeledEnum):
    """注销 grounds (DOMAIN: left the post, transferred, retired, qualification removed)."""

    LEFT_POST = "left_post"
    TRANSFERRED = "transferred"
    RETIRED = "retired"
    QUALIFICATION_REMOVED = "qualification_removed"


_LABELS: dict[StrEnum, str] = {
    CertificateKind.ENFORCEMENT: "行政执法证",
    CertificateKind.SUPERVISION: "行政执法监督证",
    CertificateStatus.VALID: "有效",
    CertificateStatus.SUSPENDED: "暂扣",
    CertificateStatus.REVOKED: "吊销",
    CertificateStatus.CANCELLED: "注销",
    CertificateStatus.EXPIRED: "过期",
    CertificateStatus.LOST: "遗失作废",
    CertificateAction.SUSPEND: "暂扣",
    CertificateAction.RESTORE: "恢复（发还证件）",
    CertificateAction.REVOKE: "吊销",
    CertificateAction.CANCEL: "注销",
    CertificateAction.DECLARE_LOST: "挂失（遗失作废）",
    CertificateAction.RENEW: "换发（延续有效期）",
    CancelReason.LEFT_POST: "离开执法岗位",
    CancelReason.TRANSFERRED: "调离",
    CancelReason.RETIRED: "退休",
    CancelReason.QUALIFICATION_REMOVED: "取消执法资格",
}
LABELS.update(_LABELS)

FINAL_STATUSES = frozenset({CertificateStatus.REVOKED, CertificateStatus.CANCELLED, CertificateStatus.LOST})


class TransitionRefused(ValueError):
    """The action is not allowed from the current status; ``message`` says why, in Chinese."""

    def __init__(self, message: str, *, current: CertificateStatus, action: CertificateAction) -> None:
        super().__init__(message)
        self.message = message
        self.current = current
        self.action = action


# ---------------------------------------------------------------- status and transitions


def effective_status(
    stored_status: CertificateStatus | str, valid_until: dt.date, today: dt.date
) -> CertificateStatus:
    """The status a reader sees today: a valid or suspended card past its last day reads 过期."""
    status = CertificateStatus(stored_status)
    if status in (CertificateStatus.VALID, CertificateStatus.SUSPENDED) and today > valid_until:
        return CertificateStatus.EXPIRED
    return status


S, A = CertificateStatus, CertificateAction

TRANSITIONS: dict[tuple[CertificateStatus, CertificateAction], CertificateStatus] = {
    (S.VALID, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.RESTORE): S.VALID,
    (S.VALID, A.REVOKE): S.REVOKED,
    (S.SUSPENDED, A.REVOKE): S.REVOKED,
    (S.EXPIRED, A.REVOKE): S.REVOKED,
    (S.VALID, A.CANCEL): S.CANCELLED,
    (S.SUSPENDED, A.CANCEL): S.CANCELLED,
    (S.EXPIRED, A.CANCEL): S.CANCELLED,
    (S.VALID, A.DECLARE_LOST): S.LOST,
    (S.VALID, A.RENEW): S.VALID,
}
"""Every allowed (effective status, action) pair and the status it leads to. Anything else is refused."""

_FINAL_REASONS = {
    S.REVOKED: "证件已被吊销，不能再办理任何变更",
    S.CANCELLED: "证件已注销，不能再办理任何变更",
    S.LOST: "证件已遗失作废，不能再办理任何变更；如需用证，请办理补发（启用新证号）",
}

_REFUSALS: dict[tuple[CertificateStatus, CertificateAction], str] = {
    (S.SUSPENDED, A.SUSPEND): "证件已处于暂扣状态，不能重复暂扣",
    (S.EXPIRED, A.SUSPEND): "证件已过期，无需暂扣",
    (S.VALID, A.RESTORE): "证件未被暂扣，无需恢复",
    (S.EXPIRED, A.RESTORE): "证件已过期，不能恢复；请重新申领",
    (S.SUSPENDED, A.DECLARE_LOST): "暂扣期间证件由发证机关收存，不能挂失",
    (S.EXPIRED, A.DECLARE_LOST): "证件已过期，无需挂失",
    (S.SUSPENDED, A.RENEW): "证件处于暂扣状态，恢复后方可换发",
    (S.EXPIRED, A.RENEW): "证件已过期，不能换发；请重新申领",
}


def transition(current: CertificateStatus | str, action: CertificateAction | str) -> CertificateStatus:
    """The status after ``action`` from the *effective* ``current`` status, or ``TransitionRefused``."""
    status, act = CertificateStatus(current), CertificateAction(action)
    target = TRANSITIONS.get((status, act))
    if target is not None:
        return target
    reason = _FINAL_REASONS.get(status) or _REFUSALS.get(
        (status, act), f"{status.label}状态的证件不能{act.label}"
    )
    raise TransitionRefused(reason, current=status, action=act)


def allowed_actions(current: CertificateStatus | str) -> list[CertificateAction]:
    """The actions a page may offer for a card in the given effective status, in table order."""
    status = CertificateStatus(current)
    return [a for (s, a) in TRANSITIONS if s == status]


# ---------------------------------------------------------------- dates


def add_years(day: dt.date, years: int) -> dt.date:
    """The corresponding day ``years`` later; 29 Feb → 28 Feb when the target year has none."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def add_months(day: dt.date, months: int) -> dt.date:
    """The corresponding day ``months`` later (or earlier), or the last day of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    next_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = (next_first - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


class Validity(NamedTuple):
    valid_from: dt.date
    valid_until: dt.date
    """Last valid day, inclusive."""


def validity(issued_on: dt.date, years: int) -> Validity:
    """Validity of a card issued on ``issued_on`` for ``years`` years: the day before the anniversary.

    2026-03-01 + 5 → 2031-02-28. A card issued on 29 Feb runs to the last day of February
    (2024-02-29 + 5 → 2029-02-28; + 4 → 2028-02-28), never a day short.
    """
    if years < 1:
        raise ValueError("证件有效期至少为 1 年")
    try:
        anniversary = issued_on.replace(year=issued_on.year + years)
    except ValueError:  # 29 Feb in a common year: the period runs to the end of February
        anniversary = dt.date(issued_on.year + years, 3, 1)
    return Validity(issued_on, anniversary - dt.timedelta(days=1))


def renewal_opens_on(valid_until: dt.date, window_months: int) -> dt.date:
    return add_months(valid_until, -window_months)


def renewal_open(valid_until: dt.date, today: dt.date, window_months: int) -> bool:
    """换发 may be requested from ``window_months`` before the last valid day up to that day."""
    return renewal_opens_on(valid_until, window_months) <= today <= valid_until


BARRED_FOR_EVER = dt.date.max
"""``reapplication_barred_until`` for a bar without end (终身不得重新申领)."""


def reapplication_barred_until(revoked_on: dt.date, bar_years: int | None) -> dt.date:
    """Last day on which a holder whose card was revoked may not apply again (inclusive).

    ``bar_years`` None: barred for ever (``BARRED_FOR_EVER``). 0: no bar (the revocation day itself).
    Revoked 2026-03-10 with 2 years: barred to 2028-03-10, may apply from 2028-03-11.
    """
    if bar_years is None:
        return BARRED_FOR_EVER
    if bar_years < 0:
        raise ValueError("重新申领限制年限不能为负数")
    return add_years(revoked_on, bar_years)


def reapplication_barred(revoked_on: dt.date, bar_years: int | None, today: dt.date) -> bool:
    if bar_years == 0:
        return False
    return today <= reapplication_barred_until(revoked_on, bar_years)


# ---------------------------------------------------------------- numbers

NUMBER_FIELDS = ("region", "year", "seq", "kind")
NUMBER_CHARS = re.compile(r"[0-9A-Za-z-]{1,40}")
"""A number is a URL path segment (``/v/<number>``) and is typed by people: ASCII letters, digits, '-'."""


class NumberTemplateError(ValueError):
    """The authority's number template cannot make valid numbers; ``message`` in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def template_fields(template: str) -> tuple[str, ...]:
    """The fields a template uses, validated: only known names, no conversions, ``{seq}`` present."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise NumberTemplateError(f"证号模板“{template}”格式不正确（花括号不配对）") from e
    used: list[str] = []
    for literal, name, spec, conversion in parts:
        if literal and not NUMBER_CHARS.fullmatch(literal):
            raise NumberTemplateError(f"证号模板中的固定文字“{literal}”只能包含英文字母、数字和“-”")
        if name is None:
            continue
        if name not in NUMBER_FIELDS:
            known = "、".join(f"{{{f}}}" for f in NUMBER_FIELDS)
            raise NumberTemplateError(f"证号模板中的字段“{{{name}}}”不可用，只能使用 {known}")
        if conversion is not None or (spec and "{" in spec):
            raise NumberTemplateError(f"证号模板中的字段“{{{name}}}”写法不正确")
        used.append(name)
    if "seq" not in used:
        raise NumberTemplateError("证号模板必须包含流水号 {seq}，否则无法保证证号唯一")
    if used.count("seq") > 1:
        raise NumberTemplateError("证号模板只能包含一个流水号 {seq}")
    # Try the format specs once with sample values, so a bad spec fails when the policy is saved.
    _render(template, region="110000", year=2026, seq=1, kind="E")
    return tuple(dict.fromkeys(used))


def sequence_scope(template: str) -> tuple[str, ...]:
    """Which fields partition the sequence: the counter is kept per distinct value of these.

    ``{region}{year}{seq:06d}`` → ("region", "year"): sequence restarts each year per region, and
    both kinds share it (the template has no ``{kind}``), so the two kinds never collide.
    """
    return tuple(f for f in template_fields(template) if f != "seq")


def _render(template: str, *, region: str, year: int, seq: int, kind: str) -> str:
    try:
        return template.format(region=region, year=year, seq=seq, kind=kind)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise NumberTemplateError(f"证号模板“{template}”的格式说明不正确：{e}") from e


def format_number(template: str, region: str, year: int, seq: int, kind_code: str) -> str:
    """The certificate number for one sequence value, e.g. ``11010020260000123``."""
    return number_formatter(template, region, year, kind_code)(seq)


def number_formatter(template: str, region: str, year: int, kind_code: str) -> Callable[[int], str]:
    """``format_number`` of one scope (template, region, year, kind) for many sequence values: the
    template and the scope are checked once, each number still for its width and characters."""
    template_fields(template)
    if not 1000 <= year <= 9999:
        raise ValueError(f"年份“{year}”不正确")
    for label, value in (("地区代码", region), ("证件种类代码", kind_code)):
        if not re.fullmatch(r"[0-9A-Za-z]{1,12}", value):
            raise ValueError(f"{label}“{value}”只能包含英文字母和数字")
    widest: int | None = None
    for _, name, spec, _ in string.Formatter().parse(template):
        width = re.match(r"^0?(\d+)", spec or "") if name == "seq" else None
        if width:
            widest = int(width.group(1))

    def number(seq: int) -> str:
        if seq < 1:
            raise ValueError("流水号必须从 1 开始")
        if widest is not None and len(str(seq)) > widest:
            # An overflowing sequence could repeat a number made under another prefix: refuse it.
            raise NumberTemplateError(f"流水号 {seq} 已超过证号模板规定的 {widest} 位，请调整证号模板")
        made = _render(template, region=region, year=year, seq=seq, kind=kind_code)
        if not NUMBER_CHARS.fullmatch(made):
            raise NumberTemplateError(f"证号“{made}”过长或含有不允许的字符")
        return made

    return number


# ---------------------------------------------------------------- eligibility


class Missing(NamedTuple):
    """One condition of issuance that is not met: a stable ``code`` and the Chinese ``message``."""

    code: str
    message: str


class EligibilityFacts(NamedTuple):
    """What a service knows about one officer when asked whether a card of ``kind`` may be issued."""

    kind: CertificateKind
    staff_type_label: str
    staff_type_allowed: bool
    employment_label: str
    in_post: bool
    exam_valid: bool
    training_year: int | None
    """The last completed year checked, or None when the policy does not require training."""
    training_needed_tenths: int
    barred_until: dt.date | None
    """The end of a reapplication bar in force (``BARRED_FOR_EVER`` for ever), else None."""
    holds_number: str | None
    """Number of a valid or suspended card of the same kind the officer already holds."""
    pending: bool
    exit_bar: str | None = None
    """The conditions of an exit decision's bar in force (退出案件), else None."""


def missing_conditions(f: EligibilityFacts) -> list[Missing]:
    """Every condition of issuance (DOMAIN "Certificates") the officer does not meet; empty: eligible."""
    out: list[Missing] = []
    if not f.staff_type_allowed:
        out.append(Missing("staff_type", f"人员类别为“{f.staff_type_label}”，不得申领{f.kind.label}"))
    if not f.in_post:
        out.append(Missing("not_in_post", f"人员状态为“{f.employment_label}”，不在岗不得申领"))
    if not f.exam_valid:
        out.append(Missing("no_exam", "没有在有效期内的执法资格考试合格成绩"))
    if f.training_year is not None and f.training_needed_tenths > 0:
        hours = f"{f.training_needed_tenths / 10:g}"
        out.append(Missing("training", f"{f.training_year}年度培训学时未达标（尚差{hours}学时）"))
    if f.barred_until is not None:
        if f.barred_until == BARRED_FOR_EVER:
            out.append(Missing("barred", "证件被吊销，终身不得重新申领"))
        else:
            out.append(Missing("barred", f"证件被吊销，{f.barred_until:%Y年%m月%d日}前不得重新申领"))
    if f.exit_bar:
        out.append(Missing("exit_barred", f"退出决定在先：{f.exit_bar}"))
    if f.holds_number:
        out.append(Missing("holds_card", f"已持有{f.kind.label}（证号 {f.holds_number}），不能重复申领"))
    if f.pending:
        out.append(Missing("pending", f"已有待审批的{f.kind.label}申领"))
    return out
