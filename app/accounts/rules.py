"""Pure rules about people and agencies: ID numbers, names, region codes, scope. No I/O here."""

from __future__ import annotations

import datetime as dt
import re

from app.lib import clock
from app.lib.errors import FieldError
from app.lib.policy import Policy

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_REGION_RE = re.compile(r"^[1-9]\d{5}$")
_NAME_RE = re.compile(r"^[\u3400-\u9fff\u00b7·]{2,20}$|^[A-Za-z][A-Za-z .'-]{1,49}$")


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 digits of a citizen ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalize_id_number(raw: str) -> str:
    return raw.strip().replace(" ", "").upper()


def id_number_error(raw: str, *, today: dt.date | None = None) -> str | None:
    """Why ``raw`` is not a valid 18-digit citizen ID number, in Chinese, or None when it is."""
    value = normalize_id_number(raw)
    if not value:
        return "身份证号码不能为空"
    if not _ID_RE.match(value):
        return "身份证号码应为18位，前17位为数字，最后一位为数字或X"
    if not _REGION_RE.match(value[:6]):
        return "身份证号码的地址码无效"
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "身份证号码中的出生日期无效"
    today = today or clock.today()
    if born > today or born.year < 1900:
        return "身份证号码中的出生日期无效"
    if id_check_digit(value[:17]) != value[17]:
        return "身份证号码校验位错误"
    return None


def birth_date_from_id(value: str) -> dt.date:
    return dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def gender_from_id(value: str) -> str:
    """男 for an odd sequence digit, 女 for even (GB 11643)."""
    return "男" if int(value[16]) % 2 else "女"


def mask_id_number(value: str) -> str:
    """Masked for everyone but the officer's own agency: 3201**********123X."""
    if len(value) != 18:
        return "*" * len(value)
    return value[:4] + "*" * 10 + value[-4:]


def name_error(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return "姓名不能为空"
    if not _NAME_RE.match(value):
        return "姓名应为2至20个汉字（少数民族姓名可含间隔号·）"
    return None


def region_code_error(raw: str) -> str | None:
    if not _REGION_RE.match(raw.strip()):
        return "行政区划代码应为6位数字"
    return None


def agency_path(parent_path: str | None, agency_id: int) -> str:
    """Materialised path of an agency: '/1/7/42/'. A subtree is every path with this prefix."""
    return f"{parent_path or '/'}{agency_id}/"


def path_ids(path: str) -> list[int]:
    """Agency ids on a materialised path, root first: '/1/7/42/' → [1, 7, 42]."""
    return [int(p) for p in path.strip("/").split("/") if p]


def in_subtree(scope_path: str, target_path: str) -> bool:
    return target_path.startswith(scope_path)


def agency_errors(
    *, is_issuing_authority: bool, authority_name: str, is_enforcement_subject: bool, enforcement_basis: str
) -> list[FieldError]:
    """What an agency's record lacks: an issuing authority names itself, an enforcement subject its basis."""
    errors: list[FieldError] = []
    if is_issuing_authority and not authority_name.strip():
        errors.append(FieldError("authority_name", "发证机关须填写机关名称（如：某某市司法局）"))
    if is_enforcement_subject and not enforcement_basis.strip():
        errors.append(FieldError("enforcement_basis", "行政执法主体须填写执法依据"))
    return errors


def officer_field_errors(*, name: str, id_number: str | None, field: str, policy: Policy) -> list[FieldError]:
    """An officer's name, ID number (when given) and enforcement field (执法类别, from the local catalogue)."""
    errors: list[FieldError] = []
    if msg := name_error(name):
        errors.append(FieldError("name", msg))
    if id_number is not None and (msg := id_number_error(id_number)):
        errors.append(FieldError("id_number", msg))
    if field.strip() not in policy.enforcement_fields:
        errors.append(FieldError("field", f"执法类别“{field}”不在本地区的执法类别目录中"))
    return errors
