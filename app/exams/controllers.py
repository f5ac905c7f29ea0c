"""HTTP for the exam domain: the JSON API under /api and the HTML pages, side by side.

The candidate's routes read and write through write-intent sessions: any access may close an attempt
past its time-up (lazily), and on SQLite a read transaction must not turn into a writer halfway.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import agency_tree
from app.exams import importer
from app.exams import rules as exam_rules
from app.exams import services as svc
from app.exams.fastlane import ANSWERS_SAVE, ATTEMPT_SUBMIT
from app.exams.rules import ExamPart, MultipleScoring, QuestionCategory, QuestionType, ReviewPolicy
from app.exams.schemas import (
    AttemptOut,
    BankOut,
    EnrolIn,
    EnrolResult,
    ExamIn,
    ExamOut,
    ImportSummary,
    MySession,
    PartIn,
    ResultsOut,
    RuleIn,
    SaveIn,
    SaveOut,
    SessionIn,
    SessionOut,
    StatsOut,
)
from app.lib import clock
from app.lib.errors import DomainError, FieldError
from app.lib.guards import require_authority, require_officer
from app.lib.headers import PREFERENCE_APPLIED_MINIMAL, prefers_minimal
from app.lib.web import principal_of, provide_write_db, render

Req = Request[Any, Any, Any]
Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
MultipartForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


WRITE_DB = {"db": Provide(provide_write_db)}


async def _uploads(data: dict[str, Any]) -> list[tuple[str, bytes]]:
    files = data.get("file")
    items = files if isinstance(files, list) else [files]
    out = []
    for f in items:
        if isinstance(f, UploadFile):
            content = await f.read()
            if content or f.filename:
                out.append((f.filename or "upload", content))
    return out


# ================================================================= JSON API


class BankApi(Controller):
    path = "/api/exams/banks"
    tags = ["执法资格考试"]
    guards = [require_authority]

    @get("/", summary="题库列表（各类别、题型的现行题目数）")
    async def list_banks(self, db: AsyncSession) -> list[BankOut]:
        return await svc.bank_list(db)

    @post(
        "/import",
        summary="导入题库文件（multipart/form-data，字段 file，可多个）",
        description=(
            "逐个文件校验并导入。未变化的题目不做改动；题干、选项或答案改变的题目成为新版本，已抽取的试卷仍用旧版本。"
            "有错误的文件整个不导入，errors 列出位置和原因；不支持的题型列在 unsupported 中。"
            "全部成功返回 200，否则 422（已成功的文件仍已导入）。支持 TOML（exam_banks 格式）、Moodle GIFT（.gift/.txt）"
            "和 Excel 题库（.xlsx：题型、题干、选项A…F、答案、解析、分类、难度）；GIFT 和 Excel 文件没有题库信息，"
            "可用 code、part、field、category 指定（默认按文件名）。"
        ),
        status_code=200,
    )
    async def import_banks(
        self, request: Req, db: AsyncSession, data: MultipartForm
    ) -> Response[ImportSummary]:
        files = await _uploads(data)
        if not files:
            raise DomainError("请选择要上传的题库文件", field="file")
        summary = await importer.import_files(db, principal=principal_of(request), files=files)
        return Response(summary, status_code=200 if summary.ok else 422)


class ExamApi(Controller):
    path = "/api/exams"
    tags = ["执法资格考试"]
    guards = [require_authority]

    @get("/", summary="考试列表（含考试场次）")
    async def list_exams(self, request: Req, db: AsyncSession) -> list[ExamOut]:
        return await svc.exam_list(db, principal_of(request))

    @post("/", summary="定义考试（考试部分、组卷规则、时长、及格分、补考次数）", status_code=201)
    async def create_exam(self, request: Req, db: AsyncSession, data: ExamIn) -> ExamOut:
        exam = await svc.exam_create(db, principal=principal_of(request), data=data)
        return await svc.exam_detail(db, principal_of(request), exam.id)

    @get("/{exam_id:int}", summary="考试详情")
    async def get_exam(self, request: Req, db: AsyncSession, exam_id: int) -> ExamOut:
        return await svc.exam_detail(db, principal_of(request), exam_id)

    @post("/{exam_id:int}/sessions", summary="开设考试场次", status_code=201)
    async def create_session(
        self, request: Req, db: AsyncSession, exam_id: int, data: SessionIn
    ) -> SessionOut:
        s = await svc.session_create(db, principal=principal_of(request), exam_id=exam_id, data=data)
        out, _exam = await svc.session_detail(db, principal_of(request), s.id)
        return out

    @get("/sessions/{session_id:int}", summary="考试场次详情")
    async def get_session(self, request: Req, db: AsyncSession, session_id: int) -> SessionOut:
        out, _exam = await svc.session_detail(db, principal_of(request), session_id)
        return out

    @post(
        "/sessions/{session_id:int}/enrolments",
        summary="安排考生（人员编号、身份证号码或整个单位）",
        status_code=200,
    )
    async def enrol(self, request: Req, db: AsyncSession, session_id: int, data: EnrolIn) -> EnrolResult:
        return await svc.session_enrol(db, principal=principal_of(request), session_id=session_id, data=data)

    @get("/sessions/{session_id:int}/results", summary="考试成绩（按单位汇总及每名考生）")
    async def results(
        self, request: Req, db: AsyncSession, session_id: int, agency_id: FromQuery[int | None] = None
    ) -> ResultsOut:
        return await svc.session_results(db, principal_of(request), session_id, agency_id=agency_id)

    @get("/sessions/{session_id:int}/stats", summary="试题分析（答对率、区分度）")
    async def stats(self, request: Req, db: AsyncSession, session_id: int) -> StatsOut:
        return await svc.session_stats(db, principal_of(request), session_id)


class MyExamApi(Controller):
    path = "/api/my/exams"
    tags = ["执法资格考试（考生）"]
    guards = [require_officer]
    dependencies = WRITE_DB

    @get("/", summary="我的考试（已报名的场次、各部分的作答情况）")
    async def mine(self, request: Req, db: AsyncSession) -> list[MySession]:
        return await svc.my_sessions(db, principal_of(request))

    @post(
        "/sessions/{session_id:int}/parts/{part_id:int}/start",
        summary="开始作答（已有未交卷的答卷时返回该答卷）",
        status_code=200,
    )
    async def start(self, request: Req, db: AsyncSession, session_id: int, part_id: int) -> AttemptOut:
        return await svc.attempt_start_view(
            db, principal=principal_of(request), session_id=session_id, part_id=part_id
        )

    @get(
        "/attempts/{attempt_id:int}",
        summary="答卷：试题（不含答案）、已保存的答案、服务器截止时间；交卷后为成绩",
    )
    async def attempt(self, request: Req, db: AsyncSession, attempt_id: int) -> AttemptOut:
        return await svc.attempt_view(db, principal_of(request), attempt_id)

    @put(
        "/attempts/{attempt_id:int}/answers",
        summary="自动保存答案（seq 为浏览器递增序号，序号大的为准；重复保存无副作用）",
        status_code=200,
        opt={"fast_lane": ANSWERS_SAVE},  # on PostgreSQL the ordinary save is answered by app.exams.fastlane
    )
    async def save(self, request: Req, db: AsyncSession, attempt_id: int, data: SaveIn) -> SaveOut:
        return await svc.answers_save(
            db, principal=principal_of(request), attempt_id=attempt_id, answers=data.answers
        )

    @post(
        "/attempts/{attempt_id:int}/submit",
        summary="交卷（重复交卷返回同一结果）",
        description="返回答卷及成绩。请求头带 `Prefer: return=minimal`（RFC 7240）时，答复只含答卷与成绩，"
        "不含试题、已存答案和答案解析，并带响应头 `Preference-Applied: return=minimal`（考试页面交卷即如此，随后打开成绩页）。",
        status_code=200,
        # On PostgreSQL the ordinary submit is answered by app.exams.fastlane.
        opt={"fast_lane": ATTEMPT_SUBMIT},
    )
    async def submit(self, request: Req, db: AsyncSession, attempt_id: int) -> Response[AttemptOut]:
        """The attempt with its result. With ``Prefer: return=minimal`` (RFC 7240; the exam page
        sends it, then loads the result page) the questions, the saved answers and the review are
        left out, and ``Preference-Applied: return=minimal`` says so."""
        minimal = prefers_minimal(request.headers.getall("prefer", []))
        view = await svc.attempt_submit(
            db, principal=principal_of(request), attempt_id=attempt_id, with_paper=not minimal
        )
        return Response(view, headers=dict([PREFERENCE_APPLIED_MINIMAL]) if minimal else None)

    @post(
        "/attempts/{attempt_id:int}/leave", summary="记录离开考试页面（场次要求时自动交卷）", status_code=200
    )
    async def leave(self, request: Req, db: AsyncSession, attempt_id: int) -> dict[str, bool]:
        submitted = await svc.attempt_leave(db, principal=principal_of(request), attempt_id=attempt_id)
        return {"submitted": submitted}


# ================================================================= HTML pages

DEFAULT_BLUEPRINTS = {
    ExamPart.PUBLIC: "公共法律知识 单选题 20 2\n公共法律知识 多选题 10 2\n公共法律知识 判断题 10 1\n"
    "新法律法规 单选题 10 2\n新法律法规 判断题 10 1",
    ExamPart.SPECIALISED: "专门法律知识 单选题 15 3\n专门法律知识 多选题 5 4\n专门法律知识 判断题 15 2\n新法律法规 判断题 2 2.5",
}
DEFAULT_MINUTES = {ExamPart.PUBLIC: 60, ExamPart.SPECIALISED: 45}


def _local_input(value: dt.datetime) -> str:
    return clock.to_beijing(value).strftime("%Y-%m-%dT%H:%M")


def _parse_local(raw: str, field: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise DomainError("时间格式应为 YYYY-MM-DD HH:MM", field=field) from exc
    return clock.to_beijing(value)


class ExamPages(Controller):
    path = "/exams"
    include_in_schema = False
    guards = [require_authority]

    @get("/")
    async def index(self, request: Req, db: AsyncSession) -> Template:
        exams = await svc.exam_list(db, principal_of(request))
        banks = await svc.bank_list(db)
        return render(
            "exams/index.html", request, exams=exams, banks=banks, msg=request.query_params.get("msg")
        )

    # ------------------------------------------------------------ banks

    @get("/banks")
    async def banks(self, request: Req, db: AsyncSession) -> Template:
        return render("exams/banks.html", request, banks=await svc.bank_list(db), summary=None, error="")

    @post("/banks")
    async def import_banks(self, request: Req, db: AsyncSession, data: MultipartForm) -> Template:
        files = await _uploads(data)
        if not files:
            return render(
                "exams/banks.html",
                request,
                status_code=400,
                banks=await svc.bank_list(db),
                summary=None,
                error="请选择要上传的题库文件",
            )
        options = {k: str(data.get(k) or "").strip() or None for k in ("code", "part", "field", "category")}
        summary = await importer.import_files(db, principal=principal_of(request), files=files, **options)
        return render(
            "exams/banks.html",
            request,
            status_code=200 if summary.ok else 422,
            banks=await svc.bank_list(db),
            summary=summary,
            error="",
        )

    # ------------------------------------------------------------ exams

    def _exam_form(
        self, request: Req, form: dict[str, Any], errors: dict[str, str], status: int = 200
    ) -> Template:
        return render(
            "exams/exam_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors,
            scorings=MultipleScoring.choices(),
        )

    @get("/new")
    async def new_exam(self, request: Req) -> Template:
        form = {
            "title": f"{clock.now().year}年度行政执法资格考试",
            "pass_mark": "",
            "retakes": "",
            "multiple_scoring": MultipleScoring.ALL_OR_NOTHING.value,
            "public_on": "1",
            "public_minutes": DEFAULT_MINUTES[ExamPart.PUBLIC],
            "public_blueprint": DEFAULT_BLUEPRINTS[ExamPart.PUBLIC],
            "specialised_on": "1",
            "specialised_minutes": DEFAULT_MINUTES[ExamPart.SPECIALISED],
            "specialised_blueprint": DEFAULT_BLUEPRINTS[ExamPart.SPECIALISED],
        }
        return self._exam_form(request, form, {})

    @post("/new")
    async def create_exam(self, request: Req, db: AsyncSession, data: Form) -> Any:
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        errors: dict[str, str] = {}
        parts: list[PartIn] = []
        for part in ExamPart:
            if not form.get(f"{part.value}_on"):
                continue
            rules_, problems = exam_rules.parse_blueprint(form.get(f"{part.value}_blueprint", ""))
            if problems:
                errors[f"{part.value}_blueprint"] = "；".join(str(e) for e in problems)
                continue
            try:
                minutes = int(form.get(f"{part.value}_minutes", "0"))
                if not 1 <= minutes <= 600:
                    raise ValueError
            except ValueError:
                errors[f"{part.value}_minutes"] = "考试时长应为 1 到 600 之间的整数（分钟）"
                continue
            parts.append(
                PartIn(
                    part=part,
                    duration_minutes=minutes,
                    blueprint=[
                        RuleIn(
                            category=QuestionCategory(r.category),
                            type=QuestionType(r.type),
                            count=r.count,
                            points=r.points,
                            bank=r.bank,
                        )
                        for r in rules_
                    ],
                )
            )
        if not parts and not errors:
            errors["form"] = "至少选择一个考试部分"
        numbers: dict[str, int | None] = {}
        for name, low, high in (("pass_mark", 1, 100), ("retakes", 0, 5)):
            raw = form.get(name, "").strip()
            if not raw:
                numbers[name] = None
                continue
            try:
                numbers[name] = int(raw)
                if not low <= int(raw) <= high:
                    raise ValueError
            except ValueError:
                errors[name] = f"应为 {low} 到 {high} 之间的整数"
        if errors:
            return self._exam_form(request, form, errors, 400)
        try:
            payload = ExamIn(
                title=form.get("title", "").strip() or "-",
                description=form.get("description", ""),
                pass_mark=numbers["pass_mark"],
                retakes=numbers["retakes"],
                multiple_scoring=MultipleScoring(
                    form.get("multiple_scoring") or MultipleScoring.ALL_OR_NOTHING.value
                ),
                parts=parts,
            )
            exam = await svc.exam_create(db, principal=principal_of(request), data=payload)
        except (DomainError, ValueError) as exc:
            await db.rollback()
            if isinstance(exc, DomainError):
                for e in exc.errors or [FieldError("form", exc.message)]:
                    key = e.field
                    for i, p in enumerate(parts):
                        if e.field.startswith(f"parts[{i}]"):
                            key = f"{p.part.value}_blueprint"
                    errors.setdefault(key if key in form or key == "title" else "form", e.message)
            else:
                errors["form"] = "数据无效"
            return self._exam_form(request, form, errors, 400)
        return Redirect(f"/exams/{exam.id}?msg=created", status_code=303)

    @get("/{exam_id:int}")
    async def exam(self, request: Req, db: AsyncSession, exam_id: int) -> Template:
        return await self._exam_page(request, db, exam_id)

    async def _exam_page(
        self,
        request: Req,
        db: AsyncSession,
        exam_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        exam = await svc.exam_detail(db, principal_of(request), exam_id)
        now = clock.now().replace(second=0, microsecond=0)
        default = {
            "title": f"{exam.title}（第{len(exam.sessions) + 1}场）",
            "opens_at": _local_input(now),
            "closes_at": _local_input(now + dt.timedelta(days=1)),
            "review_policy": ReviewPolicy.AFTER_CLOSE.value,
        }
        return render(
            "exams/exam.html",
            request,
            status_code=status,
            exam=exam,
            form=form or default,
            errors=errors or {},
            policies=ReviewPolicy.choices(),
            msg=request.query_params.get("msg"),
        )

    @post("/{exam_id:int}/sessions")
    async def create_session(self, request: Req, db: AsyncSession, exam_id: int, data: Form) -> Any:
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        try:
            payload = SessionIn(
                title=(form.get("title") or "").strip() or "考试场次",
                opens_at=_parse_local(form.get("opens_at", ""), "opens_at"),
                closes_at=_parse_local(form.get("closes_at", ""), "closes_at"),
                review_policy=ReviewPolicy(form.get("review_policy") or ReviewPolicy.AFTER_CLOSE.value),
                submit_on_leave=bool(form.get("submit_on_leave")),
            )
            s = await svc.session_create(db, principal=principal_of(request), exam_id=exam_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            errors = {e.field: e.message for e in exc.errors} or {"form": exc.message}
            return await self._exam_page(
                request, db, exam_id, form=form, errors=errors, status=exc.status_code
            )
        except ValueError:
            await db.rollback()
            return await self._exam_page(
                request, db, exam_id, form=form, errors={"form": "数据无效"}, status=400
            )
        return Redirect(f"/exams/sessions/{s.id}?msg=created", status_code=303)

    # ------------------------------------------------------------ sessions

    async def _session_page(
        self,
        request: Req,
        db: AsyncSession,
        session_id: int,
        *,
        msg: str = "",
        error: str = "",
        form: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        session, exam = await svc.session_detail(db, p, session_id)
        results = await svc.session_results(db, p, session_id)
        return render(
            "exams/session.html",
            request,
            status_code=status,
            s=session,
            exam=exam,
            results=results,
            agencies=await agency_tree(db, p),
            msg=msg or request.query_params.get("msg", ""),
            error=error,
            form=form or {},
        )

    @get("/sessions/{session_id:int}")
    async def session(self, request: Req, db: AsyncSession, session_id: int) -> Template:
        return await self._session_page(request, db, session_id)

    @post("/sessions/{session_id:int}/enrol")
    async def enrol(self, request: Req, db: AsyncSession, session_id: int, data: Form) -> Any:
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        raw_numbers = form.get("id_numbers", "").replace(",", "\n").replace("，", "\n")
        agency_raw = form.get("agency_id", "").strip()
        try:
            payload = EnrolIn(
                id_numbers=[n for n in raw_numbers.split() if n],
                agency_id=int(agency_raw) if agency_raw else None,
            )
            if not payload.id_numbers and payload.agency_id is None:
                raise DomainError("请填写身份证号码或选择单位", field="id_numbers")
            result = await svc.session_enrol(
                db, principal=principal_of(request), session_id=session_id, data=payload
            )
        except DomainError as exc:
            await db.rollback()
            detail = "；".join(e.message for e in exc.errors[:20]) or exc.message
            return await self._session_page(
                request, db, session_id, error=detail, form=form, status=exc.status_code
            )
        except ValueError:
            await db.rollback()
            return await self._session_page(
                request, db, session_id, error="单位编号无效", form=form, status=400
            )
        msg = f"已安排 {result.added} 名考生" + (f"，{result.already} 名此前已安排" if result.already else "")
        if result.skipped:
            msg += f"，{result.skipped} 名不在岗或人员性质不得申领执法证，未安排"
        return await self._session_page(request, db, session_id, msg=msg)

    @get("/sessions/{session_id:int}/results.csv")
    async def results_csv(self, request: Req, db: AsyncSession, session_id: int) -> Response[bytes]:
        p = principal_of(request)
        results = await svc.session_results(db, p, session_id)
        _session, exam = await svc.session_detail(db, p, session_id)
        name = quote(f"考试成绩-{results.session.title}.csv")
        return Response(
            svc.results_csv(results, exam.parts),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f"attachment; filename=\"exam-results-{session_id}.csv\"; filename*=UTF-8''{name}",
                "Cache-Control": "no-store",
            },
        )

    @get("/sessions/{session_id:int}/stats")
    async def stats(self, request: Req, db: AsyncSession, session_id: int) -> Template:
        stats = await svc.session_stats(db, principal_of(request), session_id)
        return render("exams/stats.html", request, stats=stats)


class MyExamPages(Controller):
    path = "/my/exams"
    include_in_schema = False
    guards = [require_officer]
    dependencies = WRITE_DB

    @get("/")
    async def mine(self, request: Req, db: AsyncSession) -> Template:
        sessions = await svc.my_sessions(db, principal_of(request))
        return render(
            "exams/my.html", request, sessions=sessions, error=request.query_params.get("error", "")
        )

    @post("/sessions/{session_id:int}/parts/{part_id:int}/start")
    async def start(self, request: Req, db: AsyncSession, session_id: int, part_id: int) -> Any:
        p = principal_of(request)
        try:
            attempt = await svc.attempt_start(db, principal=p, session_id=session_id, part_id=part_id)
        except DomainError as exc:
            await db.rollback()
            if exc.status_code == 404:
                raise
            sessions = await svc.my_sessions(db, p)
            return render(
                "exams/my.html", request, status_code=exc.status_code, sessions=sessions, error=exc.message
            )
        return Redirect(f"/my/exams/attempts/{attempt.id}", status_code=303)

    @get("/attempts/{attempt_id:int}")
    async def attempt(self, request: Req, db: AsyncSession, attempt_id: int) -> Template:
        view = await svc.attempt_view(db, principal_of(request), attempt_id)
        if view.status == exam_rules.AttemptStatus.OPEN:
            chosen = {a.position: set(a.choice) for a in view.answers}
            seqs = {a.position: a.seq for a in view.answers}
            return render("exams/take.html", request, a=view, chosen=chosen, seqs=seqs)
        return render("exams/result.html", request, a=view, review={r.position: r for r in view.review or []})

    @post("/attempts/{attempt_id:int}/submit")
    async def submit(self, request: Req, db: AsyncSession, attempt_id: int) -> Redirect:
        # The view is not shown: the result page that the redirect loads builds its own.
        await svc.attempt_submit(db, principal=principal_of(request), attempt_id=attempt_id, with_paper=False)
        return Redirect(f"/my/exams/attempts/{attempt_id}", status_code=303)


ROUTES: list[Any] = [BankApi, ExamApi, MyExamApi, ExamPages, MyExamPages]
