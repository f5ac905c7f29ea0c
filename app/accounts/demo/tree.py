"""The demo province's agency tree (江南省): governments at three levels, ten departments under each.

The province is invented but shaped like a real one: 6-digit region codes (province 320000, cities
32xx00, districts 32xx02.., counties 32xx21.., county-level cities 32xx81), a people's government at
each level with ten enforcement departments under it, and the province and every city government
acting as issuing authority (发证机关). Everything follows from the random generator handed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from app.lib.bulk import Row
from app.lib.enums import AgencyKind, AgencyLevel

PROVINCE = "江南省"


PROVINCE_CODE = "320000"


@dataclass(frozen=True)
class _DeptKind:
    field: str
    province_name: str
    city_name: str
    county_name: str
    weight: float  # relative head count
    laws: str


_DEPARTMENTS = (
    _DeptKind(
        "市场监管", "市场监督管理局", "市场监督管理局", "市场监督管理局", 3.0,
        "《中华人民共和国产品质量法》《中华人民共和国食品安全法》《中华人民共和国反不正当竞争法》",
    ),
    _DeptKind(
        "生态环境", "生态环境厅", "生态环境局", "生态环境局", 1.5,
        "《中华人民共和国环境保护法》《中华人民共和国大气污染防治法》《中华人民共和国水污染防治法》",
    ),
    _DeptKind(
        "交通运输", "交通运输厅", "交通运输局", "交通运输局", 2.0,
        "《中华人民共和国公路法》《中华人民共和国道路运输条例》《中华人民共和国航道法》",
    ),
    _DeptKind(
        "城市管理", "住房和城乡建设厅", "城市管理综合行政执法局", "城市管理综合行政执法局", 2.5,
        "《城市市容和环境卫生管理条例》《中华人民共和国城乡规划法》《江南省城市管理相对集中行政处罚权条例》",
    ),
    _DeptKind(
        "农业农村", "农业农村厅", "农业农村局", "农业农村局", 1.5,
        "《中华人民共和国农产品质量安全法》《中华人民共和国种子法》《农药管理条例》",
    ),
    _DeptKind(
        "自然资源", "自然资源厅", "自然资源局", "自然资源局", 1.2,
        "《中华人民共和国土地管理法》《中华人民共和国矿产资源法》《中华人民共和国森林法》",
    ),
    _DeptKind(
        "应急管理", "应急管理厅", "应急管理局", "应急管理局", 1.2,
        "《中华人民共和国安全生产法》《中华人民共和国消防法》《危险化学品安全管理条例》",
    ),
    _DeptKind(
        "文化市场", "文化市场综合执法总队", "文化市场综合执法支队", "文化市场综合执法大队", 0.8,
        "《中华人民共和国文物保护法》《营业性演出管理条例》《出版管理条例》",
    ),
    _DeptKind(
        "卫生健康", "卫生健康委员会", "卫生健康委员会", "卫生健康局", 1.0,
        "《中华人民共和国基本医疗卫生与健康促进法》《中华人民共和国传染病防治法》《医疗机构管理条例》",
    ),
    _DeptKind(
        "水利", "水利厅", "水利局", "水利局", 0.7,
        "《中华人民共和国水法》《中华人民共和国防洪法》《中华人民共和国水土保持法》",
    ),
)  # fmt: skip


_LEVEL_WEIGHT = {AgencyLevel.PROVINCE: 0.5, AgencyLevel.CITY: 1.0, AgencyLevel.COUNTY: 1.3}


_CITY_NAMES = (
    "云川",
    "泰宁",
    "清河",
    "东阳",
    "江陵",
    "安平",
    "长溪",
    "石城",
    "明州",
    "宁海",
    "丰乐",
    "白沙",
    "湖阳",
    "临江",
)


_DISTRICT_NAMES = ("城东", "城西", "城南", "城北", "新城", "江滨")


_COUNTY_FIRST = "平溪青梅桃枫龙凤柳松兰杏双金高永瑞新南北西"


_COUNTY_SECOND = "山口岭源林门泉阳塘河桥田乐江城安丰"


@dataclass(eq=False)
class _Node:
    id: int
    parent: _Node | None
    name: str
    short_name: str
    region_code: str
    region_name: str
    level: AgencyLevel
    kind: AgencyKind
    field: str = ""
    basis: str = ""
    authority_name: str = ""
    weight: float = 0.0
    government: _Node | None = None  # a department's people's government
    departments: list[_Node] = dc_field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.parent.path if self.parent else '/'}{self.id}/"

    @property
    def depth(self) -> int:
        return self.parent.depth + 1 if self.parent else 0


@dataclass
class _Tree:
    nodes: list[_Node]
    province: _Node
    cities: list[_Node]
    counties: dict[int, list[_Node]]  # city id → its county governments

    @property
    def departments(self) -> list[_Node]:
        return [n for n in self.nodes if n.kind is AgencyKind.DEPARTMENT]


def _build_tree(rng: random.Random) -> _Tree:
    nodes: list[_Node] = []

    def add(**kw: Any) -> _Node:
        node = _Node(id=len(nodes) + 1, **kw)
        nodes.append(node)
        return node

    def add_departments(gov: _Node) -> None:
        for kind in _DEPARTMENTS:
            suffix = {
                AgencyLevel.PROVINCE: kind.province_name,
                AgencyLevel.CITY: kind.city_name,
                AgencyLevel.COUNTY: kind.county_name,
            }[gov.level]
            dept = add(
                parent=gov,
                name=f"{gov.region_name}{suffix}",
                short_name=suffix,
                region_code=gov.region_code,
                region_name=gov.region_name,
                level=gov.level,
                kind=AgencyKind.DEPARTMENT,
                field=kind.field,
                basis=(
                    f"依据《中华人民共和国行政处罚法》{kind.laws}等法律、法规的规定，"
                    f"在{gov.region_name}行政区域内以自己的名义实施{kind.field}领域行政执法"
                ),
                weight=kind.weight * _LEVEL_WEIGHT[gov.level],
                government=gov,
            )
            gov.departments.append(dept)

    def add_government(
        parent: _Node | None, region_name: str, region_code: str, level: AgencyLevel, authority_name: str = ""
    ) -> _Node:
        """A region's people's government, named after the region, with its ten departments."""
        gov = add(
            parent=parent,
            name=f"{region_name}人民政府",
            short_name=region_name,
            region_code=region_code,
            region_name=region_name,
            level=level,
            kind=AgencyKind.GOVERNMENT,
            authority_name=authority_name,
        )
        add_departments(gov)
        return gov

    province = add_government(None, PROVINCE, PROVINCE_CODE, AgencyLevel.PROVINCE, f"{PROVINCE}司法厅")

    city_names = rng.sample(_CITY_NAMES, 8)
    county_pool = [a + b for a in _COUNTY_FIRST for b in _COUNTY_SECOND if a != b and a + b not in city_names]
    rng.shuffle(county_pool)
    cities: list[_Node] = []
    counties: dict[int, list[_Node]] = {}
    for i, short in enumerate(city_names, start=1):
        city_name = f"{short}市"
        code = f"{PROVINCE_CODE[:2]}{i:02d}00"
        city = add_government(province, city_name, code, AgencyLevel.CITY, f"{city_name}司法局")
        cities.append(city)
        n_counties = rng.randint(3, 6)
        n_districts = rng.randint(1, 2)
        has_county_city = n_counties - n_districts >= 2 and rng.random() < 0.5
        regions: list[tuple[str, str]] = []  # (name, code)
        for d, district in enumerate(rng.sample(_DISTRICT_NAMES, n_districts)):
            regions.append((f"{city_name}{district}区", f"{code[:4]}{2 + d:02d}"))
        n_plain = n_counties - n_districts - (1 if has_county_city else 0)
        for c in range(n_plain):
            regions.append((f"{county_pool.pop()}县", f"{code[:4]}{21 + c:02d}"))
        if has_county_city:
            regions.append((f"{county_pool.pop()}市", f"{code[:4]}81"))
        counties[city.id] = []
        for region_name, region_code in regions:
            counties[city.id].append(add_government(city, region_name, region_code, AgencyLevel.COUNTY))
    return _Tree(nodes=nodes, province=province, cities=cities, counties=counties)


AGENCY_COLUMNS = (
    "id", "parent_id", "name", "short_name", "region_code", "level", "kind", "path", "depth",
    "is_enforcement_subject", "enforcement_basis", "is_issuing_authority", "authority_name", "policy_json",
    "is_active", "created_at", "updated_at", "is_legal_affairs_office",
)  # fmt: skip


def _agency_row(node: _Node, now: Any) -> Row:
    return (
        node.id, node.parent.id if node.parent else None, node.name, node.short_name, node.region_code,
        node.level.value, node.kind.value, node.path, node.depth, node.kind is AgencyKind.DEPARTMENT,
        node.basis, bool(node.authority_name), node.authority_name, None, True, now, now,
        node.kind is AgencyKind.GOVERNMENT,  # each government's 司法局 stands for its 法制机构
    )  # fmt: skip
