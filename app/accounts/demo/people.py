"""The demo province's officers (执法人员): names, ID numbers, staff types, posts and postings.

Rows are plain tuples with ids assigned in order, drawn from the random generator handed in, so a
seed always gives the same people and ID numbers.
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from operator import mul
from typing import Any

from app.accounts.demo.tree import _Node, _Tree
from app.lib.bulk import Row
from app.lib.enums import EmploymentStatus, Post, StaffType

# The demo's "today": fixed so that a seed always produces the same dates.
AS_OF = dt.date(2026, 9, 1)


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
