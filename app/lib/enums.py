"""Enumerations shared by several domains, each value with its Chinese label."""

from __future__ import annotations

from enum import StrEnum


class LabeledEnum(StrEnum):
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
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


class AgencyKind(LabeledEnum):
    GOVERNMENT = "government"
    DEPARTMENT = "department"


class StaffType(LabeledEnum):
    CIVIL_SERVANT = "civil_servant"
    REFERENCED = "referenced"
    INSTITUTION = "institution"
    SERVICE = "service"
    CONTRACT = "contract"
    TEMPORARY = "temporary"
    DISPATCHED = "dispatched"
    ASSISTANT = "assistant"


class Post(LabeledEnum):
    ENFORCEMENT = "enforcement"
    LEGAL_REVIEW = "legal_review"
    SUPERVISION = "supervision"


class EmploymentStatus(LabeledEnum):
    ACTIVE = "active"
    TRANSFERRED = "transferred"
    RETIRED = "retired"
    RESIGNED = "resigned"


class Role(LabeledEnum):
    OFFICER = "officer"
    AGENCY_ADMIN = "agency_admin"
    AUTHORITY_ADMIN = "authority_admin"


class _Labels(dict[tuple[type, str], str]):
    """Chinese labels keyed by (enum class, value).

    StrEnum members are equal to (and hash like) their plain string values, so a dict keyed by the
    members themselves lets ``CertificateKind.ENFORCEMENT`` overwrite ``Post.ENFORCEMENT`` (both are
    "enforcement"). Each domain registers its enums' labels with ``LABELS.update({...})``.
    """

    def __setitem__(self, member: StrEnum, label: str) -> None:  # type: ignore[override]
        super().__setitem__((type(member), member.value), label)

    def __getitem__(self, member: StrEnum) -> str:  # type: ignore[override]
        return super().__getitem__((type(member), member.value))

    def update(self, labels: dict[StrEnum, str]) -> None:  # type: ignore[override]
        for member, label in labels.items():
            self[member] = label


LABELS = _Labels()
LABELS.update(
    {
        AgencyLevel.PROVINCE: "省级",
        AgencyLevel.CITY: "市级",
        AgencyLevel.COUNTY: "县级",
        AgencyKind.GOVERNMENT: "人民政府",
        AgencyKind.DEPARTMENT: "部门",
        StaffType.CIVIL_SERVANT: "行政编制",
        StaffType.REFERENCED: "参照公务员法管理",
        StaffType.INSTITUTION: "事业编制",
        StaffType.SERVICE: "工勤人员",
        StaffType.CONTRACT: "劳动合同工",
        StaffType.TEMPORARY: "临时工",
        StaffType.DISPATCHED: "劳务派遣",
        StaffType.ASSISTANT: "执法辅助人员",
        Post.ENFORCEMENT: "执法岗位",
        Post.LEGAL_REVIEW: "法制审核岗位",
        Post.SUPERVISION: "执法监督岗位",
        EmploymentStatus.ACTIVE: "在岗",
        EmploymentStatus.TRANSFERRED: "调离",
        EmploymentStatus.RETIRED: "退休",
        EmploymentStatus.RESIGNED: "离职",
        Role.OFFICER: "执法人员",
        Role.AGENCY_ADMIN: "单位管理员（人事/法制）",
        Role.AUTHORITY_ADMIN: "司法行政管理员（发证机关）",
    }
)


def check_in(column: str, enum: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that keeps a string column inside an enum."""
    values = ", ".join(f"'{m.value}'" for m in enum)
    return f"{column} IN ({values})"
