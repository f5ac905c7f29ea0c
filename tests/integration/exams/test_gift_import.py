"""A GIFT upload over HTTP: all or nothing by default, the supported questions only on request, and
questions without a legal basis stored as drafts (草稿) that no paper draws until staff fill it in."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.exams.models import ExamBank, ExamQuestion
from app.exams.services.pools import pool_of
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.exams.conftest import PUBLIC_SIZES, bank_toml

BASIS = "《中华人民共和国行政处罚法》第三十六条第一款"

MIXED = f"""// 依据：{BASIS}
::时效:: 违法行为在几年内未被发现的，不再给予行政处罚？{{~一年 =二年 ~五年}}

::简答:: 行政处罚的种类有哪些？{{=警告 =罚款}}

::数值:: 行政处罚法第几条规定了时效？{{#36}}

// 依据：《中华人民共和国行政许可法》第十二条
::许可:: 行政许可的设定应当遵循法定原则。{{T}}
"""
"""Two supported questions (lines 2 and 9) and two unsupported (short answer line 4, numerical line 6)."""

DRAFTS = f"""// 依据：{BASIS}
::有据:: 违法行为在二年内未被发现的，不再给予行政处罚。{{T}}

::无据:: 当事人有权进行陈述和申辩。{{T}}
"""


async def _counts(db: AsyncSession) -> tuple[int, int, int]:
    """Banks, question rows, audit events: what an import writes."""
    found = []
    for model in (ExamBank, ExamQuestion, AuditEvent):
        found.append(int(await db.scalar(select(func.count()).select_from(model)) or 0))
    await db.commit()
    return found[0], found[1], found[2]


async def _upload(client: Client, name: str, text: str, **kw: Any) -> Any:
    return await client.post(
        "/api/exams/banks/import", files={"file": (name, text.encode(), "text/plain")}, **kw
    )


async def test_a_refused_gift_upload_writes_nothing(db: AsyncSession, world: World, client: Client) -> None:
    await client.login("sfj_admin")
    before = await _counts(db)
    r = await _upload(client, "mixed.gift", MIXED)
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False
    (report,) = body["files"]
    assert report["imported"] is False and report["loaded"] == 0
    assert [(u["position"], u["kind"]) for u in report["unsupported"]] == [
        ("第 4 行", "简答题（Moodle short answer）"),
        ("第 6 行", "数值题（Moodle numerical）"),
    ]
    assert "import_supported_only" in report["note"]
    assert await _counts(db) == before  # the database exactly as before: no bank, no question, no audit


async def test_one_refused_file_keeps_the_whole_upload_out(
    db: AsyncSession, world: World, client: Client
) -> None:
    await client.login("sfj_admin")
    before = await _counts(db)
    good = bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P").encode()
    r = await client.post(
        "/api/exams/banks/import",
        files=[
            ("file", ("pub.toml", good, "application/toml")),
            ("file", ("mixed.gift", MIXED.encode(), "text/plain")),
        ],
    )
    assert r.status_code == 422
    toml_report, gift_report = r.json()["files"]
    assert toml_report["errors"] == [] and toml_report["imported"] is False
    assert "同批上传的其他文件未通过校验" in toml_report["note"]
    assert gift_report["imported"] is False
    assert await _counts(db) == before


@pytest.mark.parametrize("how", ["query", "form"])
async def test_import_supported_only_loads_them_and_lists_each_skipped_one(
    db: AsyncSession, world: World, client: Client, how: str
) -> None:
    await client.login("sfj_admin")
    if how == "query":
        r = await _upload(client, "mixed.gift", MIXED, params={"import_supported_only": "1"})
    else:
        r = await _upload(client, "mixed.gift", MIXED, data={"import_supported_only": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    (report,) = body["files"]
    assert report["imported"] is True and report["loaded"] == 2 and report["unsupported"] == []
    assert [(u["position"], u["kind"]) for u in report["skipped"]] == [
        ("第 4 行", "简答题（Moodle short answer）"),
        ("第 6 行", "数值题（Moodle numerical）"),
    ]
    rows = (await db.scalars(select(ExamQuestion).order_by(ExamQuestion.title))).all()
    assert sorted((q.title, q.basis, q.is_draft) for q in rows) == [
        ("时效", BASIS, False),
        ("许可", "《中华人民共和国行政许可法》第十二条", False),
    ]
    await db.commit()


async def test_a_bad_import_supported_only_value_is_refused_not_ignored(
    db: AsyncSession, world: World, client: Client
) -> None:
    await client.login("sfj_admin")
    before = await _counts(db)
    r = await _upload(client, "mixed.gift", MIXED, data={"import_supported_only": "perhaps"})
    assert r.status_code == 400 and "import_supported_only" in r.text
    r = await _upload(
        client,
        "mixed.gift",
        MIXED,
        params={"import_supported_only": "1"},
        data={"import_supported_only": "0"},
    )
    assert r.status_code == 400 and "不一致" in r.text
    assert await _counts(db) == before


async def test_the_page_checkbox_imports_the_supported_ones(
    db: AsyncSession, world: World, client: Client
) -> None:
    await client.login("sfj_admin")
    page = await client.get("/exams/banks")
    assert 'name="import_supported_only"' in page.text
    files = {"file": ("mixed.gift", MIXED.encode(), "text/plain")}
    r = await client.raw.post(
        "/exams/banks",
        data={"_csrf_token": await client.csrf()},
        files=files,
        headers={"accept": "text/html"},
    )
    assert r.status_code == 422 and "本次上传没有导入任何内容" in r.text
    assert (await _counts(db))[1] == 0
    r = await client.raw.post(
        "/exams/banks",
        data={"_csrf_token": await client.csrf(), "import_supported_only": "on"},
        files=files,
        headers={"accept": "text/html"},
    )
    assert r.status_code == 200 and "已按要求跳过不支持的题型 2 题" in r.text and "第 4 行" in r.text
    assert (await _counts(db))[1] == 2


async def _pool_ids(db: AsyncSession) -> set[int]:
    index, _banks = await pool_of(db, part="public", field="")
    await db.commit()
    return {c.id for group in index.values() for c in group}


async def test_a_question_without_basis_is_a_draft_until_staff_fill_it_in(
    db: AsyncSession, world: World, client: Client
) -> None:
    await client.login("sfj_admin")
    r = await _upload(client, "drafts.gift", DRAFTS, params={"code": "drafts", "category": "public_law"})
    assert r.status_code == 200, r.text
    (report,) = r.json()["files"]
    assert report["loaded"] == 2
    (draft,) = report["drafts"]
    assert (draft["position"], draft["line"], draft["title"]) == ("第 4 行", 4, "无据")
    assert draft["reason"] == "缺少依据：题目前没有“// 依据：…”注释行"

    listed = (await client.get("/api/exams/banks/drafts/questions")).json()
    assert listed["bank"]["drafts"] == 1 and listed["bank"]["current_questions"] == 2
    marks = {q["title"]: (q["is_draft"], q["status_label"]) for q in listed["questions"]}
    assert marks == {"有据": (False, "已发布"), "无据": (True, "草稿")}
    banks = (await client.get("/api/exams/banks")).json()
    assert banks[0]["by_category_type"] == {"public_law/judge": 1}  # what papers can draw
    draft_id = next(q["id"] for q in listed["questions"] if q["is_draft"])
    published_id = next(q["id"] for q in listed["questions"] if not q["is_draft"])
    assert draft_id not in await _pool_ids(db) and published_id in await _pool_ids(db)

    # Filling in the basis: refused when empty or on a published question; then drawable, audited.
    assert (
        await client.put(f"/api/exams/questions/{draft_id}/basis", json={"basis": "  "})
    ).status_code == 400
    r = await client.put(f"/api/exams/questions/{published_id}/basis", json={"basis": BASIS})
    assert r.status_code == 409
    r = await client.put(f"/api/exams/questions/{draft_id}/basis", json={"basis": "《行政处罚法》第四十五条"})
    assert r.status_code == 200, r.text
    assert (r.json()["is_draft"], r.json()["basis"]) == (False, "《行政处罚法》第四十五条")
    assert draft_id in await _pool_ids(db)
    event = await db.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "exam.question.basis", AuditEvent.entity_id == str(draft_id)
        )
    )
    assert event is not None
    await db.commit()

    # Importing the same file again does not wipe what staff filled in.
    r = await _upload(client, "drafts.gift", DRAFTS, params={"code": "drafts", "category": "public_law"})
    (again,) = r.json()["files"]
    assert (again["unchanged"], again["drafts"]) == (2, [])
    row = await db.scalar(select(ExamQuestion).where(ExamQuestion.id == draft_id))
    assert row is not None and (row.basis, row.is_draft) == ("《行政处罚法》第四十五条", False)
    await db.commit()


async def test_the_bank_page_marks_drafts_and_fills_in_the_basis(
    db: AsyncSession, world: World, client: Client
) -> None:
    await client.login("sfj_admin")
    r = await _upload(client, "drafts.gift", DRAFTS, params={"code": "drafts"})
    assert r.status_code == 200
    page = await client.get("/exams/banks/drafts?drafts=1")
    assert page.status_code == 200 and "草稿" in page.text and "无据" in page.text and "有据" not in page.text
    draft_id = (await client.get("/api/exams/banks/drafts/questions?drafts=1")).json()["questions"][0]["id"]
    r = await client.form(f"/exams/questions/{draft_id}/basis", {"bank": "drafts", "basis": ""})
    assert r.status_code == 400 and "请填写依据" in r.text
    r = await client.form(f"/exams/questions/{draft_id}/basis", {"bank": "drafts", "basis": BASIS})
    assert r.status_code == 200 and "已填写依据并发布" in r.text
    row = await db.scalar(select(ExamQuestion).where(ExamQuestion.id == draft_id))
    assert row is not None and (row.basis, row.is_draft) == (BASIS, False)
    await db.commit()
