"""The exam domain's HTML pages: banks, exams and sessions for the authority (/exams), the
candidate's exams (/my/exams). Form posts go through ``form_post``: 303 on success, or the form
again with its errors (the refused call rolled back)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Unpack
from urllib.parse import quote

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Response, Template

from app.accounts.selectors import agency_tree
from app.exams import rules as exam_rules
from app.exams.dependencies import CACHE, WRITE_DB, Cache, import_upload
from app.exams.paper_html import questions_html
from app.exams.rules import (
    ExamPart,
    MultipleScoring,
    PartsSource,
    QuestionCategory,
    QuestionType,
    ReviewPolicy,
)
from app.exams.schemas import EnrolIn, EnrolResult, ExamIn, PartIn, RuleIn, SessionIn
from app.exams.services.attempts import attempt_start, attempt_submit, first_start, my_sessions
from app.exams.services.banks import bank_list
from app.exams.services.exams import exam_create, exam_detail, exam_list, exam_policy
from app.exams.services.export import results_csv
from app.exams.services.questions import bank_questions, question_basis_set
from app.exams.services.results import session_results, session_stats
from app.exams.services.sessions import session_create, session_detail, session_enrol
from app.exams.services.views import attempt_view
from app.lib import clock
from app.lib.errors import DomainError, FieldError
from app.lib.guards import require_authority, require_officer
from app.lib.web import (
    Again,
    Db,
    Form,
    MultipartForm,
    Req,
    download_headers,
    form_page,
    form_post,
    page_args,
    principal_of,
    render,
    text_fields,
)

PART_ORDERS = [
    (",".join(p.value for p in order), " → ".join(p.label for p in order))
    for order in itertools.permutations(ExamPart)
]
"""The choices of the form's 考试部分顺序 (an exam's own order of its parts)."""


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
    dependencies = CACHE

    @get("/")
    async def index(self, request: Req, db: Db) -> Template:
        return render(
            "exams/index.html",
            request,
            exams=await exam_list(db, principal_of(request)),
            banks=await bank_list(db),
            msg=request.query_params.get("msg"),
        )

    # ------------------------------------------------------------ banks

    async def _banks_page(
        self, request: Req, db: Db, *, status: int = 200, summary: Any = None, error: str = ""
    ) -> Template:
        """The banks with their question counts, and the answer to the last upload."""
        banks = await bank_list(db)
        return render(
            "exams/banks.html", request, status_code=status, banks=banks, summary=summary, error=error
        )

    @get("/banks")
    async def banks(self, request: Req, db: Db) -> Template:
        return await self._banks_page(request, db)

    @post("/banks")
    async def import_banks(self, request: Req, db: Db, data: MultipartForm) -> Template:
        summary = await import_upload(request, db, data)
        if summary is None:
            return await self._banks_page(request, db, status=400, error="请选择要上传的题库文件")
        # A 422 keeps nothing: the edge rolls the upload back, every file of it.
        return await self._banks_page(request, db, status=200 if summary.ok else 422, summary=summary)

    async def _questions_page(
        self,
        request: Req,
        db: Db,
        code: str,
        *,
        drafts: bool = True,
        page: int | None = None,
        status: int = 200,
        errors: dict[int, str] | None = None,
    ) -> Template:
        page, per_page = page_args(page, None)
        listed = await bank_questions(db, code=code, drafts_only=drafts, page=page, per_page=per_page)
        return render(
            "exams/bank_questions.html",
            request,
            status_code=status,
            listed=listed,
            drafts=drafts,
            pages=max(1, -(-listed.total // per_page)),
            errors=errors or {},
            msg=request.query_params.get("msg"),
        )

    @get("/banks/{code:str}")
    async def bank_questions_page(
        self,
        request: Req,
        db: Db,
        code: FromPath[str],
        drafts: FromQuery[bool] = False,
        page: FromQuery[int | None] = None,
    ) -> Template:
        return await self._questions_page(request, db, code, drafts=drafts, page=page)

    @post("/questions/{question_id:int}/basis")
    async def question_basis(
        self, request: Req, db: Db, question_id: FromPath[int], data: Form
    ) -> Response[Any]:
        code = str(data.get("bank") or "")

        async def call() -> Any:
            return await question_basis_set(
                db,
                principal=principal_of(request),
                question_id=question_id,
                basis=str(data.get("basis") or ""),
            )

        async def again(exc: DomainError) -> Response[Any]:
            return await self._questions_page(
                request, db, code, status=exc.status_code, errors={question_id: exc.message}
            )

        return await form_post(
            db,
            call,
            redirect=lambda q: (
                f"/exams/banks/{quote(code)}?drafts=1&msg=" + quote(f"试题 {q.qid} 已填写依据并发布")
            ),
            rerender=again,
        )

    # ------------------------------------------------------------ exams

    async def _exam_form(
        self, request: Req, db: Db, form: dict[str, Any], errors: dict[str, str], status: int = 200
    ) -> Template:
        policy = await exam_policy(db, principal_of(request))
        return form_page(
            "exams/exam_form.html",
            request,
            form=form,
            errors=errors,
            status=status,
            scorings=MultipleScoring.choices(),
            orders=PART_ORDERS,
            policy=policy,
            policy_parts=[(ExamPart(p.part).label, p.duration_minutes, p.rules()) for p in policy.exam_parts],
            labels={**dict(QuestionCategory.choices()), **dict(QuestionType.choices())},
        )

    @get("/new")
    async def new_exam(self, request: Req, db: Db) -> Template:
        policy = await exam_policy(db, principal_of(request))
        form = {
            "title": f"{clock.now().year}年度行政执法资格考试",
            "pass_mark": "",
            "retakes": "",
            "multiple_scoring": MultipleScoring.ALL_OR_NOTHING.value,
            # The exam's own parts start as a copy of the policy's, to edit from.
            "parts_mode": PartsSource.POLICY.value,
            "parts_order": ",".join(
                [p.part for p in policy.exam_parts]
                + [p.value for p in ExamPart if p not in {x.part for x in policy.exam_parts}]
            ),
        }
        for plan in policy.exam_parts:
            form[f"{plan.part}_on"] = "1"
            form[f"{plan.part}_minutes"] = str(plan.duration_minutes)
            form[f"{plan.part}_blueprint"] = exam_rules.blueprint_text(plan.rules())
        return await self._exam_form(request, db, form, {})

    @post("/new")
    async def create_exam(self, request: Req, db: Db, cache: Cache, data: Form) -> Response[Any]:
        form = text_fields(data)
        errors: dict[str, str] = {}
        own = form.get("parts_mode") == PartsSource.EXAM.value
        order = [ExamPart(v) for v in form.get("parts_order", "").split(",") if v in set(ExamPart)]
        if own and sorted(order) != sorted(ExamPart):
            errors["parts_order"] = "请选择考试部分的顺序"
        parts: list[PartIn] = []
        for part in order if own else []:
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
        if own and not parts and not errors:
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
            return await self._exam_form(request, db, form, errors, 400)
        try:
            payload = ExamIn(
                title=form.get("title", "").strip() or "-",
                description=form.get("description", ""),
                pass_mark=numbers["pass_mark"],
                retakes=numbers["retakes"],
                multiple_scoring=MultipleScoring(
                    form.get("multiple_scoring") or MultipleScoring.ALL_OR_NOTHING.value
                ),
                parts=parts if own else None,
            )
        except ValueError:
            return await self._exam_form(request, db, form, {"form": "数据无效"}, 400)

        async def refused(exc: DomainError) -> Response[Any]:
            for e in exc.errors or [FieldError("form", exc.message)]:
                key = e.field
                for i, p in enumerate(parts):
                    if e.field.startswith(f"parts[{i}]"):
                        key = f"{p.part.value}_blueprint"
                errors.setdefault(key if key in form or key == "title" else "form", e.message)
            return await self._exam_form(request, db, form, errors, 400)

        return await form_post(
            db,
            lambda: exam_create(db, principal=principal_of(request), data=payload, cache=cache),
            redirect=lambda exam: f"/exams/{exam.id}?msg=created",
            rerender=refused,
        )

    @get("/{exam_id:int}")
    async def exam(self, request: Req, db: Db, exam_id: FromPath[int]) -> Template:
        return await self._exam_page(request, db, exam_id)

    async def _exam_page(self, request: Req, db: Db, exam_id: int, **again: Unpack[Again]) -> Template:
        exam = await exam_detail(db, principal_of(request), exam_id)
        now = clock.now().replace(second=0, microsecond=0)
        if not again.get("form"):
            # The next session's form: named after the exam, open from now for a day.
            again["form"] = {
                "title": f"{exam.title}（第{len(exam.sessions) + 1}场）",
                "opens_at": _local_input(now),
                "closes_at": _local_input(now + dt.timedelta(days=1)),
                "review_policy": ReviewPolicy.AFTER_CLOSE.value,
            }
        return form_page(
            "exams/exam.html",
            request,
            **again,
            exam=exam,
            policies=ReviewPolicy.choices(),
            msg=request.query_params.get("msg"),
        )

    @post("/{exam_id:int}/sessions")
    async def create_session(self, request: Req, db: Db, exam_id: FromPath[int], data: Form) -> Response[Any]:
        form = text_fields(data)

        async def refused(exc: DomainError) -> Response[Any]:
            errors = {e.field: e.message for e in exc.errors} or {"form": exc.message}
            return await self._exam_page(
                request, db, exam_id, form=form, errors=errors, status=exc.status_code
            )

        try:
            payload = SessionIn(
                title=(form.get("title") or "").strip() or "考试场次",
                opens_at=_parse_local(form.get("opens_at", ""), "opens_at"),
                closes_at=_parse_local(form.get("closes_at", ""), "closes_at"),
                review_policy=ReviewPolicy(form.get("review_policy") or ReviewPolicy.AFTER_CLOSE.value),
                submit_on_leave=bool(form.get("submit_on_leave")),
            )
        except DomainError as exc:
            return await refused(exc)
        except ValueError:
            return await self._exam_page(
                request, db, exam_id, form=form, errors={"form": "数据无效"}, status=400
            )
        return await form_post(
            db,
            lambda: session_create(db, principal=principal_of(request), exam_id=exam_id, data=payload),
            redirect=lambda s: f"/exams/sessions/{s.id}?msg=created",
            rerender=refused,
        )

    # ------------------------------------------------------------ sessions

    async def _session_page(
        self,
        request: Req,
        db: Db,
        session_id: int,
        *,
        error: str = "",
        form: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        session, exam = await session_detail(db, p, session_id)
        outcome = await session_results(db, p, session_id)
        return render(
            "exams/session.html",
            request,
            status_code=status,
            s=session,
            exam=exam,
            results=outcome,
            agencies=await agency_tree(db, p),
            msg=request.query_params.get("msg", ""),
            error=error,
            form=form or {},
        )

    @get("/sessions/{session_id:int}")
    async def session(self, request: Req, db: Db, session_id: FromPath[int]) -> Template:
        return await self._session_page(request, db, session_id)

    @post("/sessions/{session_id:int}/enrol")
    async def enrol(self, request: Req, db: Db, session_id: FromPath[int], data: Form) -> Response[Any]:
        form = text_fields(data)
        raw_numbers = form.get("id_numbers", "").replace(",", "\n").replace("，", "\n")
        agency_raw = form.get("agency_id", "").strip()

        async def refused(exc: DomainError) -> Response[Any]:
            detail = "；".join(e.message for e in exc.errors[:20]) or exc.message
            return await self._session_page(
                request, db, session_id, error=detail, form=form, status=exc.status_code
            )

        try:
            payload = EnrolIn(
                id_numbers=[n for n in raw_numbers.split() if n],
                agency_id=int(agency_raw) if agency_raw else None,
            )
        except ValueError:
            return await self._session_page(
                request, db, session_id, error="单位编号无效", form=form, status=400
            )
        if not payload.id_numbers and payload.agency_id is None:
            return await refused(DomainError("请填写身份证号码或选择单位", field="id_numbers"))

        def done(result: EnrolResult) -> str:
            msg = f"已安排 {result.added} 名考生" + (
                f"，{result.already} 名此前已安排" if result.already else ""
            )
            if result.skipped:
                msg += f"，{result.skipped} 名不在岗或人员性质不得申领执法证，未安排"
            return f"/exams/sessions/{session_id}?msg={quote(msg)}"

        return await form_post(
            db,
            lambda: session_enrol(db, principal=principal_of(request), session_id=session_id, data=payload),
            redirect=done,
            rerender=refused,
        )

    @get("/sessions/{session_id:int}/results.csv")
    async def results_csv(self, request: Req, db: Db, session_id: FromPath[int]) -> Response[bytes]:
        p = principal_of(request)
        outcome = await session_results(db, p, session_id)
        _session, exam = await session_detail(db, p, session_id)
        return Response(
            results_csv(outcome, exam.parts),
            media_type="text/csv; charset=utf-8",
            headers=download_headers(
                f"exam-results-{session_id}.csv", f"考试成绩-{outcome.session.title}.csv"
            ),
        )

    @get("/sessions/{session_id:int}/stats")
    async def stats(self, request: Req, db: Db, session_id: FromPath[int]) -> Template:
        return render(
            "exams/stats.html", request, stats=await session_stats(db, principal_of(request), session_id)
        )


class MyExamPages(Controller):
    path = "/my/exams"
    include_in_schema = False
    guards = [require_officer]
    dependencies = WRITE_DB

    async def _mine(self, request: Req, db: Db, cache: Cache, *, error: str, status: int = 200) -> Template:
        """The candidate's sessions and parts, with the refusal of the last start if any."""
        mine = await my_sessions(db, principal_of(request), cache=cache)
        return render("exams/my.html", request, status_code=status, sessions=mine, error=error)

    @get("/")
    async def mine(self, request: Req, db: Db, cache: Cache) -> Template:
        return await self._mine(request, db, cache, error=request.query_params.get("error", ""))

    @post("/sessions/{session_id:int}/parts/{part_id:int}/start")
    async def start(
        self, request: Req, db: Db, cache: Cache, session_id: FromPath[int], part_id: FromPath[int]
    ) -> Response[Any]:
        p = principal_of(request)
        writer = request.app.state.exam_writer
        if writer is not None:  # SQLite: the ordinary first start through the exam writer
            async with request.app.state.db_in_place_sessionmaker() as read:
                op = await first_start(read, principal=p, session_id=session_id, part_id=part_id, cache=cache)
            started = None if op is None else await writer.run(op)
            if started is not None:
                return Redirect(f"/my/exams/attempts/{started}", status_code=303)

        async def refused(exc: DomainError) -> Response[Any]:
            return await self._mine(request, db, cache, error=exc.message, status=exc.status_code)

        return await form_post(
            db,
            lambda: attempt_start(db, principal=p, session_id=session_id, part_id=part_id, cache=cache),
            redirect=lambda attempt: f"/my/exams/attempts/{attempt.id}",
            rerender=refused,
        )

    @get("/attempts/{attempt_id:int}")
    async def attempt(self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int]) -> Template:
        view = await attempt_view(
            db,
            principal_of(request),
            attempt_id,
            cache=cache,
            paper_if_shown=True,
            reader=request.app.state.sqlite_reader,
            driver=request.app.state.driver,
        )
        if view.status == exam_rules.AttemptStatus.OPEN:
            chosen = {a.position: set(a.choice) for a in view.answers}
            seqs = {a.position: a.seq for a in view.answers}
            return render(
                "exams/take.html",
                request,
                a=view,
                questions_html=questions_html(view.questions, chosen, seqs),
            )
        return render("exams/result.html", request, a=view, review={r.position: r for r in view.review or []})

    @post("/attempts/{attempt_id:int}/submit")
    async def submit(self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int]) -> Redirect:
        # The view is not shown: the result page that the redirect loads builds its own.
        await attempt_submit(
            db, principal=principal_of(request), attempt_id=attempt_id, with_paper=False, cache=cache
        )
        return Redirect(f"/my/exams/attempts/{attempt_id}", status_code=303)


__all__ = ["ExamPages", "MyExamPages"]
