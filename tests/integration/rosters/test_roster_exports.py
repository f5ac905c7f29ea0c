"""Exports of the filtered roster: CSV with BOM and XLSX with a frozen header, parsed back."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile

import openpyxl
import pytest

from app.accounts.models import Officer
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import TODAY, YEAR

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def roster_names(client: Client, query: str) -> list[str]:
    body = (await client.get(f"/api/rosters?{query}&per_page=200")).json()
    return [row["name"] for row in body["items"]]


@pytest.mark.parametrize("query", ["", "exam=none&sort=name", f"year={YEAR}&training=met", "status=retired"])
async def test_csv_is_exactly_the_filtered_rows_with_bom(
    client: Client, world: World, people: dict[str, Officer], query: str
) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/rosters/export.csv?{query}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert (
        "attachment" in r.headers["content-disposition"]
        and "filename*=UTF-8''" in r.headers["content-disposition"]
    )
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["姓名", "身份证号码"] and "执法资格" in header
    assert [row[0] for row in body] == await roster_names(client, query)


async def test_csv_values_masking_and_formula_guard(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/rosters/export.csv?year={YEAR}")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    by_name = {row["姓名"]: row for row in rows}
    zhao = by_name["赵一"]
    assert zhao["单位"] == world.dept_a.name
    assert zhao["执法资格"] == "有效" and zhao["资格有效期至"] == (TODAY + dt.timedelta(days=900)).isoformat()
    assert zhao[f"{YEAR}年度学时"] == "40" and zhao["学时达标"] == "达标"
    assert zhao["人员类别"] == "行政编制" and zhao["在岗状态"] == "在岗"
    assert (
        zhao["证件种类"] == "行政执法证" and zhao["证件状态"] == "有效" and zhao["证件编号"].startswith("R")
    )
    assert by_name["周四"]["证件状态"] == "过期"
    assert by_name["钱二"]["证件状态"] == "暂扣"
    assert (zhao["最近考核年度"], zhao["考核等次"], zhao["退出程序"]) == (str(YEAR), "合格", "")
    assert (by_name["吴五"]["考核等次"], by_name["吴五"]["退出程序"]) == ("不合格", "进行中")
    assert by_name["李明"]["考核等次"] == "" and by_name["李明"]["最近考核年度"] == ""
    # The authority sits above the department: ID numbers are masked in the export as on the page.
    assert zhao["身份证号码"] != people["赵一"].id_number and "**********" in zhao["身份证号码"]
    # A cell that Excel would run as a formula is defused.
    assert by_name["孙三"]["执法区域"] == "'=HYPERLINK(1)"


async def test_csv_scope_is_the_accounts_subtree(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("admin_b")
    r = await client.get("/rosters/export.csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == ["王芳"]
    r = await client.get(
        f"/rosters/export.csv?agency_id={world.dept_a.id}", headers={"accept": "application/json"}
    )
    assert r.status_code == 404


async def test_bad_filter_on_export_is_a_400_before_any_byte_is_streamed(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get("/rosters/export.csv?training=half", headers={"accept": "application/json"})
    assert r.status_code == 400 and "training" in r.text


async def test_xlsx_has_frozen_header_widths_dates_and_the_filtered_rows(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    before = set(os.listdir(tempfile.gettempdir()))
    r = await client.get("/rosters/export.xlsx?exam=valid&sort=name")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(XLSX_TYPE)
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.active
    assert ws is not None
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert header[0] == "姓名" and header[4] == "单位" and header[11] == "资格有效期至"
    assert ws.column_dimensions["E"].width >= 25  # the agency column is wide enough for a name
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert [v[0] for v in values] == await roster_names(client, "exam=valid&sort=name") == ["王芳", "赵一"]
    wang = values[0]
    assert (
        isinstance(wang[3], dt.datetime) and wang[3].date() == people["王芳"].birth_date
    )  # a real date cell
    assert isinstance(wang[11], dt.datetime) and wang[11].date() == TODAY + dt.timedelta(days=900)
    assert isinstance(wang[12], int | float)
    assert ws.cell(row=2, column=4).number_format == "yyyy-mm-dd"
    assert header[-7:-3] == ["证件种类", "证件编号", "证件状态", "证件有效期至"]
    assert header[-3:] == ["最近考核年度", "考核等次", "退出程序"]
    assert isinstance(wang[-4], dt.datetime)  # the card's last day, a date cell
    assert wang[-3] == YEAR and wang[-2] == "不合格"
    # The temporary file is gone once sent.
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("roster-")}
    assert leftovers == set()


async def test_xlsx_of_an_empty_roster_is_a_header_only(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get("/rosters/export.xlsx?q=nobody")
    assert r.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and ws.max_row == 1
