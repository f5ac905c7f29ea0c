"""Agencies through the API: what is stored of a create and an update, and what the trail records."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.audit.models import AuditEvent
from tests.factories import World
from tests.integration.conftest import Client


def _agency(world: World, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "  甲市交通运输局 ",
        "short_name": " 交通运输局 ",
        "region_code": "320100",
        "level": "city",
        "kind": "department",
        "parent_id": world.city_a.id,
        "is_enforcement_subject": True,
        "enforcement_basis": " 依据《中华人民共和国公路法》 ",
    }
    body.update(over)
    return body


async def test_create_then_update_store_the_trimmed_values(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("sfj_admin")
    r = await client.post("/api/agencies", json=_agency(world))
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["name"], created["short_name"], created["enforcement_basis"]) == (
        "甲市交通运输局",
        "交通运输局",
        "依据《中华人民共和国公路法》",
    )
    assert (created["level"], created["kind"], created["depth"]) == (
        "city",
        "department",
        world.city_a.depth + 1,
    )
    agency_id = created["id"]

    r = await client.put(
        f"/api/agencies/{agency_id}", json=_agency(world, name=" 甲市交通运输综合执法支队 ", level="county")
    )
    assert r.status_code == 200, r.text
    stored = await db.scalar(
        select(Agency).where(Agency.id == agency_id).execution_options(populate_existing=True)
    )
    assert stored is not None
    assert (stored.name, stored.short_name, stored.level) == (
        "甲市交通运输综合执法支队",
        "交通运输局",
        "county",
    )
    events = (
        await db.execute(
            select(AuditEvent.action, AuditEvent.agency_id, AuditEvent.data)
            .where(AuditEvent.entity_type == "agency", AuditEvent.entity_id == str(agency_id))
            .order_by(AuditEvent.id)
        )
    ).all()
    assert [(a, ag) for a, ag, _ in events] == [("agency.create", agency_id), ("agency.update", agency_id)]
    assert json.loads(events[1][2])["changes"] == {
        "name": ["甲市交通运输局", "甲市交通运输综合执法支队"],
        "level": ["city", "county"],
    }
