"""Officer bulk import through the pages and the API, on SQLite and PostgreSQL.

Files are generated here (CSV in UTF-8 / GBK, XLSX with openpyxl): no binary fixtures in the repo.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import settings as app_settings
from app.accounts.models import Officer, PostingHistory
from app.accounts.rules import id_check_digit
from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from tests.factories import World
from tests.integration.conftest import AppWith, Client, Connect

HEADERS = [
    "姓名",
    "身份证号码",
    "单位",
    "人员性质",
    "岗位",
    "执法类别",
    "执法区域",
    "联系电话",
    "任职起始日期",
]
DEPT_A = "甲市市场监督管理局"
DEPT_B = "乙市生态环境局"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def idn(i: int, region: str = "320102") -> str:
    """A valid, unique ID number for each i (born in 1980s; never the world's officers)."""
    born = dt.date(1980, 1, 1) + dt.timedelta(days=i // 900)
    first17 = f"{region}{born:%Y%m%d}{100 + i % 900:03d}"
    return first17 + id_check_digit(first17)


def good_row(i: int, agency: str = DEPT_A) -> list[str]:
    return cells(f"测试{_cn(i)}", idn(i), agency, area="甲市城区", phone="13800138000", started="2024-03-01")


def cells(
    name: str,
    id_number: str,
    agency: str = DEPT_A,
    staff_type: str = "行政编制",
    post: str = "执法岗位",
    field: str = "市场监管",
    *,
    area: str = "",
    phone: str = "",
    started: str = "",
) -> list[str]:
    """Cells in the order of HEADERS."""
    return [name, id_number, agency, staff_type, post, field, area, phone, started]


def _cn(i: int) -> str:
    digits = "零一二三四五六七八九"
    return "".join(digits[int(d)] for d in str(i))


def make_csv(rows: list[list[str]], *, encoding: str = "utf-8-sig", headers: list[str] = HEADERS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def make_xlsx(rows: list[list[Any]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["江南省执法人员名册"])  # a title row above the header, as offices do
    ws.append(HEADERS)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def count(db: AsyncSession, model: type) -> int:
    n = int(await db.scalar(select(func.count()).select_from(model)) or 0)
    await db.commit()  # end the snapshot, so the next count sees what the app wrote since
    return n


async def counts(db: AsyncSession) -> tuple[int, int, int]:
    events = int(
        await db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "officer.import")
        )
        or 0
    )
    return await count(db, Officer), await count(db, PostingHistory), events


async def api_import(client: Client, data: bytes, *, filename: str = "人员.csv", dry_run: bool = True) -> Any:
    content_type = XLSX_TYPE if filename.endswith(".xlsx") else "text/csv"
    return await client.post(
        f"/api/officers/import?dry_run={'true' if dry_run else 'false'}",
        files={"file": (filename, data, content_type)},
    )


async def page_upload(client: Client, data: bytes, *, filename: str = "人员.csv", token: bool = True) -> Any:
    """The browser's multipart form: the CSRF token travels in the body, not in a header."""
    form = {"_csrf_token": await client.csrf()} if token else {}
    return await client.raw.post(
        "/officers/import",
        data=form,
        files={"file": (filename, data, "text/csv")},
        headers={"accept": "text/html"},
    )


def staged_hash(html: str) -> str:
    m = re.search(r'name="sha256" value="([0-9a-f]{64})"', html)
    assert m, "no confirm form on the preview page"
    return m.group(1)


@pytest.fixture(autouse=True)
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(app_settings, "VAR_DIR", tmp_path)
    return tmp_path


# ---------------------------------------------------------------- preview


async def test_preview_lists_every_bad_row_with_row_number_and_reason(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    rows = [
        good_row(1),  # row 2: fine
        cells("张三", "110105194912310021"),  # 3: check digit
        cells(
            "", idn(3), DEPT_A, "公务员", "执法", "外星监管", phone="电话", started="2099-01-01"
        ),  # 4: five
        good_row(4, agency=DEPT_B),  # 5: sibling agency
        good_row(5, agency="不存在的局"),  # 6: unknown agency
        good_row(1),  # 7: same person as row 2
        cells("李明", world.officer_a.id_number),  # 8: registered already
        cells("王五", "3.20102E+17"),  # 9: a number Excel rounded, saved to CSV
        [],  # 10: blank line, skipped
        good_row(6),  # 11: fine
    ]
    before = await counts(db)
    r = await api_import(client, make_csv(rows))
    assert r.status_code == 422, r.text
    report = r.json()
    got = [(e["row"], e["column"], e["message"]) for e in report["errors"]]
    expected = [
        (3, "身份证号码", "身份证号码校验位错误"),
        (4, "姓名", "姓名不能为空"),
        (4, "人员性质", "人员性质“公务员”无效"),
        (4, "执法类别", "执法类别“外星监管”不在本地区的执法类别目录中"),
        (4, "联系电话", "联系电话格式不正确"),
        (4, "任职起始日期", "任职起始日期不能晚于今天"),
        (5, "单位", f"单位“{DEPT_B}”不存在或不在您的管理范围内"),
        (6, "单位", "单位“不存在的局”不存在或不在您的管理范围内"),
        (7, "身份证号码", "身份证号码与第2行重复"),
        (8, "身份证号码", "该身份证号码已登记"),
        (9, "身份证号码", "身份证号码在 Excel 中被存成了数字"),
    ]
    assert len(got) == len(expected), got
    for (row, column, message), (erow, ecolumn, emessage) in zip(got, expected, strict=True):
        assert (row, column) == (erow, ecolumn) and message.startswith(emessage), (row, column, message)
    # "执法" is accepted for 执法岗位: row 4 has no post error.
    assert report["total_rows"] == 9 and report["invalid_rows"] == 7 and report["valid_rows"] == 2
    assert report["dry_run"] is True and report["imported"] == 0
    assert [s["row"] for s in report["sample"]] == [2, 11]
    assert await counts(db) == before

    # The page lists the same rows, and offers no confirm button.
    page = await page_upload(client, make_csv(rows))
    assert page.status_code == 422
    for row, _column, message in got:
        assert f"第 {row} 行" in page.text
        assert message.split("，")[0] in page.text
    assert "确认导入" not in page.text and "未导入任何人员" in page.text


async def test_file_level_problems_are_named(client: Client, world: World) -> None:
    await client.login("admin_a")
    cases = [
        (b"", "a.csv", "文件是空的"),
        (make_csv([], headers=["姓名", "单位"]), "a.csv", "缺少必填列"),
        (make_csv([]), "a.csv", "没有数据行"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "a.csv", "不支持图片文件"),
        (b"PK\x03\x04broken", "a.xlsx", "已损坏"),
    ]
    for data, filename, message in cases:
        r = await api_import(client, data, filename=filename)
        assert r.status_code == 400, (filename, r.text)
        assert message in r.json()["detail"]
        page = await page_upload(client, data, filename=filename)
        assert page.status_code == 400 and message in page.text


# ---------------------------------------------------------------- commit


async def test_commit_of_a_good_file_writes_everything_once(
    client: Client, world: World, db: AsyncSession, var_dir: Path
) -> None:
    await client.login("admin_a")
    rows = [good_row(i) for i in range(1, 31)] + [good_row(31, agency="江南省甲市")]
    data = make_csv(rows)
    officers, postings, events = await counts(db)

    page = await page_upload(client, data)
    assert page.status_code == 200, page.text
    assert "全部 31 行检查通过" in page.text and "确认导入 31 人" in page.text
    sha = staged_hash(page.text)
    staged = var_dir / "uploads" / "officer-import" / str(world.admin_a.id) / sha
    assert staged.read_bytes() == data
    assert await counts(db) == (officers, postings, events)  # the preview writes nothing

    r = await client.form("/officers/import/commit", {"sha256": sha}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/officers/import?imported=31"
    assert await counts(db) == (officers + 31, postings + 31, events + 1)
    assert not staged.exists()
    done = await client.get(r.headers["location"], headers={"accept": "text/html"})
    assert "已登记 31 名执法人员" in done.text

    imported = (await db.scalars(select(Officer).where(Officer.id_number == idn(7)))).one()
    assert (imported.name, imported.staff_type, imported.post, imported.field) == (
        "测试七",
        "civil_servant",
        "enforcement",
        "市场监管",
    )
    assert imported.agency_id == world.dept_a.id and imported.employment_status == "active"
    assert imported.birth_date == dt.date(1980, 1, 1) and imported.gender in ("男", "女")
    posting = (await db.scalars(select(PostingHistory).where(PostingHistory.officer_id == imported.id))).one()
    assert posting.started_on == dt.date(2024, 3, 1) and posting.ended_on is None
    event = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "officer.import"))).one()
    assert event.entity_id == sha and event.actor_id == world.admin_a.id
    assert '"rows":31' in event.data and '"filename":"人员.csv"' in event.data
    assert (await audit_verify(db)).ok
    await db.commit()

    # A double submit of the confirm form: clear message, nothing written twice.
    again = await client.form("/officers/import/commit", {"sha256": sha})
    assert again.status_code == 409 and "已于" in again.text and "不会重复导入" in again.text
    # The same file uploaded again: every row is reported as registered.
    page = await page_upload(client, data)
    assert page.status_code == 422 and page.text.count("该身份证号码已登记") == 31
    assert await counts(db) == (officers + 31, postings + 31, events + 1)


async def test_commit_revalidates_and_is_all_or_nothing(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    rows = [good_row(i) for i in range(1, 21)]
    rows[13] = [*rows[13][:3], "临时", *rows[13][4:]]  # row 15: an unknown staff type
    before = await counts(db)
    r = await api_import(client, make_csv(rows), dry_run=False)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(15, "人员性质")]
    assert r.json()["imported"] == 0
    assert await counts(db) == before


async def test_api_import_then_the_same_file_again(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    data = make_csv([good_row(i) for i in range(1, 11)])
    before = await counts(db)
    r = await api_import(client, data, dry_run=False)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 10 and body["dry_run"] is False and body["errors"] == []
    assert await counts(db) == (before[0] + 10, before[1] + 10, before[2] + 1)

    again = await api_import(client, data, dry_run=False)
    assert again.status_code == 422
    assert len(again.json()["errors"]) == 10
    assert {e["message"] for e in again.json()["errors"]} == {
        "该身份证号码已登记（系统中已有此人），不能重复导入"
    }
    assert await counts(db) == (before[0] + 10, before[1] + 10, before[2] + 1)


async def test_gbk_csv_and_xlsx_files(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    gbk = make_csv([good_row(i) for i in range(1, 6)], encoding="gbk")
    preview = await api_import(client, gbk)
    assert preview.status_code == 200, preview.text
    assert preview.json()["encoding"] == "GBK/GB18030" and preview.json()["sample"][0]["name"] == "测试一"
    r = await api_import(client, gbk, dry_run=False)
    assert r.status_code == 200 and r.json()["imported"] == 5

    # XLSX: a title row, a date cell and a phone number stored as a number.
    rows: list[list[Any]] = [good_row(i) for i in range(6, 9)]
    for row in rows:
        row[7] = 13800138000
        row[8] = dt.datetime(2023, 5, 6)
    r = await api_import(client, make_xlsx(rows), filename="名册.xlsx", dry_run=False)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 3 and r.json()["file_type"] == "xlsx"
    officer = (await db.scalars(select(Officer).where(Officer.id_number == idn(6)))).one()
    posting = (await db.scalars(select(PostingHistory).where(PostingHistory.officer_id == officer.id))).one()
    assert officer.phone == "13800138000" and posting.started_on == dt.date(2023, 5, 6)
    await db.commit()

    # An ID number Excel stored as a number cannot be trusted, whatever it looks like.
    bad: list[list[Any]] = [good_row(9)]
    bad[0][1] = int(idn(9))
    r = await api_import(client, make_xlsx(bad), filename="名册.xlsx")
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 3
    assert "文本" in r.json()["errors"][0]["message"]


async def test_sibling_agencies_are_out_of_scope_but_the_authority_reaches_them(
    client: Client, world: World, db: AsyncSession
) -> None:
    data = make_csv([good_row(1, agency=DEPT_B), good_row(2, agency="江南省乙市")])
    await client.login("admin_a")
    r = await api_import(client, data, dry_run=False)
    assert r.status_code == 422
    assert [e["column"] for e in r.json()["errors"]] == ["单位", "单位"]
    assert all("不在您的管理范围内" in e["message"] for e in r.json()["errors"])

    other = Client(client.raw)
    client.raw.cookies.clear()
    await other.login("sfj_admin")
    r = await api_import(other, data, dry_run=False)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2


async def test_staged_file_belongs_to_its_uploader(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    page = await page_upload(client, make_csv([good_row(1)]))
    sha = staged_hash(page.text)
    client.raw.cookies.clear()
    await client.login("admin_b")
    r = await client.form("/officers/import/commit", {"sha256": sha})
    assert r.status_code == 400 and "已失效或不存在" in r.text
    r = await client.form("/officers/import/commit", {"sha256": "../../secret_key"})
    assert r.status_code == 400
    assert (await counts(db))[0] == 2  # the world's two officers only


# ---------------------------------------------------------------- pages, limits and access


async def test_upload_page_and_template(client: Client, world: World) -> None:
    await client.login("admin_a")
    page = await client.get("/officers/import", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and 'name="_csrf_token"' in page.text
    assert DEPT_A in page.text and DEPT_B not in page.text
    template = await client.get("/officers/import/template.csv")
    assert template.status_code == 200
    assert template.headers["content-type"].startswith("text/csv")
    assert "attachment" in template.headers["content-disposition"]
    assert template.content.startswith(b"\xef\xbb\xbf")
    assert template.content.decode("utf-8-sig").strip() == ",".join(HEADERS)


async def test_multipart_form_needs_its_csrf_token(client: Client, world: World) -> None:
    await client.login("admin_a")
    r = await page_upload(client, make_csv([good_row(1)]), token=False)
    assert r.status_code == 403


@pytest.fixture
async def small_client(app_with: AppWith, connect: Connect) -> AsyncIterator[Client]:
    async with connect(await app_with(MAX_UPLOAD_BYTES=str(64 * 1024))) as c:
        yield c


async def test_oversized_upload_is_refused_with_413(
    small_client: Client, world: World, db: AsyncSession
) -> None:
    await small_client.login("admin_a")
    data = make_csv([good_row(i) for i in range(1, 2000)])
    assert len(data) > 64 * 1024
    r = await api_import(small_client, data)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "64 KB" in r.json()["detail"] and "分批导入" in r.json()["detail"]
    page = await page_upload(small_client, data)
    assert page.status_code == 413 and "上传的文件超过 64 KB 的大小限制" in page.text
    assert (await counts(db))[0] == 2


@pytest.mark.parametrize("username", ["officer_a"])
async def test_non_admin_is_forbidden(client: Client, world: World, db: AsyncSession, username: str) -> None:
    await client.login(username)
    data = make_csv([good_row(1)])
    assert (await client.get("/officers/import", headers={"accept": "text/html"})).status_code == 403
    assert (await client.get("/officers/import/template.csv")).status_code == 403
    assert (await api_import(client, data, dry_run=False)).status_code == 403
    assert (await page_upload(client, data)).status_code == 403
    assert (await client.form("/officers/import/commit", {"sha256": "0" * 64})).status_code == 403
    assert (await counts(db))[0] == 2


async def test_openapi_documents_the_import(client: Client, world: World) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    op = schema["paths"]["/api/officers/import"]["post"]
    assert op["summary"] == "批量导入执法人员（CSV / XLSX）"
    assert {"200", "422"} <= set(op["responses"])
    assert "/officers/import" not in schema["paths"]


async def test_enforcement_fields_come_from_the_nearest_issuing_authority(
    client: Client, world: World, db: AsyncSession
) -> None:
    from app.accounts.selectors import agency_policy
    from app.accounts.services.imports import _AgencyRow, _policies
    from app.lib.policy import Policy, policy_to_json

    city_a = await db.get(type(world.city_a), world.city_a.id)
    assert city_a is not None
    city_a.is_issuing_authority = True
    city_a.policy_json = policy_to_json(Policy(enforcement_fields=["城市管理", "市场监管"]))
    await db.commit()
    # The batch lookup agrees with services.agency_policy for every agency of the tree.
    agencies = [world.province, world.city_a, world.dept_a, world.city_b, world.dept_b]
    for a in agencies:
        await db.refresh(a)
    batch = await _policies(db, [_AgencyRow(a.id, a.name, a.path, a.is_active) for a in agencies])
    for a in agencies:
        assert batch[a.id] == await agency_policy(db, a), a.name
    await db.commit()

    await client.login("admin_a")
    rows = [good_row(1), cells("赵六", idn(2), field="城市管理"), cells("钱七", idn(3), field="生态环境")]
    r = await api_import(client, make_csv(rows))
    assert r.status_code == 422
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(4, "执法类别")]
    assert "城市管理、市场监管" in r.json()["errors"][0]["message"]
