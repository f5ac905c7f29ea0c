"""Demo data (`app demo-data`): a plausible province of agencies, officers and one account per role.

Everything follows from the seed, so a seed always gives the same province, people and ID numbers.
The province is invented (江南省) but shaped like a real one: 6-digit region codes (province 320000,
cities 32xx00, districts 32xx02.., counties 32xx21.., county-level cities 32xx81), a people's
government at each level with ten enforcement departments under it, and the province and every city
government acting as issuing authority (发证机关).

Officers are loaded in bulk: rows are plain tuples written straight through the driver (COPY on
PostgreSQL, executemany on SQLite), ids assigned here, everything in one transaction, so 200 000
officers take seconds. The few accounts and the audit event go through the ORM in that same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from dataclasses import field as dc_field
from itertools import accumulate
from operator import mul
from typing import Any

import click
from sqlalchemy import select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.accounts.models import Account, Agency, Officer
from app.assessments.demo import AssessmentLoaded, load_assessment_demo
from app.certificates.demo import TABLES as CERTIFICATE_TABLES
from app.certificates.demo import CertificatesLoaded, load_certificates_demo
from app.db import make_engine, make_sessionmaker
from app.exams.demo import ExamsLoaded, load_exam_demo
from app.lib.audit import SYSTEM, audit_record
from app.lib.clock import utcnow
from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType
from app.lib.security import hash_password_sync
from app.training.demo import TrainingLoaded, load_training_demo

# The demo's "today": fixed so that a seed always produces the same dates.
AS_OF = dt.date(2026, 9, 1)
BATCH = 20_000

PROVINCE = "江南省"
PROVINCE_CODE = "320000"


class DemoDataRefused(click.ClickException):
    """The database already holds agencies: demo data is never mixed into real (or other demo) data.

    A ClickException so that `app demo-data` prints the reason, not a traceback, and exits 1.
    """


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: Role
    where: str


# The documented demo logins (README, the login page hint); must_change_password is off for them.
DEMO_ACCOUNTS = (
    DemoAccount("sfj_admin", "Demo-2026-admin", Role.AUTHORITY_ADMIN, "省人民政府（发证机关：江南省司法厅）"),
    DemoAccount("shi_admin", "Demo-2026-city", Role.AGENCY_ADMIN, "第一个市的人民政府"),
    DemoAccount("xian_admin", "Demo-2026-county", Role.AGENCY_ADMIN, "另一个市下的一个县区人民政府"),
    DemoAccount("zhifa01", "Demo-2026-officer", Role.OFFICER, "第一个市的市场监督管理局的一名执法人员"),
)


# ---------------------------------------------------------------- the agency tree


@dataclass(frozen=True)
class _DeptKind:
    field: str
    province_name: str
    city_name: str
    county_name: str
    weight: float  # relative head count
    laws: str


_DEPARTMENTS = (
    _DeptKind(
        "市场监管", "市场监督管理局", "市场监督管理局", "市场监督管理局", 3.0,
        "《中华人民共和国产品质量法》《中华人民共和国食品安全法》《中华人民共和国反不正当竞争法》",
    ),
    _DeptKind(
        "生态环境", "生态环境厅", "生态环境局", "生态环境局", 1.5,
        "《中华人民共和国环境保护法》《中华人民共和国大气污染防治法》《中华人民共和国水污染防治法》",
    ),
    _DeptKind(
        "交通运输", "交通运输厅", "交通运输局", "交通运输局", 2.0,
        "《中华人民共和国公路法》《中华人民共和国道路运输条例》《中华人民共和国航道法》",
    ),
    _DeptKind(
        "城市管理", "住房和城乡建设厅", "城市管理综合行政执法局", "城市管理综合行政执法局", 2.5,
        "《城市市容和环境卫生管理条例》《中华人民共和国城乡规划法》《江南省城市管理相对集中行政处罚权条例》",
    ),
    _DeptKind(
        "农业农村", "农业农村厅", "农业农村局", "农业农村局", 1.5,
        "《中华人民共和国农产品质量安全法》《中华人民共和国种子法》《农药管理条例》",
    ),
    _DeptKind(
        "自然资源", "自然资源厅", "自然资源局", "自然资源局", 1.2,
        "《中华人民共和国土地管理法》《中华人民共和国矿产资源法》《中华人民共和国森林法》",
    ),
    _DeptKind(
        "应急管理", "应急管理厅", "应急管理局", "应急管理局", 1.2,
        "《中华人民共和国安全生产法》《中华人民共和国消防法》《危险化学品安全管理条例》",
    ),
    _DeptKind(
        "文化市场", "文化市场综合执法总队", "文化市场综合执法支队", "文化市场综合执法大队", 0.8,
        "《中华人民共和国文物保护法》《营业性演出管理条例》《出版管理条例》",
    ),
    _DeptKind(
        "卫生健康", "卫生健康委员会", "卫生健康委员会", "卫生健康局", 1.0,
        "《中华人民共和国基本医疗卫生与健康促进法》《中华人民共和国传染病防治法》《医疗机构管理条例》",
    ),
    _DeptKind(
        "水利", "水利厅", "水利局", "水利局", 0.7,
        "《中华人民共和国水法》《中华人民共和国防洪法》《中华人民共和国水土保持法》",
    ),
)  # fmt: skip
_LEVEL_WEIGHT = {AgencyLevel.PROVINCE: 0.5, AgencyLevel.CITY: 1.0, AgencyLevel.COUNTY: 1.3}

_CITY_NAMES = (
    "云川",
    "泰宁",
    "清河",
    "东阳",
    "江陵",
    "安平",
    "长溪",
    "石城",
    "明州",
    "宁海",
    "丰乐",
    "白沙",
    "湖阳",
    "临江",
)
_DISTRICT_NAMES = ("城东", "城西", "城南", "城北", "新城", "江滨")
_COUNTY_FIRST = "平溪青梅桃枫龙凤柳松兰杏双金高永瑞新南北西"
_COUNTY_SECOND = "山口岭源林门泉阳塘河桥田乐江城安丰"


@dataclass(eq=False)
class _Node:
    id: int
    parent: _Node | None
    name: str
    short_name: str
    region_code: str
    region_name: str
    level: AgencyLevel
    kind: AgencyKind
    field: str = ""
    basis: str = ""
    authority_name: str = ""
    weight: float = 0.0
    government: _Node | None = None  # a department's people's government
    departments: list[_Node] = dc_field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.parent.path if self.parent else '/'}{self.id}/"

    @property
    def depth(self) -> int:
        return self.parent.depth + 1 if self.parent else 0


@dataclass
class _Tree:
    nodes: list[_Node]
    province: _Node
    cities: list[_Node]
    counties: dict[int, list[_Node]]  # city id → its county governments

    @property
    def departments(self) -> list[_Node]:
        return [n for n in self.nodes if n.kind is AgencyKind.DEPARTMENT]


def _build_tree(rng: random.Random) -> _Tree:
    nodes: list[_Node] = []

    def add(**kw: Any) -> _Node:
        node = _Node(id=len(nodes) + 1, **kw)
        nodes.append(node)
        return node

    def add_departments(gov: _Node) -> None:
        for kind in _DEPARTMENTS:
            suffix = {
                AgencyLevel.PROVINCE: kind.province_name,
                AgencyLevel.CITY: kind.city_name,
                AgencyLevel.COUNTY: kind.county_name,
            }[gov.level]
            dept = add(
                parent=gov,
                name=f"{gov.region_name}{suffix}",
                short_name=suffix,
                region_code=gov.region_code,
                region_name=gov.region_name,
                level=gov.level,
                kind=AgencyKind.DEPARTMENT,
                field=kind.field,
                basis=(
                    f"依据《中华人民共和国行政处罚法》{kind.laws}等法律、法规的规定，"
                    f"在{gov.region_name}行政区域内以自己的名义实施{kind.field}领域行政执法"
                ),
                weight=kind.weight * _LEVEL_WEIGHT[gov.level],
                government=gov,
            )
            gov.departments.append(dept)

    province = add(
        parent=None,
        name=f"{PROVINCE}人民政府",
        short_name=PROVINCE,
        region_code=PROVINCE_CODE,
        region_name=PROVINCE,
        level=AgencyLevel.PROVINCE,
        kind=AgencyKind.GOVERNMENT,
        authority_name=f"{PROVINCE}司法厅",
    )
    add_departments(province)

    city_names = rng.sample(_CITY_NAMES, 8)
    county_pool = [a + b for a in _COUNTY_FIRST for b in _COUNTY_SECOND if a != b and a + b not in city_names]
    rng.shuffle(county_pool)
    cities: list[_Node] = []
    counties: dict[int, list[_Node]] = {}
    for i, short in enumerate(city_names, start=1):
        city_name = f"{short}市"
        code = f"{PROVINCE_CODE[:2]}{i:02d}00"
        city = add(
            parent=province,
            name=f"{city_name}人民政府",
            short_name=city_name,
            region_code=code,
            region_name=city_name,
            level=AgencyLevel.CITY,
            kind=AgencyKind.GOVERNMENT,
            authority_name=f"{city_name}司法局",
        )
        add_departments(city)
        cities.append(city)
        n_counties = rng.randint(3, 6)
        n_districts = rng.randint(1, 2)
        has_county_city = n_counties - n_districts >= 2 and rng.random() < 0.5
        regions: list[tuple[str, str]] = []  # (name, code)
        for d, district in enumerate(rng.sample(_DISTRICT_NAMES, n_districts)):
            regions.append((f"{city_name}{district}区", f"{code[:4]}{2 + d:02d}"))
        n_plain = n_counties - n_districts - (1 if has_county_city else 0)
        for c in range(n_plain):
            regions.append((f"{county_pool.pop()}县", f"{code[:4]}{21 + c:02d}"))
        if has_county_city:
            regions.append((f"{county_pool.pop()}市", f"{code[:4]}81"))
        counties[city.id] = []
        for region_name, region_code in regions:
            county = add(
                parent=city,
                name=f"{region_name}人民政府",
                short_name=region_name,
                region_code=region_code,
                region_name=region_name,
                level=AgencyLevel.COUNTY,
                kind=AgencyKind.GOVERNMENT,
            )
            add_departments(county)
            counties[city.id].append(county)
    return _Tree(nodes=nodes, province=province, cities=cities, counties=counties)


# ---------------------------------------------------------------- people

# Surnames by frequency: the ten commonest with their real shares (%), then a tail.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
    "崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_TOP_SHARES = (7.25, 7.19, 6.83, 5.38, 4.53, 3.08, 2.23, 2.19, 2.05, 1.97)
_SURNAME_CUM = list(
    accumulate(
        _TOP_SHARES[i] if i < len(_TOP_SHARES) else max(0.25, 1.3 - 0.03 * (i - len(_TOP_SHARES)))
        for i in range(len(_SURNAMES))
    )
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "夏侯", "慕容", "东方", "皇甫")
_MINORITY_NAMES = (  # (name, male?)
    ("买买提·艾力", True),
    ("艾尔肯·吐尔洪", True),
    ("阿卜杜热依木·艾山", True),
    ("巴特尔·孟和", True),
    ("扎西·次仁", True),
    ("阿依古丽·买买提", False),
    ("古丽娜尔·吐尔逊", False),
    ("热依汗古丽·阿不都", False),
    ("其木格·乌力吉", False),
    ("卓玛·央金", False),
)
_MALE_CHARS = (
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林洋东亮峰建国志文海春博阳睿晨成鸿毅诚坤锋彬"
)
_FEMALE_CHARS = "芳娜敏静丽艳娟霞燕玲婷雪琳慧颖倩洁丹萍红梅莉晶璐佳欣悦怡雯蕾秀英华兰凤琴珊瑶茜"
_FIRST_CHARS = "晓子思雨嘉一天文建志海春新永家立德明亚玉小俊"

_STAFF_TYPES = (
    (StaffType.CIVIL_SERVANT, 75.0),
    (StaffType.REFERENCED, 10.0),
    (StaffType.INSTITUTION, 5.0),
    (StaffType.SERVICE, 2.0),
    (StaffType.CONTRACT, 2.5),
    (StaffType.TEMPORARY, 1.5),
    (StaffType.DISPATCHED, 2.0),
    (StaffType.ASSISTANT, 2.0),
)
_STAFF_VALUES = [s.value for s, _ in _STAFF_TYPES]
_STAFF_CUM = list(accumulate(w for _, w in _STAFF_TYPES))
_ON_ESTABLISHMENT = {StaffType.CIVIL_SERVANT.value, StaffType.REFERENCED.value, StaffType.INSTITUTION.value}
# Posts of staff on the establishment; everyone else is on an enforcement post. Overall ≈ 88/7/5.
_POSTS = (Post.ENFORCEMENT.value, Post.LEGAL_REVIEW.value, Post.SUPERVISION.value)
_POST_CUM = list(accumulate((86.7, 7.8, 5.5)))

_PHONE_PREFIXES = (
    30,
    31,
    32,
    33,
    35,
    36,
    37,
    38,
    39,
    50,
    51,
    52,
    55,
    56,
    57,
    58,
    59,
    77,
    80,
    81,
    82,
    86,
    87,
    88,
    89,
    98,
    99,
)
_BIRTH_FIRST = dt.date(1965, 1, 1)
_BIRTH_SPAN = (dt.date(2000, 12, 31) - _BIRTH_FIRST).days + 1

OFFICER_COLUMNS = (
    "id", "agency_id", "name", "id_number", "gender", "birth_date", "staff_type", "post", "field", "area",
    "employment_status", "phone", "photo_path", "version", "created_at", "updated_at",
)  # fmt: skip
POSTING_COLUMNS = (
    "id", "officer_id", "agency_id", "post", "field", "area", "started_on", "ended_on", "end_reason",
)  # fmt: skip
AGENCY_COLUMNS = (
    "id", "parent_id", "name", "short_name", "region_code", "level", "kind", "path", "depth",
    "is_enforcement_subject", "enforcement_basis", "is_issuing_authority", "authority_name", "policy_json",
    "is_active", "created_at", "updated_at",
)  # fmt: skip

Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Special:
    """A fixed officer useful for trying later features; ``key`` names it in the report."""

    key: str
    note: str
    name: str
    male: bool
    born: dt.date
    staff_type: StaffType
    post: Post
    status: EmploymentStatus
    started_on: dt.date
    ended_on: dt.date | None = None
    end_reason: str = ""


# All in the first city's 市场监督管理局, so shi_admin sees them; the first is zhifa01's officer.
_SPECIALS = (
    _Special(
        "zhifa01", "zhifa01 的人员：行政编制、执法岗位、在岗，可申领执法证",
        "林志强", True, dt.date(1988, 5, 17), StaffType.CIVIL_SERVANT, Post.ENFORCEMENT,
        EmploymentStatus.ACTIVE, dt.date(2012, 8, 1),
    ),
    _Special(
        "retired", "已退休的执法人员（行政编制）：清理时应注销其执法证",
        "周建国", True, dt.date(1965, 3, 8), StaffType.CIVIL_SERVANT, Post.ENFORCEMENT,
        EmploymentStatus.RETIRED, dt.date(1996, 7, 1), dt.date(2025, 3, 31), "退休",
    ),
    _Special(
        "assistant", "执法辅助人员在执法岗位：有记录，但不得核发执法证",
        "陈晓燕", False, dt.date(1995, 11, 23), StaffType.ASSISTANT, Post.ENFORCEMENT,
        EmploymentStatus.ACTIVE, dt.date(2019, 3, 1),
    ),
    _Special(
        "legal_review", "法制审核岗位人员（行政编制）",
        "赵思源", False, dt.date(1990, 2, 14), StaffType.CIVIL_SERVANT, Post.LEGAL_REVIEW,
        EmploymentStatus.ACTIVE, dt.date(2015, 9, 1),
    ),
    _Special(
        "supervision", "执法监督岗位人员（行政编制）：行政执法监督证的申领人",
        "孙立信", True, dt.date(1978, 10, 2), StaffType.CIVIL_SERVANT, Post.SUPERVISION,
        EmploymentStatus.ACTIVE, dt.date(2003, 7, 1),
    ),
)  # fmt: skip


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_WEIGHT_ASCII = 48 * sum(_ID_WEIGHTS)  # the weighted sum of the ASCII '0's


def _check_digit(first17: str) -> str:
    """rules.id_check_digit (GB 11643), over the digits' bytes: this runs once per officer."""
    return "10X98765432"[(sum(map(mul, first17.encode(), _ID_WEIGHTS)) - _ID_WEIGHT_ASCII) % 11]


_ENFORCEMENT = Post.ENFORCEMENT.value
_ACTIVE = EmploymentStatus.ACTIVE.value
_RETIRED = EmploymentStatus.RETIRED.value
_TRANSFERRED = EmploymentStatus.TRANSFERRED.value
_RESIGNED = EmploymentStatus.RESIGNED.value
_DAY = dt.timedelta(days=1)


class _People:
    """Draws officers and their postings as plain tuples, ids assigned in order."""

    def __init__(self, rng: random.Random, tree: _Tree, *, date_out: Callable[[dt.date], Any], now: Any):
        self.rng = rng
        self.date_out = date_out
        self.now = now
        self.used_ids: set[str] = set()
        self.departments = tree.departments
        self.dept_cum = list(accumulate(d.weight for d in self.departments))
        self.next_officer = 1
        self.next_posting = 1
        # Every possible birthday with its ID-number digits and its bound value, drawn by index.
        days = (_BIRTH_FIRST + dt.timedelta(days=i) for i in range(_BIRTH_SPAN))
        self.births = [(d, f"{d:%Y%m%d}", date_out(d)) for d in days]

    def id_number(self, region: str, born_digits: str, male: bool) -> str:
        prefix = region + born_digits
        rand = self.rng.random
        while True:
            first17 = f"{prefix}{int(rand() * 500) * 2 + male:03d}"
            value = first17 + _check_digit(first17)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def name(self, male: bool) -> tuple[str, bool]:
        rand = self.rng.random
        r = rand()
        if r < 0.002:
            return _MINORITY_NAMES[int(rand() * len(_MINORITY_NAMES))]
        if r < 0.005:
            surname = _COMPOUND_SURNAMES[int(rand() * len(_COMPOUND_SURNAMES))]
        else:
            surname = _SURNAMES[bisect(_SURNAME_CUM, rand() * _SURNAME_CUM[-1])]
        chars = _MALE_CHARS if male else _FEMALE_CHARS
        last = chars[int(rand() * len(chars))]
        if rand() < 0.25:
            return surname + last, male
        first = (_FIRST_CHARS + chars)[int(rand() * (len(_FIRST_CHARS) + len(chars)))]
        return surname + first + last, male

    def phone(self) -> str:
        r = self.rng.random() * len(_PHONE_PREFIXES)
        return f"1{_PHONE_PREFIXES[int(r)]}{int((r % 1) * 100_000_000):08d}"

    def officer_row(
        self, dept: _Node, name: str, id_number: str, born: Any, staff: str, post: str, status: str
    ) -> Row:
        officer_id = self.next_officer
        self.next_officer += 1
        gender = "男" if int(id_number[16]) % 2 else "女"
        return (
            officer_id, dept.id, name, id_number, gender, born, staff, post, dept.field,
            dept.region_name, status, self.phone(), None, 1, self.now, self.now,
        )  # fmt: skip

    def posting_row(
        self, officer_id: int, dept: _Node, post: str, start: dt.date, end: dt.date | None, reason: str
    ) -> Row:
        posting_id = self.next_posting
        self.next_posting += 1
        d = self.date_out
        return (
            posting_id, officer_id, dept.id, post, dept.field, dept.region_name, d(start),
            None if end is None else d(end), reason,
        )  # fmt: skip

    def special(self, spec: _Special, dept: _Node) -> tuple[Row, Row]:
        officer = self.officer_row(
            dept,
            spec.name,
            self.id_number(dept.region_code, f"{spec.born:%Y%m%d}", spec.male),
            self.date_out(spec.born),
            spec.staff_type.value,
            spec.post.value,
            spec.status.value,
        )
        posting = self.posting_row(
            officer[0], dept, spec.post.value, spec.started_on, spec.ended_on, spec.end_reason
        )
        return officer, posting

    def batch(self, n: int) -> tuple[list[Row], list[Row]]:
        rand = self.rng.random

        def below(n: int) -> int:  # random.randrange is several times slower; the bias is harmless here
            return int(rand() * n)

        depts = self.departments
        dept_cum = self.dept_cum
        dept_total = dept_cum[-1]
        births = self.births
        officers: list[Row] = []
        postings: list[Row] = []
        for dept_index in [bisect(dept_cum, rand() * dept_total) for _ in range(n)]:
            dept = depts[dept_index]
            name, male = self.name(rand() < 0.62)
            born, born_digits, born_out = births[below(_BIRTH_SPAN)]
            staff = _STAFF_VALUES[bisect(_STAFF_CUM, rand() * _STAFF_CUM[-1])]
            post = (
                _POSTS[bisect(_POST_CUM, rand() * _POST_CUM[-1])]
                if staff in _ON_ESTABLISHMENT
                else _ENFORCEMENT
            )
            # Men retire at 60, women (cadres) at 55: only the oldest can be retired.
            retire_at = dt.date(born.year + (60 if male else 55), born.month, 1)
            r = rand()
            if retire_at <= AS_OF and r < 0.6:
                status, reason = _RETIRED, "退休"
            elif r < 0.02:
                status, reason = _TRANSFERRED, "调离本单位"
            elif r < 0.032:
                status, reason = _RESIGNED, "辞职"
            else:
                status, reason = _ACTIVE, ""
            officer_id = self.next_officer
            officers.append(
                self.officer_row(
                    dept,
                    name,
                    self.id_number(dept.region_code, born_digits, male),
                    born_out,
                    staff,
                    post,
                    status,
                )
            )

            joined = dt.date(min(born.year + 21 + below(8), AS_OF.year - 1), 1 + below(12), 1 + below(28))
            start = joined
            span = (AS_OF - joined).days
            if span > 800 and rand() < 0.11:
                # Rotated (轮岗, seed 001 item 25): an earlier, ended posting in a sibling department.
                start = joined + dt.timedelta(days=365 + below(span - 730))
                siblings = dept.government.departments if dept.government else [dept]
                earlier = siblings[(siblings.index(dept) + 1 + below(len(siblings) - 1)) % len(siblings)]
                postings.append(
                    self.posting_row(officer_id, earlier, _ENFORCEMENT, joined, start - _DAY, "轮岗交流")
                )
            end: dt.date | None = None
            if status == _RETIRED:
                end = max(start, retire_at)
            elif reason:
                end = start + dt.timedelta(days=below(max(1, (AS_OF - start).days)))
            postings.append(self.posting_row(officer_id, dept, post, start, end, reason))
        return officers, postings


# ---------------------------------------------------------------- writing


class _BulkWriter:
    """Writes tuples through the driver connection inside the session's transaction."""

    def __init__(self, conn: AsyncConnection, driver: Any):
        self.dialect = conn.dialect.name
        self.driver = driver

    async def write(self, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            await self.driver.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        marks = ", ".join("?" for _ in columns)
        cursor = await self.driver.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            rows,
        )
        await cursor.close()

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


def _bound_values(dialect: Dialect) -> tuple[Callable[[dt.date], Any], Any]:
    """How dates and the load's timestamp are bound on this dialect (SQLite stores text)."""
    now = utcnow()
    if dialect.name != "sqlite":
        return (lambda d: d), now
    date_proc = Officer.__table__.c.birth_date.type.dialect_impl(dialect).bind_processor(dialect)
    ts_proc = Officer.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert date_proc is not None and ts_proc is not None
    return date_proc, ts_proc(now)


def _agency_row(node: _Node, now: Any) -> Row:
    return (
        node.id, node.parent.id if node.parent else None, node.name, node.short_name, node.region_code,
        node.level.value, node.kind.value, node.path, node.depth, node.kind is AgencyKind.DEPARTMENT,
        node.basis, bool(node.authority_name), node.authority_name, None, True, now, now,
    )  # fmt: skip


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """``update(description, completed, total)``; a no-op when ``enabled`` is false."""
    if not enabled:
        yield lambda _d, _c, _t: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(description: str, completed: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=completed, total=total)

        yield update


# ---------------------------------------------------------------- the command


@dataclass
class _Loaded:
    agencies: int = 0
    governments: int = 0
    departments: int = 0
    authorities: int = 0
    officers: int = 0
    postings: int = 0
    accounts: list[tuple[DemoAccount, str]] = dc_field(default_factory=list)  # with where it sits
    specials: list[tuple[_Special, int, str]] = dc_field(default_factory=list)  # officer id, ID number
    training: TrainingLoaded = dc_field(default_factory=TrainingLoaded)
    certificates: CertificatesLoaded = dc_field(default_factory=CertificatesLoaded)
    exams: ExamsLoaded = dc_field(default_factory=ExamsLoaded)
    assessments: AssessmentLoaded = dc_field(default_factory=AssessmentLoaded)
    cases_opened: int = 0


async def generate_demo(
    *, officers: int, seed: int, if_empty: bool, progress: bool, database_url: str | None = None
) -> str:
    """Load the demo province into an empty database and return a report naming the demo logins.

    ``officers`` is the head count including the five fixed officers (so at least five are made).
    With ``if_empty`` an existing tree is left alone; without it, existing data is refused.
    """
    if database_url is None:
        from app.settings import get_settings

        database_url = get_settings().database_url
    started = time.perf_counter()
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
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
            loaded = await _load(session, conn, officers=officers, seed=seed, progress=progress)
            await session.commit()
            # The last closed year is closed with the real year-end pass: the exit cases are open at once.
            from app.assessments.services import close_year, system_principal

            closed = await close_year(session, principal=system_principal(), year=AS_OF.year - 1)
            await session.commit()  # the close no longer commits itself: its caller's edge does
            loaded.cases_opened = closed.cases_opened
    finally:
        await engine.dispose()
    return _report(loaded, seed=seed, seconds=time.perf_counter() - started)


async def _load_rows(
    conn: AsyncConnection, *, officers: int, seed: int, progress: bool
) -> tuple[_Tree, _Node, _Loaded]:
    """The agencies, officers and postings; returns the tree and zhifa01's department."""
    rng = random.Random(seed)
    tree = _build_tree(rng)
    raw = await conn.get_raw_connection()
    writer = _BulkWriter(conn, raw.driver_connection)
    date_out, now = _bound_values(conn.dialect)
    loaded = _Loaded()

    with _progress_bar(progress) as update:
        await writer.write("agencies", AGENCY_COLUMNS, [_agency_row(n, now) for n in tree.nodes])
        loaded.agencies = len(tree.nodes)
        loaded.departments = len(tree.departments)
        loaded.governments = loaded.agencies - loaded.departments
        loaded.authorities = sum(1 for n in tree.nodes if n.authority_name)

        people = _People(rng, tree, date_out=date_out, now=now)
        first_city = tree.cities[0]
        market = next(d for d in first_city.departments if d.field == "市场监管")
        special_rows = [people.special(spec, market) for spec in _SPECIALS]
        await writer.write("officers", OFFICER_COLUMNS, [o for o, _ in special_rows])
        await writer.write("posting_history", POSTING_COLUMNS, [p for _, p in special_rows])
        loaded.specials = [(spec, o[0], o[3]) for spec, (o, _) in zip(_SPECIALS, special_rows, strict=True)]
        total = max(officers, len(_SPECIALS))
        done = len(_SPECIALS)
        postings = len(special_rows)
        update("执法人员", done, total)

        async def write_batch(officer_rows: list[Row], posting_rows: list[Row]) -> None:
            await writer.write("officers", OFFICER_COLUMNS, officer_rows)
            await writer.write("posting_history", POSTING_COLUMNS, posting_rows)
            update("执法人员", officer_rows[-1][0], total)

        # Draw the next batch in a thread while the database takes the previous one: on two cores
        # the generator and the database (its own process, or SQLite outside the GIL) overlap.
        writing: asyncio.Task[None] | None = None
        try:
            while done < total:
                n = min(BATCH, total - done)
                officer_rows, posting_rows = await asyncio.to_thread(people.batch, n)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write_batch(officer_rows, posting_rows))
                done += n
                postings += len(posting_rows)
        finally:
            # Never leave a write running on the connection when the transaction is rolled back.
            if writing is not None:
                await writing
        loaded.officers = done
        loaded.postings = postings
        update("培训学时", 0, 1)
        loaded.training = await load_training_demo(
            conn,
            writer.write,
            seed=seed,
            province_id=tree.province.id,
            fields=sorted({d.field for d in tree.departments}),
            as_of=AS_OF,
            date_out=date_out,
            now=now,
        )
        update("培训学时", 1, 1)
        update("执法证件", 0, 1)
        from app.settings import get_settings

        settings = get_settings()
        loaded.certificates = await load_certificates_demo(
            conn,
            writer.write,
            seed=seed,
            as_of=AS_OF,
            date_out=date_out,
            now=now,
            secret_key=settings.secret_key,
            base_url=settings.public_base_url,
        )
        update("执法证件", 1, 1)
        loaded.assessments = await load_assessment_demo(
            conn,
            writer.write,
            seed=seed,
            as_of=AS_OF,
            zhifa01_officer_id=loaded.specials[0][1],
            reserved={officer_id for _, officer_id, _ in loaded.specials},
            market_id=market.id,
            date_out=date_out,
            now=now,
        )
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

    return tree, market, loaded


async def _load(
    session: AsyncSession, conn: AsyncConnection, *, officers: int, seed: int, progress: bool
) -> _Loaded:
    # argon2 is slow on purpose: hash the four passwords in threads while the rows are drawn.
    hashing = asyncio.gather(*(asyncio.to_thread(hash_password_sync, a.password) for a in DEMO_ACCOUNTS))
    try:
        tree, market, loaded = await _load_rows(conn, officers=officers, seed=seed, progress=progress)
    except BaseException:
        with suppress(Exception):
            await hashing
        raise
    hashes = await hashing

    other_city = tree.cities[1]
    county = tree.counties[other_city.id][0]
    homes = {
        "sfj_admin": (tree.province, None),
        "shi_admin": (tree.cities[0], None),
        "xian_admin": (county, None),
        "zhifa01": (market, loaded.specials[0][1]),
    }
    for demo, password_hash in zip(DEMO_ACCOUNTS, hashes, strict=True):
        home, officer_id = homes[demo.username]
        display = {
            Role.AUTHORITY_ADMIN: f"{tree.province.authority_name}管理员",
            Role.AGENCY_ADMIN: f"{home.region_name}管理员",
            Role.OFFICER: _SPECIALS[0].name,
        }[demo.role]
        session.add(
            Account(
                username=demo.username,
                display_name=display,
                password_hash=password_hash,
                role=demo.role.value,
                agency_id=home.id,
                officer_id=officer_id,
                must_change_password=False,
            )
        )
        loaded.accounts.append((demo, home.name))
    await session.flush()
    loaded.exams = await load_exam_demo(session, authority_id=tree.province.id, department_id=market.id)

    await audit_record(
        session,
        actor=SYSTEM,
        action="demo.load",
        entity_type="demo",
        entity_id=seed,
        agency_id=tree.province.id,
        data={
            "seed": seed,
            "agencies": loaded.agencies,
            "officers": loaded.officers,
            "postings": loaded.postings,
            "accounts": [d.username for d in DEMO_ACCOUNTS],
        },
    )
    return loaded


def _status_label(status: str) -> str:
    from app.certificates.public import STATUS_LABELS
    from app.certificates.rules import CertificateStatus

    return STATUS_LABELS[CertificateStatus(status)]


def _report(loaded: _Loaded, *, seed: int, seconds: float) -> str:
    width = max(len(a.username) for a in DEMO_ACCOUNTS)
    pw_width = max(len(a.password) for a in DEMO_ACCOUNTS)
    lines = [
        f"演示数据已载入（种子 {seed}，用时 {seconds:.1f} 秒）：",
        f"  单位 {loaded.agencies} 个：人民政府 {loaded.governments} 个（其中发证机关 {loaded.authorities} 个），"
        f"执法部门 {loaded.departments} 个",
        f"  执法人员 {loaded.officers} 人，任职记录 {loaded.postings} 条",
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
    return "\n".join(lines)
