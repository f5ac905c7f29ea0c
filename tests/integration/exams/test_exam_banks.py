"""Importing banks: idempotent, versioned, errors with positions; the console command and the upload."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.cli import cli
from app.exams.models import ExamAttempt, ExamQuestion
from app.exams.services.attempts import attempt_start
from app.exams.services.exams import exam_create, exam_detail
from app.exams.services.sessions import session_create, session_enrol
from app.settings import load_settings
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.exams.conftest import (
    PUBLIC_SIZES,
    bank_toml,
    import_text,
    make_exam,
    officer_principal,
)

ROOT = Path(__file__).resolve().parents[3]


async def _count(db: AsyncSession, model: Any) -> int:
    n = await db.scalar(select(func.count()).select_from(model))
    await db.commit()
    return int(n or 0)


async def test_reimport_is_idempotent_and_changes_make_versions(db: AsyncSession, world: World) -> None:
    text = bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P")
    first = await import_text(db, text)
    assert (first.loaded, first.unchanged, first.new_versions) == (16, 0, 0)
    events = await _count(db, AuditEvent)
    again = await import_text(db, text)
    assert (again.loaded, again.unchanged, again.new_versions, again.updated, again.retired) == (
        0,
        16,
        0,
        0,
        0,
    )
    assert await _count(db, AuditEvent) == events  # nothing changed, nothing recorded
    assert await _count(db, ExamQuestion) == 16

    # An explanation fixed: same version, updated in place. A key changed: a new version.
    edited = text.replace('explanation = "解析之秘密文字pub1"', 'explanation = "更正后的解析"')
    edited = edited.replace(
        'stem = "pub 第 2 题的题干（single）"\noptions = ["选项甲2", "选项乙2", "选项丙2", "选项丁2"]\nanswer = "B"',
        'stem = "pub 第 2 题的题干（single）"\noptions = ["选项甲2", "选项乙2", "选项丙2", "选项丁2"]\nanswer = "C"',
    )
    assert edited.count('answer = "C"') == 1
    # and the last question removed from the file
    edited = edited[: edited.rindex("[[questions]]")]
    report = await import_text(db, edited)
    assert (report.updated, report.new_versions, report.retired, report.unchanged) == (1, 1, 1, 13)
    rows = (
        await db.scalars(select(ExamQuestion).where(ExamQuestion.qid == "P-0002").order_by(ExamQuestion.id))
    ).all()
    assert [r.is_current for r in rows] == [False, True]
    assert [json.loads(r.answer_json) for r in rows] == [[1], [2]]
    assert await db.scalar(select(ExamQuestion.is_current).where(ExamQuestion.qid == "P-0016")) is False
    assert (
        await db.scalar(select(ExamQuestion.explanation).where(ExamQuestion.qid == "P-0001"))
        == "更正后的解析"
    )
    await db.commit()
    # Back to the original: the old version of P-0002 is current again (no third row).
    back = await import_text(db, text)
    assert back.new_versions == 1 and back.loaded == 1  # P-0002 back; P-0016 returns
    assert await _count(db, ExamQuestion) == 17


async def test_papers_keep_the_version_they_drew(db: AsyncSession, world: World) -> None:
    setup = await make_exam(db, world)
    attempt = await attempt_start(
        db, principal=officer_principal(world), session_id=setup.session_id, part_id=setup.public_part_id
    )
    attempt_id = attempt.id
    drawn = {p[0] for p in json.loads(attempt.paper_json)}
    # Every key of the bank changes.
    text = bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P").replace('answer = "B"', 'answer = "D"')
    report = await import_text(db, text)
    assert report.new_versions == 8
    row = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    assert row is not None and {p[0] for p in json.loads(row.paper_json)} == drawn
    stale = await db.scalar(
        select(func.count())
        .select_from(ExamQuestion)
        .where(ExamQuestion.id.in_(drawn), ExamQuestion.is_current.is_(False))
    )
    assert stale and stale > 0  # the drawn rows still exist, no longer current


async def test_a_bad_file_loads_nothing_and_says_where(
    db: AsyncSession, world: World, client: Client
) -> None:
    bad = bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P").replace('answer = "B"', 'answer = "Z"', 1)
    await client.login("sfj_admin")
    r = await client.post(
        "/api/exams/banks/import", files={"file": ("pub.toml", bad.encode(), "application/toml")}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False
    (report,) = body["files"]
    assert report["errors"] == [{"position": "questions[0] (id=P-0001)", "message": "答案 Z 不在选项范围内"}]
    assert await _count(db, ExamQuestion) == 0
    r = await client.post(
        "/api/exams/banks/import", files={"file": ("x.docx", b"abc", "application/octet-stream")}
    )
    assert r.status_code == 422 and "不支持的文件类型" in r.json()["files"][0]["errors"][0]["message"]
    good = bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P").encode()
    r = await client.post("/api/exams/banks/import", files={"file": ("pub.toml", good, "application/toml")})
    assert r.status_code == 200 and r.json()["files"][0]["loaded"] == 16
    r = await client.get("/api/exams/banks")
    assert (
        r.json()[0]["current_questions"] == 16 and r.json()[0]["by_category_type"]["public_law/single"] == 8
    )
    # the page: upload form and the report
    r = await client.raw.post(
        "/exams/banks",
        data={"_csrf_token": await client.csrf()},
        files={"file": ("pub.toml", good, "application/toml")},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 200 and "未变 16 题" in r.text
    await client.login("admin_a")
    assert (await client.get("/api/exams/banks")).status_code == 403


async def test_console_import_of_the_starter_banks(
    db: AsyncSession, world: World, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings({"APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "t" * 40})
    monkeypatch.setattr("app.settings.get_settings", lambda: settings)

    def run(*args: str) -> Any:
        return asyncio.to_thread(CliRunner().invoke, cli, ["exams", "import", *args])

    r = await run(str(ROOT / "exam_banks"), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] is True
    loaded = {f["bank"]: f["loaded"] for f in report["files"]}
    assert loaded == {"ecology_environment": 81, "market_regulation": 111, "public_law": 274}
    r = await run(str(ROOT / "exam_banks"))
    assert r.exit_code == 0 and r.output.count("新增 0 题") == 3
    assert "public_law.toml: 题库 public_law 新增 0 题，未变 274 题" in r.output

    folder = tmp_path / "banks"
    folder.mkdir()
    shutil.copy(ROOT / "exam_banks" / "market_regulation.toml", folder / "market_regulation.toml")
    (folder / "broken.toml").write_text('[bank]\ncode = "x"\ntitle = 1\n', encoding="utf-8")
    r = await run(str(folder), "--json")
    assert r.exit_code == 1
    files = {f["source"]: f for f in json.loads(r.output)["files"]}
    assert files["market_regulation.toml"]["unchanged"] == 111
    assert {"position": "bank.title", "message": "字段 title 必须是字符串"} in files["broken.toml"]["errors"]
    r = await run(str(folder / "broken.toml"))
    assert r.exit_code == 1 and "错误 bank.title: 字段 title 必须是字符串" in r.output


async def test_moodle_gift_examples_import_and_list_what_is_unsupported(
    db: AsyncSession, world: World, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings({"APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "t" * 40})
    monkeypatch.setattr("app.settings.get_settings", lambda: settings)
    fixture = ROOT.parent / "shared" / "fixtures" / "moodle-gift-examples.txt"
    if not fixture.exists():  # the copy the format tests keep
        fixture = ROOT / "tests" / "unit" / "exams" / "moodle-gift-examples.txt"
    args = ["exams", "import", str(fixture), "--json", "--code", "moodle", "--category", "new_law"]
    # All or nothing: unsupported questions are rejections, and the file's supported ones stay out.
    r = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert r.exit_code == 1, r.output
    (report,) = json.loads(r.output)["files"]
    assert report["bank"] == "moodle" and report["errors"] == [] and report["imported"] is False
    assert (
        report["loaded"] == 0
        and len(report["unsupported"]) == 20
        and "import_supported_only" in report["note"]
    )
    assert await _count(db, ExamQuestion) == 0

    r = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--supported-only"])
    assert r.exit_code == 0, r.output  # the unsupported ones were skipped on request
    (report,) = json.loads(r.output)["files"]
    assert report["bank"] == "moodle" and report["errors"] == [] and report["unsupported"] == []
    assert report["loaded"] == 14 and len(report["duplicates"]) == 9
    assert len(report["skipped"]) == 20
    assert all(u["position"] and u["kind"] for u in report["skipped"])
    # Moodle's examples cite no law: every question is a draft, with its line and why.
    assert len(report["drafts"]) == 14
    assert all(d["line"] > 0 and d["reason"].startswith("缺少依据") for d in report["drafts"])
    stored = (await db.scalars(select(ExamQuestion).where(ExamQuestion.is_current.is_(True)))).all()
    assert len(stored) == 14 and {q.category for q in stored} == {"new_law"}
    assert all(q.is_draft for q in stored)
    assert any(q.weights_json for q in stored)
    await db.commit()
    r = await asyncio.to_thread(
        CliRunner().invoke, cli, [*args[:3], "--code", "moodle", "--category", "new_law", "--supported-only"]
    )
    assert r.exit_code == 0 and "新增 0 题，未变 14 题" in r.output and "跳过" in r.output


GIFT = """// 加权多选题：选甲得一半分，选丙倒扣
// 依据：《测试法》第一条
::W1:: 下列哪些属于测试内容？ {
~%50%甲
~%50%乙
~%-100%丙
~%-100%丁
}
"""


async def test_weighted_gift_question_is_graded_by_its_weights(
    client: Client, db: AsyncSession, world: World
) -> None:
    from app.exams.rules import ExamPart, QuestionCategory, QuestionType
    from app.exams.schemas import EnrolIn, ExamIn, PartIn, RuleIn, SessionIn
    from app.lib.clock import utcnow
    from tests.integration.exams.conftest import authority

    await client.login("sfj_admin")
    r = await client.post(
        "/api/exams/banks/import",
        params={"code": "weighted", "category": "public_law"},
        files={"file": ("weighted.gift", GIFT.encode(), "text/plain")},
    )
    assert r.status_code == 200, r.text
    auth = authority(world)
    exam = await exam_create(
        db,
        principal=auth,
        data=ExamIn(
            title="加权",
            parts=[
                PartIn(
                    part=ExamPart.PUBLIC,
                    duration_minutes=10,
                    blueprint=[
                        RuleIn(
                            category=QuestionCategory.PUBLIC_LAW,
                            type=QuestionType.MULTIPLE,
                            count=1,
                            points=100,
                        )
                    ],
                )
            ],
        ),
    )
    import datetime as dt

    s = await session_create(
        db,
        principal=auth,
        exam_id=exam.id,
        data=SessionIn(
            title="场",
            opens_at=utcnow() - dt.timedelta(minutes=1),
            closes_at=utcnow() + dt.timedelta(hours=1),
        ),
    )
    await session_enrol(db, principal=auth, session_id=s.id, data=EnrolIn(officer_ids=[world.officer_a.id]))
    part_id = (await exam_detail(db, auth, exam.id)).parts[0].id
    session_id = s.id
    await db.commit()
    await client.login("officer_a")
    paper = (await client.post(f"/api/my/exams/sessions/{session_id}/parts/{part_id}/start")).json()
    (q,) = paper["questions"]
    first = q["options"].index("甲")
    r = await client.put(
        f"/api/my/exams/attempts/{paper['id']}/answers",
        json={"answers": [{"position": 0, "choice": [first], "seq": 1}]},
    )
    assert r.status_code == 200
    result = (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).json()["result"]
    assert result["score"] == 50
