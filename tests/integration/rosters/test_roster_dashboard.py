"""The indicator dashboard and the ready-made lists: figures, their roster links, the SVG charts."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from app.accounts.models import Officer
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import YEAR


def by_key(indicators: list[dict]) -> dict[str, dict]:
    return {i["key"]: i for i in indicators}


async def test_dashboard_figures_of_the_province(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/api/rosters/dashboard?year={YEAR}")
    assert r.status_code == 200
    board = r.json()
    assert board["agency_id"] == world.province.id and board["year"] == YEAR
    ind = by_key(board["indicators"])
    # In post: 李明 赵一 钱二 周四 吴五 王芳 (孙三 retired); eligible staff types: the same six.
    assert (ind["certified"]["numerator"], ind["certified"]["denominator"]) == (2, 6)
    assert ind["certified"]["percent"] == 33.3
    assert (ind["training"]["numerator"], ind["training"]["denominator"]) == (3, 6)
    # Enforcement posts: 李明 赵一 周四 吴五 王芳 = 5; legal review: 钱二 = 1 → 20 % ≥ 5 %.
    lr = ind["legal_review"]
    assert (lr["numerator"], lr["denominator"], lr["percent"], lr["target"], lr["ok"]) == (
        1,
        5,
        20.0,
        5.0,
        True,
    )
    # Each figure links to the roster rows behind it, and those rows are its numerator.
    assert (ind["unqualified"]["numerator"], ind["exit"]["numerator"]) == (2, 1)
    for key in ("certified", "training", "legal_review", "unqualified", "exit"):
        href = ind[key]["href"]
        assert href.startswith("/rosters?")
        query = urlsplit(href).query
        body = (await client.get(f"/api/rosters?{query}")).json()
        assert body["total"] == ind[key]["numerator"], (key, href)
        if key in ("certified", "training", "legal_review"):
            assert dict(parse_qsl(query))["status"] == "active"
    # One row per city (and the province's own officers, none here).
    children = {c["agency_name"]: by_key(c["indicators"]) for c in board["children"]}
    assert set(children) == {world.city_a.name, world.city_b.name}
    assert children[world.city_b.name]["certified"]["numerator"] == 1
    assert children[world.city_a.name]["legal_review"]["denominator"] == 4


async def test_dashboard_scope_and_page(client: Client, world: World, people: dict[str, Officer]) -> None:
    await client.login("admin_a")
    board = (await client.get(f"/api/rosters/dashboard?year={YEAR}")).json()
    assert board["agency_id"] == world.city_a.id
    assert by_key(board["indicators"])["certified"]["denominator"] == 5  # 王芳 of city B is not counted
    r = await client.get(f"/rosters/dashboard?year={YEAR}")
    assert r.status_code == 200
    html = r.text
    assert html.count("<svg") == 3 and "<script" not in html
    assert "持证率" in html and "法制审核人员占执法岗位人员比例" in html
    assert f"/rosters?agency_id={world.dept_a.id}" in html  # a bar links to its agency's rows


async def test_ready_made_lists_open_their_roster_views(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get("/rosters/lists")
    assert r.status_code == 200
    assert "年度培训学时不足" in r.text and "无有效执法资格的在岗人员" in r.text
    assert "/rosters?status=active&amp;exam=none" in r.text
    assert "年度考核不合格（风险人员）" in r.text and "exit=open" in r.text
    assert "cert=duplicate" in r.text and "cert=expiring" in r.text
