"""The exam domain's JSON API under /api: banks, exams and sessions (authority), the candidate's
exam (``/api/my/exams``)."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Response

from app.exams.dependencies import CACHE, WRITE_DB, Cache, import_upload
from app.exams.fastlane import ANSWERS_SAVE, ATTEMPT_SUBMIT
from app.exams.schemas import (
    AttemptOut,
    BankOut,
    BasisIn,
    EnrolIn,
    EnrolResult,
    ExamIn,
    ExamOut,
    ImportSummary,
    MySession,
    QuestionOut,
    QuestionPage,
    ResultsOut,
    SaveIn,
    SaveOut,
    SessionIn,
    SessionOut,
    StatsOut,
)
from app.exams.services import answers, attempts, banks, exams, questions, results, sessions, views
from app.lib.errors import DomainError
from app.lib.guards import require_authority, require_officer
from app.lib.headers import PREFERENCE_APPLIED_MINIMAL, prefers_minimal
from app.lib.web import Db, MultipartForm, Req, keep_refusal, page_args, principal_of


class BankApi(Controller):
    path = "/api/exams/banks"
    tags = ["执法资格考试"]
    guards = [require_authority]

    @get("/", summary="题库列表（各类别、题型的现行题目数）")
    async def list_banks(self, db: Db) -> list[BankOut]:
        return await banks.bank_list(db)

    @post(
        "/import",
        summary="导入题库文件（multipart/form-data，字段 file，可多个）",
        description=(
            "逐个文件校验。未变化的题目不做改动；题干、选项或答案改变的题目成为新版本，已抽取的试卷仍用旧版本。"
            "一次上传要么全部导入，要么全部不导入：任何文件有错误（errors）或有不支持的题型（unsupported），"
            "返回 422 且不写入任何数据。import_supported_only=1（查询参数或表单字段）时只导入支持的题目，"
            "不支持的题目逐条列在 skipped 中（行号和原因）。没有依据的题目（GIFT 题前没有“// 依据：…”注释行、"
            "Excel 依据列为空）作为草稿导入，列在 drafts 中，填写依据前不会被抽取。"
            "支持 TOML（exam_banks 格式）、Moodle GIFT（.gift/.txt）和 Excel 题库（.xlsx：题型、题干、选项A…F、"
            "答案、解析、分类、难度、依据）；GIFT 和 Excel 文件没有题库信息，可用 code、part、field、category"
            "（查询参数或表单字段）指定，默认按文件名。"
        ),
        status_code=200,
    )
    async def import_banks(
        self,
        request: Req,
        db: Db,
        data: MultipartForm,
        import_supported_only: FromQuery[bool | None] = None,
        code: FromQuery[str | None] = None,
        part: FromQuery[str | None] = None,
        field: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
    ) -> Response[ImportSummary]:
        queried = {"code": code, "part": part, "field": field, "category": category}
        summary = await import_upload(
            request, db, data, queried=queried, supported_only=import_supported_only
        )
        if summary is None:
            raise DomainError("请选择要上传的题库文件", field="file")
        # A 422 keeps nothing: the edge rolls the upload back, every file of it.
        return Response(summary, status_code=200 if summary.ok else 422)

    @get("/{code:str}/questions", summary="题库的现行试题（草稿标注“草稿”，drafts=1 只列草稿）")
    async def list_questions(
        self,
        db: Db,
        code: FromPath[str],
        drafts: FromQuery[bool] = False,
        page: FromQuery[int | None] = None,
        per_page: FromQuery[int | None] = None,
    ) -> QuestionPage:
        p, pp = page_args(page, per_page)
        return await questions.bank_questions(db, code=code, drafts_only=drafts, page=p, per_page=pp)


class QuestionApi(Controller):
    path = "/api/exams/questions"
    tags = ["执法资格考试"]
    guards = [require_authority]

    @put(
        "/{question_id:int}/basis",
        summary="填写草稿试题的依据（填写后试题发布，可被抽取；记入审计日志）",
    )
    async def set_basis(
        self, request: Req, db: Db, question_id: FromPath[int], data: JSONBody[BasisIn]
    ) -> QuestionOut:
        row = await questions.question_basis_set(
            db, principal=principal_of(request), question_id=question_id, basis=data.basis
        )
        return questions.question_out(row)


class ExamApi(Controller):
    path = "/api/exams"
    tags = ["执法资格考试"]
    guards = [require_authority]
    dependencies = CACHE

    @get("/", summary="考试列表（含考试场次）")
    async def list_exams(self, request: Req, db: Db) -> list[ExamOut]:
        return await exams.exam_list(db, principal_of(request))

    @post(
        "/",
        summary="定义考试（考试部分、组卷规则、时长、及格分、补考次数）",
        description="未填写的考试部分及其顺序、及格分数、补考次数取发证机关的规定；填写的考试部分覆盖规定。",
        status_code=201,
    )
    async def create_exam(self, request: Req, db: Db, cache: Cache, data: JSONBody[ExamIn]) -> ExamOut:
        exam = await exams.exam_create(db, principal=principal_of(request), data=data, cache=cache)
        return await exams.exam_detail(db, principal_of(request), exam.id)

    @get("/{exam_id:int}", summary="考试详情")
    async def get_exam(self, request: Req, db: Db, exam_id: FromPath[int]) -> ExamOut:
        return await exams.exam_detail(db, principal_of(request), exam_id)

    @post("/{exam_id:int}/sessions", summary="开设考试场次", status_code=201)
    async def create_session(
        self, request: Req, db: Db, exam_id: FromPath[int], data: JSONBody[SessionIn]
    ) -> SessionOut:
        s = await sessions.session_create(db, principal=principal_of(request), exam_id=exam_id, data=data)
        out, _exam = await sessions.session_detail(db, principal_of(request), s.id)
        return out

    @get("/sessions/{session_id:int}", summary="考试场次详情")
    async def get_session(self, request: Req, db: Db, session_id: FromPath[int]) -> SessionOut:
        out, _exam = await sessions.session_detail(db, principal_of(request), session_id)
        return out

    @post(
        "/sessions/{session_id:int}/enrolments",
        summary="安排考生（人员编号、身份证号码或整个单位）",
        status_code=200,
    )
    async def enrol(
        self, request: Req, db: Db, session_id: FromPath[int], data: JSONBody[EnrolIn]
    ) -> EnrolResult:
        return await sessions.session_enrol(
            db, principal=principal_of(request), session_id=session_id, data=data
        )

    @get("/sessions/{session_id:int}/results", summary="考试成绩（按单位汇总及每名考生）")
    async def results(
        self, request: Req, db: Db, session_id: FromPath[int], agency_id: FromQuery[int | None] = None
    ) -> ResultsOut:
        return await results.session_results(db, principal_of(request), session_id, agency_id=agency_id)

    @get("/sessions/{session_id:int}/stats", summary="试题分析（答对率、区分度）")
    async def stats(self, request: Req, db: Db, session_id: FromPath[int]) -> StatsOut:
        return await results.session_stats(db, principal_of(request), session_id)


class MyExamApi(Controller):
    path = "/api/my/exams"
    tags = ["执法资格考试（考生）"]
    guards = [require_officer]
    dependencies = WRITE_DB

    @get("/", summary="我的考试（已报名的场次、各部分的作答情况）")
    async def mine(self, request: Req, db: Db, cache: Cache) -> list[MySession]:
        return await attempts.my_sessions(db, principal_of(request), cache=cache)

    @post(
        "/sessions/{session_id:int}/parts/{part_id:int}/start",
        summary="开始作答（已有未交卷的答卷时返回该答卷）",
        status_code=200,
    )
    async def start(
        self, request: Req, db: Db, cache: Cache, session_id: FromPath[int], part_id: FromPath[int]
    ) -> AttemptOut:
        return await attempts.attempt_start_view(
            db, principal=principal_of(request), session_id=session_id, part_id=part_id, cache=cache
        )

    @get(
        "/attempts/{attempt_id:int}",
        summary="答卷：试题（不含答案）、已保存的答案、服务器截止时间；交卷后为成绩",
    )
    async def attempt(self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int]) -> AttemptOut:
        return await views.attempt_view(db, principal_of(request), attempt_id, cache=cache)

    @put(
        "/attempts/{attempt_id:int}/answers",
        summary="自动保存答案（seq 为浏览器递增序号，序号大的为准；重复保存无副作用）",
        status_code=200,
        opt={"fast_lane": ANSWERS_SAVE},  # on PostgreSQL the ordinary save is answered by app.exams.fastlane
    )
    async def save(
        self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int], data: JSONBody[SaveIn]
    ) -> SaveOut:
        try:
            return await answers.answers_save(
                db, principal=principal_of(request), attempt_id=attempt_id, answers=data.answers, cache=cache
            )
        except answers.TimeUp:
            # The 409 refuses the save, but the time-up close it made stands; nothing of the save
            # itself was stored.
            keep_refusal(request)
            raise

    @post(
        "/attempts/{attempt_id:int}/submit",
        summary="交卷（重复交卷返回同一结果）",
        description="返回答卷及成绩。请求头带 `Prefer: return=minimal`（RFC 7240）时，答复只含答卷与成绩，"
        "不含试题、已存答案和答案解析，并带响应头 `Preference-Applied: return=minimal`（考试页面交卷即如此，随后打开成绩页）。",
        status_code=200,
        # On PostgreSQL the ordinary submit is answered by app.exams.fastlane.
        opt={"fast_lane": ATTEMPT_SUBMIT},
    )
    async def submit(
        self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int]
    ) -> Response[AttemptOut]:
        """The attempt with its result. With ``Prefer: return=minimal`` (RFC 7240; the exam page
        sends it, then loads the result page) the questions, the saved answers and the review are
        left out, and ``Preference-Applied: return=minimal`` says so."""
        minimal = prefers_minimal(request.headers.getall("prefer", []))
        view = await attempts.attempt_submit(
            db, principal=principal_of(request), attempt_id=attempt_id, with_paper=not minimal, cache=cache
        )
        return Response(view, headers=dict([PREFERENCE_APPLIED_MINIMAL]) if minimal else None)

    @post(
        "/attempts/{attempt_id:int}/leave", summary="记录离开考试页面（场次要求时自动交卷）", status_code=200
    )
    async def leave(self, request: Req, db: Db, cache: Cache, attempt_id: FromPath[int]) -> dict[str, bool]:
        submitted = await attempts.attempt_leave(
            db, principal=principal_of(request), attempt_id=attempt_id, cache=cache
        )
        return {"submitted": submitted}


__all__ = ["BankApi", "ExamApi", "MyExamApi", "QuestionApi"]
