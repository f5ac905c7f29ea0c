"""Enumerations shared by several domains, each value with its Chinese label."""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class _Labels(dict[tuple[type, str], str]):
    """Chinese labels keyed by (enum class, value).

    StrEnum members are equal to (and hash like) their plain string values, so a dict keyed by the
    members themselves lets ``CertificateKind.ENFORCEMENT`` overwrite ``Post.ENFORCEMENT`` (both are
    "enforcement"). A ``LabeledEnum`` member registers its own label (``ACTIVE = "active", "在岗"``);
    an enum declared otherwise registers its members' labels with ``LABELS.update({...})``.
    """

    def __setitem__(self, member: StrEnum, label: str) -> None:  # type: ignore[override]
        super().__setitem__((type(member), member.value), label)

    def __getitem__(self, member: StrEnum) -> str:  # type: ignore[override]
        return super().__getitem__((type(member), member.value))

    def update(self, labels: dict[StrEnum, str]) -> None:  # type: ignore[override]
        for member, label in labels.items():
            self[member] = label


LABELS = _Labels()


class LabeledEnum(StrEnum):
    """A string enum whose members carry their Chinese label: ``ACTIVE = "active", "在岗"``.

    The value is the first string (stored in the database, sent in JSON); the label goes to
    ``LABELS`` once, where the member is declared."""

    _value_: str

    def __new__(cls, value: str, label: str | None = None) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        if label is not None:
            LABELS[member] = label
        return member

    @property
    def label(self) -> str:
        return LABELS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(m.value, LABELS[m]) for m in cls]

    @classmethod
    def from_label_or_value(cls, raw: str) -> LabeledEnum | None:
        raw = raw.strip()
        for m in cls:
            if raw in (m.value, LABELS[m]):
                return m
        return None


class AgencyLevel(LabeledEnum):
    PROVINCE = "province", "省级"
    CITY = "city", "市级"
    COUNTY = "county", "县级"


class AgencyKind(LabeledEnum):
    GOVERNMENT = "government", "人民政府"
    DEPARTMENT = "department", "部门"


class StaffType(LabeledEnum):
    CIVIL_SERVANT = "civil_servant", "行政编制"
    REFERENCED = "referenced", "参照公务员法管理"
    INSTITUTION = "institution", "事业编制"
    SERVICE = "service", "工勤人员"
    CONTRACT = "contract", "劳动合同工"
    TEMPORARY = "temporary", "临时工"
    DISPATCHED = "dispatched", "劳务派遣"
    ASSISTANT = "assistant", "执法辅助人员"


class Post(LabeledEnum):
    ENFORCEMENT = "enforcement", "执法岗位"
    LEGAL_REVIEW = "legal_review", "法制审核岗位"
    SUPERVISION = "supervision", "执法监督岗位"


class EmploymentStatus(LabeledEnum):
    ACTIVE = "active", "在岗"
    TRANSFERRED = "transferred", "调离"
    RETIRED = "retired", "退休"
    RESIGNED = "resigned", "离职"


class Role(LabeledEnum):
    OFFICER = "officer", "执法人员"
    AGENCY_ADMIN = "agency_admin", "单位管理员（人事/法制）"
    AUTHORITY_ADMIN = "authority_admin", "司法行政管理员（发证机关）"


def check_in(column: str, enum: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that keeps a string column inside an enum."""
    values = ", ".join(f"'{m.value}'" for m in enum)
    return f"{column} IN ({values})"


# The qualification exam's vocabulary: the policy names the parts of an exam (``app/lib/blueprint.py``).


class QuestionType(LabeledEnum):
    SINGLE = "single", "单选题"
    MULTIPLE = "multiple", "多选题"
    JUDGE = "judge", "判断题"


class QuestionCategory(LabeledEnum):
    PUBLIC_LAW = "public_law", "公共法律知识"
    SPECIALISED_LAW = "specialised_law", "专门法律知识"
    NEW_LAW = "new_law", "新法律法规"


class ExamPart(LabeledEnum):
    PUBLIC = "public", "公共法律知识"
    SPECIALISED = "specialised", "专门法律知识"
