"""HTTP for the read side: roster API and pages, exports, ready-made lists, the indicator dashboard
and the public register (公示), JSON and HTML side by side."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter
from litestar.response import File, Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib import clock
from app.lib.enums import Post, StaffType
from app.lib.errors import DomainError, TooManyRequests
from app.lib.guards import PUBLIC, require_admin
from app.lib.ratelimit import client_key
from app.lib.web import Db, Req, Year, download_headers, principal_of, recent_years, render, year_or_this
from app.rosters import charts, exports, indicators, rules
from app.rosters.register import RegisterQuery, parse_register_query, register_search
from app.rosters.rules import RosterFilter
from app.rosters.schemas import Dashboard, RegisterEntry, RegisterPage, RosterCountOut, RosterPageOut
from app.rosters.services.counts import CountCache, roster_count
from app.rosters.services.paging import roster_page
from app.rosters.services.scope import Scope, roster_scope

PerPage = Annotated[int, QueryParameter(ge=1, le=rules.PER_PAGE_MAX)]

FILTER_DOC = (
    "筛选参数（均可选，组合即可分享的链接）：agency_id 单位（含下级）、q 姓名前缀或身份证号码、field 执法类别、"
    "staff_type 人员类别、post 岗位、status 在岗状态（inactive：非在岗）、eligible 人员类别可否持证（yes / no）、exam 资格考试（valid 有效 / none 无有效资格）、"
    "cert_kind 证件种类（enforcement / supervision）、cert 证件（valid 有效、none 无有效证件、expiring 换证期内到期、expired、suspended、revoked、cancelled、lost、duplicate 同类有效证件两个以上）、"
    "rating 考核等次（优秀 / 合格 / 基本合格 / 不合格）与 rating_year 考核年度（不填：最近一次考核）、exit 退出程序（open 未办结 / none）、"
    "year 学时年度（默认今年）、training 学时（met 达标 / short 不足）、sort 排序（agency / name / newest）。"
)


def _filter(request: Req) -> RosterFilter:
    return rules.parse_filter(dict(request.query_params), default_year=clock.today().year)


async def _dashboard(
    db: AsyncSession, request: Req, agency_id: int | None, year: int | None
) -> tuple[Scope, Dashboard]:
    """The indicator dashboard of the agency asked for (default: the principal's) and the year."""
    p = principal_of(request)
    scope = await roster_scope(db, p, agency_id=agency_id, year=year_or_this(year))
    # The exam results behind the pass rate: the authority's exam pages (others may not open them).
    board = await indicators.dashboard(db, scope, exams_href="/exams" if p.is_authority else None)
    return scope, board


def _counts(state: State) -> CountCache:
    """The application's roster counts (``create_app`` puts them on the state)."""
    counts: CountCache = state.roster_counts
    return counts


async def _scope(db: AsyncSession, request: Req, f: RosterFilter) -> Scope:
    return await roster_scope(db, principal_of(request), agency_id=f.agency_id, year=year_or_this(f.year))


# ================================================================= JSON API


class RosterApi(Controller):
    path = "/api/rosters"
    tags = ["名册与统计"]
    guards = [require_admin]

    @get("/", summary="执法人员资格名册（筛选、排序、键集分页）", description=FILTER_DOC)
    async def roster(
        self,
        request: Req,
        db: Db,
        state: State,
        after: FromQuery[str | None] = None,
        per_page: PerPage = 50,
        count: Annotated[
            bool,
            QueryParameter(
                description="是否统计符合条件的总人数（total）。false：只取本页，total 仅在已有统计时给出，"
                "否则为 null，可另行调用 /api/rosters/count"
            ),
        ] = True,
    ) -> RosterPageOut:
        f = _filter(request)
        scope = await _scope(db, request, f)
        page = await roster_page(
            db,
            principal_of(request),
            scope,
            f,
            after=after,
            per_page=per_page,
            counts=_counts(state),
            with_total=count,
            count_maker=state.db_sessionmaker,
        )
        return RosterPageOut(
            items=page.rows, total=page.total, next_cursor=page.next_cursor, filter=f.query()
        )

    @get("/count", summary="名册筛选条件下的总人数", description=FILTER_DOC)
    async def count(self, request: Req, db: Db, state: State) -> RosterCountOut:
        f = _filter(request)
        scope = await _scope(db, request, f)
        total = await roster_count(db, scope, f, counts=_counts(state))
        return RosterCountOut(total=total, filter=f.query())

    @get("/dashboard", summary="指标看板（持证率、学时达标率、资格考试、法制审核人员比例）")
    async def dashboard(
        self, request: Req, db: Db, agency_id: FromQuery[int | None] = None, year: Year = None
    ) -> Dashboard:
        _, board = await _dashboard(db, request, agency_id, year)
        return board


class RosterExports(Controller):
    """The exports, at the same query as the page: exactly the rows the filter keeps."""

    path = "/rosters"
    include_in_schema = False
    guards = [require_admin]

    @get("/export.csv")
    async def export_csv(self, request: Req, db: Db, state: State) -> Stream:
        f = _filter(request)
        scope = await _scope(db, request, f)
        name = f"执法人员名册-{scope.agency_name}-{clock.today():%Y%m%d}.csv"
        return Stream(
            exports.csv_stream(state.db_sessionmaker, scope, f, principal_of(request)),
            media_type="text/csv; charset=utf-8",
            headers=download_headers("roster.csv", name),
        )

    @get("/export.xlsx")
    async def export_xlsx(self, request: Req, db: Db, state: State) -> File:
        f = _filter(request)
        scope = await _scope(db, request, f)
        # A temporary file in the system's temp directory, removed once sent (or on failure).
        path = await exports.xlsx_file(state.db_sessionmaker, scope, f, principal_of(request))
        name = f"执法人员名册-{scope.agency_name}-{clock.today():%Y%m%d}.xlsx"
        return File(
            path=path,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=download_headers("roster.xlsx", name),
            background=BackgroundTask(_unlink, path),
        )


async def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ================================================================= HTML pages


def _scope_choices(scope: Scope) -> dict[str, Any]:
    """What the roster and the dashboard offer to pick: the agencies in scope (indented from the
    shallowest) and the recent years."""
    return {
        "agencies": [(i, a[0], a[2]) for i, a in scope.agencies.items()],
        "base_depth": min((a[2] for a in scope.agencies.values()), default=0),
        "years": recent_years(),
    }


class RosterPages(Controller):
    path = "/rosters"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def roster(
        self,
        request: Req,
        db: Db,
        state: State,
        after: FromQuery[str | None] = None,
        per_page: PerPage = 50,
        count: FromQuery[str | None] = None,
    ) -> Template:
        p = principal_of(request)
        try:
            f = _filter(request)
        except DomainError as exc:
            f, error = RosterFilter(year=clock.today().year), exc.message
        else:
            error = ""
        scope = await _scope(db, request, f)
        # The rows at once; an exact total not known yet is fetched by the page's script from
        # /api/rosters/count (or by the 统计人数 link without scripts) so it never holds the rows back.
        page = await roster_page(
            db, p, scope, f, after=after, per_page=per_page, counts=_counts(state), with_total=count == "1"
        )
        policy = scope.policy
        return render(
            "rosters/roster.html",
            request,
            f=f,
            error=error,
            page=page,
            scope=scope,
            **_scope_choices(scope),
            fields=policy.enforcement_fields,
            staff_types=StaffType.choices(),
            posts=Post.choices(),
            statuses=rules.StatusFilter.choices(),
            eligibles=rules.EligibleFilter.choices(),
            exams=rules.ExamFilter.choices(),
            cert_kinds=CertificateKind.choices(),
            certs=rules.CertFilter.choices(),
            grades=[(rules.FAILING, rules.FAILING_LABEL), *((g, g) for g in policy.grades)],
            exits=rules.ExitFilter.choices(),
            trainings=rules.TrainingFilter.choices(),
            sorts=rules.RosterSort.choices(),
            first_page=(after is not None),
            share_url=str(request.base_url).rstrip("/") + f.url(),
        )

    @get("/lists")
    async def lists(self, request: Req) -> Template:
        year = clock.today().year
        return render("rosters/lists.html", request, lists=indicators.ready_lists(year))

    @get("/dashboard")
    async def dashboard(
        self, request: Req, db: Db, agency_id: FromQuery[int | None] = None, year: Year = None
    ) -> Template:
        scope, board = await _dashboard(db, request, agency_id, year)
        return render(
            "rosters/dashboard.html",
            request,
            board=board,
            scope=scope,
            **_scope_choices(scope),
            charts={
                key: charts.bar_chart(
                    [
                        (
                            c.agency_name,
                            next((i.percent for i in c.indicators if i.key == key), None),
                            next((i.href for i in c.indicators if i.key == key), ""),
                        )
                        for c in board.children
                    ],
                    title=title,
                    target=target,
                )
                for key, title, target in indicators.CHARTED
            },
        )


# ================================================================= public register (公示)


async def _register(request: Req, state: State) -> RegisterQuery:
    # Anyone may read it, so a client gets a bounded number of searches a minute (no enumeration).
    await state.register_limiter.hit(
        client_key(request.client and (request.client.host, request.client.port))
    )
    return parse_register_query(dict(request.query_params))


class RegisterApi(Controller):
    path = "/api/register"
    tags = ["证件公示"]
    opt = PUBLIC

    @get(
        "/",
        summary="执法证件持证人员公示（按姓名、证号或单位查询）",
        description="q：姓名（前缀）或证号（完整）；agency：单位名称的一部分；status：valid（默认）、all 或某一状态；after：翻页。不含身份证号码。每个客户端每分钟限 60 次。",
    )
    async def search(self, request: Req, db: Db, state: State) -> RegisterPage:
        rq = await _register(request, state)
        items, nxt = await register_search(db, rq, today=clock.today())
        return RegisterPage(items=items, next_after=nxt)


def _register_page(
    request: Req,
    rq: RegisterQuery,
    items: list[RegisterEntry],
    next_url: str | None,
    *,
    error: str = "",
    status_code: int = 200,
) -> Template:
    return render(
        "rosters/register.html",
        request,
        rq=rq,
        items=items,
        next_url=next_url,
        error=error,
        statuses=CertificateStatus.choices(),
        status_code=status_code,
    )


class RegisterPages(Controller):
    path = "/register"
    include_in_schema = False
    opt = PUBLIC

    @get("/")
    async def register(self, request: Req, db: Db, state: State) -> Template:
        try:
            rq = await _register(request, state)
        except TooManyRequests:
            raise
        except DomainError as exc:
            return _register_page(request, RegisterQuery(), [], None, error=exc.message, status_code=400)
        items, nxt = await register_search(db, rq, today=clock.today())
        query = {
            k: v
            for k, v in {
                "q": rq.q,
                "agency": rq.agency,
                "status": rq.status.value if rq.status else "all",
            }.items()
            if v
        }
        next_url = f"/register?{urlencode({**query, 'after': nxt})}" if nxt else None
        return _register_page(request, rq, items, next_url)


ROUTES = [RosterApi, RosterExports, RosterPages, RegisterApi, RegisterPages]
