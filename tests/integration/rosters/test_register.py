"""The public register (公示): anyone can search it; it shows what cards show and never an ID number."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import card


async def names(client: Client, query: str) -> list[str]:
    r = await client.get(f"/api/register?{query}")
    assert r.status_code == 200, r.text
    return [e["name"] for e in r.json()["items"]]


async def test_anonymous_search_by_name_number_agency_and_status(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    # Valid cards by default: 李明 and 王芳 (supervision), 赵一, 王芳, 孙三, 吴五 ×2 (enforcement).
    assert sorted(await names(client, "")) == sorted(["李明", "王芳", "赵一", "王芳", "孙三", "吴五", "吴五"])
    assert await names(client, "q=赵") == ["赵一"]
    assert await names(client, f"q={world.cert_a.number}") == ["李明"]
    assert sorted(await names(client, "agency=乙市")) == ["王芳", "王芳"]
    assert await names(client, "status=expired") == ["周四"]
    assert await names(client, "status=暂扣") == ["钱二"]
    assert len(await names(client, "status=all")) == 9
    entry = (await client.get("/api/register?q=赵一")).json()["items"][0]
    assert set(entry) == {
        "name",
        "agency",
        "post",
        "number",
        "kind",
        "field",
        "area",
        "status",
        "status_code",
        "valid_until",
    }
    assert (entry["post"], entry["kind"], entry["status"]) == ("执法岗位", "行政执法证", "有效")


async def test_no_id_number_on_the_public_page_or_api(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    page = await client.get("/register?status=all")
    api = await client.get("/api/register?status=all")
    assert page.status_code == 200 and "行政执法证件持证人员公示" in page.text
    for officer in people.values():
        for text in (page.text, api.text):
            assert officer.id_number not in text
            assert officer.id_number[-6:] not in text  # not even masked
    assert "赵一" in page.text and "<script" not in page.text


async def test_pages_by_number(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer]
) -> None:
    for _ in range(20):
        await card(db, people["赵一"], kind="supervision")
    await db.commit()
    first = (await client.get("/api/register")).json()
    assert len(first["items"]) == 20 and first["next_after"]
    second = (await client.get(f"/api/register?after={first['next_after']}")).json()
    numbers = [e["number"] for e in first["items"] + second["items"]]
    assert len(numbers) == len(set(numbers)) == 27 and numbers == sorted(numbers)
    assert second["next_after"] is None
    page = await client.get("/register")
    assert "下一页" in page.text


async def test_bad_query_is_explained(client: Client, world: World, people: dict[str, Officer]) -> None:
    r = await client.get("/api/register?status=bogus", headers={"accept": "application/json"})
    assert r.status_code == 400 and "status" in r.text
    r = await client.get("/register?after=%3Cx%3E")
    assert r.status_code == 400 and "翻页参数无效" in r.text


async def test_rate_limited_per_client(client: Client, world: World, people: dict[str, Officer]) -> None:
    for _ in range(60):
        assert (await client.get("/api/register?q=赵")).status_code == 200
    r = await client.get("/api/register?q=赵", headers={"accept": "application/json"})
    assert r.status_code == 429
    assert "请求过于频繁" in r.text
