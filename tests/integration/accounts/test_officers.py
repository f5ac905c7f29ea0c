"""Officer records through the API and the forms: validation, scope, masking, stale forms, history."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer, PostingHistory
from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from tests.factories import World, make_id_number
from tests.integration.conftest import Client


def _officer(world: World, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "赵强",
        "id_number": make_id_number(region="320100"),
        "agency_id": world.dept_a.id,
        "staff_type": "civil_servant",
        "post": "enforcement",
        "field": "市场监管",
        "area": "甲市城区",
    }
    body.update(over)
    return body


async def _count(db: AsyncSession, model: type) -> int:
    n = int(await db.scalar(select(func.count()).select_from(model)) or 0)
    await db.commit()  # end the snapshot, so the next count sees what the app wrote since
    return n


async def test_create_officer_records_history_and_audit(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    body = _officer(world)
    r = await client.post("/api/officers", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    # Masked: admin_a belongs to the city, not to the officer's own agency (the department).
    assert out["id_number"] == f"{body['id_number'][:4]}**********{body['id_number'][-4:]}"
    assert out["gender"] in ("男", "女") and out["may_hold_certificate"] is True
    assert len(out["postings"]) == 1 and out["postings"][0]["ended_on"] is None
    events = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "officer.create"))).all()
    assert len(events) == 1 and events[0].entity_id == str(out["id"])
    assert (await audit_verify(db)).ok


@pytest.mark.parametrize(
    "override,field,message",
    [
        ({"id_number": "320102198506120016"}, "id_number", "身份证号码校验位错误"),
        ({"name": "李"}, "name", "姓名应为2至20个汉字（少数民族姓名可含间隔号·）"),
        ({"field": "外星监管"}, "field", "执法类别“外星监管”不在本地区的执法类别目录中"),
        ({"staff_type": "boss"}, "staff_type", "取值不在允许范围内"),
        ({"agency_id": "abc"}, "agency_id", "应为整数"),
        ({"name": None}, "name", "应为文本"),
        ({"extra": 1}, "extra", "不支持的字段 extra"),
    ],
)
async def test_bad_officer_input_names_the_field(
    client: Client, world: World, db: AsyncSession, override: dict[str, object], field: str, message: str
) -> None:
    await client.login("admin_a")
    before = await _count(db, Officer)
    r = await client.post("/api/officers", json=_officer(world, **override))
    assert r.status_code == 400, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {"field": field, "message": message} in problem["errors"], problem
    assert await _count(db, Officer) == before


async def test_missing_field_and_duplicate(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    body = _officer(world)
    del body["post"]
    r = await client.post("/api/officers", json=body)
    assert r.status_code == 400 and r.json()["errors"][0] == {"field": "post", "message": "缺少必填字段 post"}
    r = await client.post("/api/officers", json=_officer(world, id_number=world.officer_b.id_number))
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "id_number"


async def test_cannot_create_in_sibling_agency(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    r = await client.post("/api/officers", json=_officer(world, agency_id=world.dept_b.id))
    assert r.status_code == 404
    assert await _count(db, Officer) == 2


async def test_id_number_masked_outside_own_agency(client: Client, world: World) -> None:
    await client.login("sfj_admin")  # province: not the officer's own agency
    r = await client.get(f"/api/officers/{world.officer_a.id}")
    assert r.json()["id_number"] == world.officer_a.id_number[:4] + "*" * 10 + world.officer_a.id_number[-4:]
    page = await client.get("/officers", headers={"accept": "text/html"})
    assert world.officer_a.id_number not in page.text


async def test_stale_form_is_refused_and_loses_nothing(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    detail = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    edit = {k: detail[k] for k in ("name", "staff_type", "post", "field", "area", "phone")} | {
        "version": detail["version"]
    }
    r = await client.put(f"/api/officers/{world.officer_a.id}", json=edit | {"phone": "13800000001"})
    assert r.status_code == 200 and r.json()["version"] == detail["version"] + 1
    r = await client.put(f"/api/officers/{world.officer_a.id}", json=edit | {"phone": "13900000002"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "version"
    again = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    assert again["phone"] == "13800000001"


async def test_transfer_and_retirement_keep_history(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("sfj_admin")
    o = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    r = await client.post(
        f"/api/officers/{o['id']}/moves",
        json={
            "version": o["version"],
            "effective_on": "2026-03-01",
            "reason": "工作调动",
            "to_agency_id": world.dept_b.id,
            "field": "生态环境",
        },
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["agency_id"] == world.dept_b.id and len(moved["postings"]) == 2
    assert (
        moved["postings"][1]["ended_on"] == "2026-03-01" and moved["postings"][1]["end_reason"] == "工作调动"
    )
    r = await client.post(
        f"/api/officers/{o['id']}/moves",
        json={
            "version": moved["version"],
            "effective_on": "2026-06-30",
            "reason": "到龄退休",
            "employment_status": "retired",
        },
    )
    assert r.status_code == 200 and r.json()["employment_status"] == "retired"
    assert all(p["ended_on"] for p in r.json()["postings"])
    r = await client.post(
        f"/api/officers/{o['id']}/moves",
        json={
            "version": r.json()["version"],
            "effective_on": "2026-07-01",
            "reason": "x",
            "employment_status": "resigned",
        },
    )
    assert r.status_code == 409  # no longer in post
    assert await _count(db, PostingHistory) == 3
    actions = (
        await db.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "officer", AuditEvent.entity_id == str(o["id"])
            )
        )
    ).all()
    assert actions == ["officer.transfer", "officer.end_service"]


async def test_move_before_current_posting_start_is_refused(client: Client, world: World) -> None:
    await client.login("admin_a")
    o = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    r = await client.post(
        f"/api/officers/{o['id']}/moves",
        json={
            "version": o["version"],
            "effective_on": "2019-01-01",
            "reason": "补录",
            "employment_status": "retired",
        },
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "effective_on"


async def test_html_form_rerenders_with_message_beside_field(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    form = {k: str(v) for k, v in _officer(world, id_number="320102198506120016").items()}
    r = await client.form("/officers/new", form)
    assert r.status_code == 400
    assert '<p class="field-error" role="alert">身份证号码校验位错误</p>' in r.text
    assert 'value="赵强"' in r.text  # what the user typed is kept
    assert await _count(db, Officer) == 2
    form["id_number"] = make_id_number(region="320100")
    r = await client.form("/officers/new", form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?msg=created")


async def test_pagination_and_filters(client: Client, world: World, db: AsyncSession) -> None:
    from app.lib.enums import StaffType
    from tests.factories import add_officer

    for i in range(7):
        await add_officer(
            db,
            world.dept_a,
            f"测试{'甲乙丙丁戊己庚'[i]}",
            staff_type=StaffType.ASSISTANT if i % 2 else StaffType.CIVIL_SERVANT,
        )
    await db.commit()
    await client.login("admin_a")
    r = (await client.get("/api/officers", params={"per_page": 3, "page": 3})).json()
    assert r["total"] == 8 and len(r["items"]) == 2
    r = (await client.get("/api/officers", params={"staff_type": "assistant"})).json()
    assert r["total"] == 3 and all(not o["may_hold_certificate"] for o in r["items"])
    r = await client.get("/api/officers", params={"per_page": 1000})
    assert r.status_code == 400
    assert dt.date.today()  # keeps the import used


async def test_policy_comes_from_the_nearest_issuing_authority(
    client: Client, world: World, db: AsyncSession
) -> None:
    from app.lib.enums import StaffType
    from app.lib.policy import Policy, policy_to_json
    from tests.factories import add_officer

    await add_officer(db, world.dept_a, "周协管", staff_type=StaffType.ASSISTANT)
    await add_officer(db, world.dept_b, "吴协管", staff_type=StaffType.ASSISTANT, field="生态环境")
    # City A is its own issuing authority and (unusually) allows assistants; city B inherits the province's default.
    world.city_a.is_issuing_authority = True
    world.city_a.policy_json = policy_to_json(Policy(excluded_staff_types=[StaffType.TEMPORARY]))
    await db.commit()
    await client.login("sfj_admin")
    items = (await client.get("/api/officers", params={"staff_type": "assistant"})).json()["items"]
    allowed = {o["name"]: o["may_hold_certificate"] for o in items}
    assert allowed == {"周协管": True, "吴协管": False}
