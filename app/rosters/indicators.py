"""The indicator dashboard of an agency tree and the ready-made lists, each figure a roster link.

Seed 003: indicator 68 (the share of enforcement staff who passed the exam and hold a valid
certificate; the share with the required training hours) and indicator 63 (legal-review staff at
least 5 % of enforcement staff).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates.rules import CertificateKind
from app.lib.enums import Post
from app.rosters import rules
from app.rosters.rules import (
    CertFilter,
    EligibleFilter,
    ExamFilter,
    ExitFilter,
    RosterFilter,
    StatusFilter,
    TrainingFilter,
)
from app.rosters.schemas import AgencyIndicators, Dashboard, Indicator
from app.rosters.services.figures import Figures, indicator_figures, roll_up
from app.rosters.services.scope import Scope

# (indicator key, chart title, target line in percent or None): the charts of the dashboard.
CHARTED = [
    ("certified", "持证率（%）", None),
    ("training", "年度学时达标率（%）", None),
    ("exam_pass", "年度资格考试通过率（%）", None),
    ("legal_review", "法制审核人员占执法岗位人员比例（%）", None),
]


def _ratio(key: str, label: str, numerator: int, denominator: int, **more: Any) -> Indicator:
    """An indicator of ``numerator`` out of ``denominator``, its percentage rounded by the one rule."""
    percent = rules.percent(numerator, denominator)
    return Indicator(
        key=key, label=label, numerator=numerator, denominator=denominator, percent=percent, **more
    )


def _indicators(scope: Scope, agency_id: int, fig: Figures, *, exams_href: str | None) -> list[Indicator]:
    base = RosterFilter(agency_id=agency_id, status=StatusFilter.ACTIVE, year=scope.year)
    anyone = RosterFilter(agency_id=agency_id, year=scope.year)
    minimum = scope.policy.legal_review_ratio_min
    ok = rules.legal_review_ok(fig.legal_review, fig.enforcement, minimum)
    return [
        _ratio(
            "certified",
            "持证率（考试合格且持有效执法证）",
            fig.certified,
            fig.eligible,
            href=base.url(
                eligible=EligibleFilter.YES,
                exam=ExamFilter.VALID,
                cert_kind=CertificateKind.ENFORCEMENT,
                cert=CertFilter.VALID,
            ),
            note="分母：在岗且人员类别可以申领执法证件的人员",
        ),
        _ratio(
            "training",
            f"{scope.year} 年度培训学时达标",
            fig.training_met,
            fig.active,
            href=base.url(training=TrainingFilter.MET),
            note=f"未达标 {fig.active - fig.training_met} 人",
        ),
        _ratio(
            "exam_pass",
            f"{scope.year} 年度执法资格考试通过率",
            fig.exam_passed,
            fig.exam_sat,
            href=exams_href,
            note=f"参考 {fig.exam_sat} 人次（人员×场次），各部分均合格为通过；明细见各场次成绩",
        ),
        _ratio(
            "exam",
            "执法资格考试通过（资格在有效期内）",
            fig.exam_valid,
            fig.eligible,
            href=base.url(eligible=EligibleFilter.YES, exam=ExamFilter.VALID),
        ),
        _ratio(
            "legal_review",
            "法制审核人员占执法岗位人员比例",
            fig.legal_review,
            fig.enforcement,
            target=round(minimum * 100, 1),
            ok=ok,
            href=base.url(post=Post.LEGAL_REVIEW),
            note=f"不低于 {minimum * 100:g}%（执法岗位 {fig.enforcement} 人）",
        ),
        _ratio(
            "unqualified",
            f"{scope.year} 年度考核{'、'.join(scope.failing_grades)}",
            fig.unqualified,
            fig.active,
            href=anyone.url(rating=rules.FAILING, rating_year=scope.year),
            note="已确认的年度考核结果",
        ),
        _ratio(
            "exit",
            "退出程序未办结",
            fig.exit_open,
            fig.active,
            href=anyone.url(exit=ExitFilter.OPEN),
            note="连续两年考核不合格启动的退出案件",
        ),
    ]


async def dashboard(db: AsyncSession, scope: Scope, *, exams_href: str | None = None) -> Dashboard:
    per_agency = await indicator_figures(db, scope)
    total, children = roll_up(scope, per_agency)
    names = {i: a[0] for i, a in scope.agencies.items()}
    return Dashboard(
        year=scope.year,
        as_of=scope.as_of,
        agency_id=scope.agency_id,
        agency_name=scope.agency_name,
        indicators=_indicators(scope, scope.agency_id, total, exams_href=exams_href),
        children=[
            AgencyIndicators(
                agency_id=aid,
                agency_name=names.get(aid, "") + ("（本级）" if aid == scope.agency_id else ""),
                indicators=_indicators(scope, aid, fig, exams_href=exams_href),
            )
            for aid, fig in children
        ],
    )


@dataclass(frozen=True)
class ReadyList:
    title: str
    description: str
    href: str | None
    """None: the data it needs is not in the system yet."""


def ready_lists(year: int) -> list[ReadyList]:
    active = RosterFilter(status=StatusFilter.ACTIVE, year=year)
    anyone = RosterFilter(year=year)
    return [
        ReadyList(
            f"{year} 年度培训学时不足",
            "在岗人员中本年度净学时低于所属发证机关规定学时的人员",
            active.url(training=TrainingFilter.SHORT),
        ),
        ReadyList(
            f"{year - 1} 年度培训学时不足",
            "上一年度（已结束）未完成规定学时的在岗人员：申领、换发证件时须审查",
            active.url(training=TrainingFilter.SHORT, year=year - 1),
        ),
        ReadyList(
            f"{year - 1} 年度考核不合格（风险人员）",
            "上一年度考核不合格的在岗人员：本年度再不合格将启动退出程序",
            active.url(rating=rules.FAILING, rating_year=year - 1),
        ),
        ReadyList(
            "退出程序未办结",
            "连续两年考核不合格、退出案件尚未办结的人员",
            anyone.url(exit=ExitFilter.OPEN),
        ),
        ReadyList(
            "无有效执法资格的在岗人员",
            "未通过资格考试或考试成绩已超过有效期、资格已被取消的在岗人员",
            active.url(exam=ExamFilter.NONE),
        ),
        ReadyList(
            "证件即将到期（换证期内）",
            "有效证件距有效期届满不足换证期（默认 6 个月）：提醒持证人申请换证",
            anyone.url(cert=CertFilter.EXPIRING),
        ),
        ReadyList(
            "清理：证件已过期", "证件有效期已届满、尚未注销或换发的人员", anyone.url(cert=CertFilter.EXPIRED)
        ),
        ReadyList(
            "清理：持证人已调离、退休或离职",
            "仍持有有效证件但已不在岗的人员：应收回并注销证件",
            anyone.url(cert=CertFilter.VALID, status=StatusFilter.INACTIVE),
        ),
        ReadyList(
            "清理：同一人持有两个以上同类有效证件",
            "同一证件种类下有两个以上有效证件的人员",
            anyone.url(cert=CertFilter.DUPLICATE),
        ),
        ReadyList(
            "清理：人员类别不得持证却持有有效证件",
            "工勤、劳动合同工、临时工、劳务派遣、执法辅助人员等不得持有执法证件（按发证机关的规定）",
            anyone.url(cert=CertFilter.VALID, eligible=EligibleFilter.NO),
        ),
    ]
