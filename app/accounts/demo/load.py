"""The accounts domain's part of the demo province: agencies, officers, postings, the demo logins.

Officers are loaded in bulk: rows are plain tuples handed to ``write`` (the orchestration's bulk
writer: COPY on PostgreSQL, executemany on SQLite), ids assigned here, so 200 000 officers take
seconds. The four demo accounts go through the ORM in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from operator import itemgetter

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.demo.people import _SPECIALS, OFFICER_COLUMNS, POSTING_COLUMNS, _People, _Special
from app.accounts.demo.tree import AGENCY_COLUMNS, _agency_row, _build_tree, _Node, _Tree
from app.accounts.models import Account
from app.lib.bulk import BulkLoad, Row
from app.lib.enums import Role
from app.lib.security import hash_password_sync

BATCH = 20_000
ROSTER_COLUMNS = ("id", "name", "agency_id", "field", "area", "post", "employment_status", "staff_type")
roster_row = itemgetter(*(OFFICER_COLUMNS.index(c) for c in ROSTER_COLUMNS))
"""An officer row's ``ROSTER_COLUMNS``."""

"""``write(table, columns, rows)``: the orchestration's bulk writer."""
Progress = Callable[[str, int, int], None]
"""``update(description, completed, total)``: the console's progress bar, or nothing."""


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: Role
    where: str


# The documented demo logins (README, the login page hint); must_change_password is off for them.
DEMO_ACCOUNTS = (
    DemoAccount("sfj_admin", "Demo-2026-admin", Role.AUTHORITY_ADMIN, "省人民政府（发证机关：江南省司法厅）"),
    DemoAccount("shi_admin", "Demo-2026-city", Role.AGENCY_ADMIN, "第一个市的人民政府"),
    DemoAccount("xian_admin", "Demo-2026-county", Role.AGENCY_ADMIN, "另一个市下的一个县区人民政府"),
    DemoAccount("zhifa01", "Demo-2026-officer", Role.OFFICER, "第一个市的市场监督管理局的一名执法人员"),
)


@dataclass
class PeopleLoaded:
    """What ``load_people_demo`` wrote: the tree, zhifa01's department, the counts and the fixed officers."""

    tree: _Tree
    market: _Node
    agencies: int = 0
    governments: int = 0
    departments: int = 0
    authorities: int = 0
    officers: int = 0
    postings: int = 0
    specials: list[tuple[_Special, int, str]] = dc_field(default_factory=list)  # officer id, ID number
    roster: list[Row] = dc_field(default_factory=list)
    """Every officer as ``ROSTER_COLUMNS``, in id order: what the other domains' demo data draws on."""


async def load_people_demo(run: BulkLoad, *, officers: int, progress: Progress) -> PeopleLoaded:
    """The agencies, officers and postings. ``officers`` counts the five fixed officers too."""
    _conn, write, seed, _as_of, date_out, now = run
    rng = random.Random(seed)
    tree = _build_tree(rng)
    await write("agencies", AGENCY_COLUMNS, [_agency_row(n, now) for n in tree.nodes])
    departments = len(tree.departments)

    people = _People(rng, tree, date_out=date_out, now=now)
    first_city = tree.cities[0]
    market = next(d for d in first_city.departments if d.field == "市场监管")
    loaded = PeopleLoaded(
        tree=tree,
        market=market,
        agencies=len(tree.nodes),
        departments=departments,
        governments=len(tree.nodes) - departments,
        authorities=sum(1 for n in tree.nodes if n.authority_name),
    )
    special_rows = [people.special(spec, market) for spec in _SPECIALS]
    await write("officers", OFFICER_COLUMNS, [o for o, _ in special_rows])
    await write("posting_history", POSTING_COLUMNS, [p for _, p in special_rows])
    loaded.specials = [(spec, o[0], o[3]) for spec, (o, _) in zip(_SPECIALS, special_rows, strict=True)]
    total = max(officers, len(_SPECIALS))
    done = len(_SPECIALS)
    postings = len(special_rows)
    progress("执法人员", done, total)

    loaded.roster = [roster_row(o) for o, _ in special_rows]

    async def write_batch(officer_rows: list[Row], posting_rows: list[Row]) -> None:
        loaded.roster += map(roster_row, officer_rows)
        await write("officers", OFFICER_COLUMNS, officer_rows)
        await write("posting_history", POSTING_COLUMNS, posting_rows)
        progress("执法人员", officer_rows[-1][0], total)

    # Draw the next batch in a thread while the database takes the previous one: on two cores
    # the generator and the database (its own process, or SQLite outside the GIL) overlap.
    writing: asyncio.Task[None] | None = None
    try:
        while done < total:
            n = min(BATCH, total - done)
            officer_rows, posting_rows = await asyncio.to_thread(people.batch, n)
            if writing is not None:
                await writing
            writing = asyncio.create_task(write_batch(officer_rows, posting_rows))
            done += n
            postings += len(posting_rows)
    finally:
        # Never leave a write running on the connection when the transaction is rolled back.
        if writing is not None:
            await writing
    loaded.officers = done
    loaded.postings = postings
    return loaded


def hash_demo_passwords() -> asyncio.Future[list[str]]:
    """The demo logins' password hashes, computed in threads (argon2 is slow on purpose): start it
    first, await it after the rows are drawn."""
    return asyncio.gather(*(asyncio.to_thread(hash_password_sync, a.password) for a in DEMO_ACCOUNTS))


async def add_demo_accounts(
    session: AsyncSession, people: PeopleLoaded, hashes: Sequence[str]
) -> list[tuple[DemoAccount, str]]:
    """The four demo logins, each with the name of the agency it sits in."""
    tree = people.tree
    other_city = tree.cities[1]
    county = tree.counties[other_city.id][0]
    homes = {
        "sfj_admin": (tree.province, None),
        "shi_admin": (tree.cities[0], None),
        "xian_admin": (county, None),
        "zhifa01": (people.market, people.specials[0][1]),
    }
    added = []
    for demo, password_hash in zip(DEMO_ACCOUNTS, hashes, strict=True):
        home, officer_id = homes[demo.username]
        display = {
            Role.AUTHORITY_ADMIN: f"{tree.province.authority_name}管理员",
            Role.AGENCY_ADMIN: f"{home.region_name}管理员",
            Role.OFFICER: _SPECIALS[0].name,
        }[demo.role]
        session.add(
            Account(
                username=demo.username,
                display_name=display,
                password_hash=password_hash,
                role=demo.role.value,
                agency_id=home.id,
                officer_id=officer_id,
                must_change_password=False,
            )
        )
        added.append((demo, home.name))
    await session.flush()
    return added
