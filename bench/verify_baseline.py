"""Baselines for bench/verify_bench.py: bare Litestar handlers under the same uvicorn settings.

- ``GET /const``: returns a constant (what the framework and server cost by themselves);
- ``GET /raw/{number}``: the same certificate lookup as ``/v/{number}`` with the raw driver
  (asyncpg pool / sqlite3), answering the same JSON fields.

Run by the benchmark as ``uvicorn verify_baseline:create --factory --app-dir bench``; the database
comes from ``BENCH_DATABASE_URL`` (SQLAlchemy form).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from litestar import Litestar, get
from litestar.exceptions import NotFoundException

SQL = (
    "SELECT c.number, c.kind, c.holder_name, c.agency_name, c.field, c.area, c.authority_name, "
    "c.valid_from, c.valid_until, c.status, c.token, o.photo_path "
    "FROM certificates c JOIN officers o ON o.id = c.officer_id WHERE c.number = {p}"
)
KEYS = (
    "number", "kind", "name", "agency", "field", "area", "issuing_authority", "valid_from", "valid_until",
    "status", "token", "photo",
)  # fmt: skip


def _out(row: Any) -> dict[str, Any]:
    d = dict(zip(KEYS, row, strict=True))
    d.pop("token")
    d["has_photo"] = bool(d.pop("photo"))
    d["valid_from"], d["valid_until"] = str(d["valid_from"]), str(d["valid_until"])
    return d


def create() -> Litestar:
    url = os.environ["BENCH_DATABASE_URL"]

    @get("/const", sync_to_thread=False)
    def const() -> dict[str, str]:
        return {"status": "valid", "status_label": "有效"}

    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        sql = SQL.format(p="?")

        @get("/raw/{number:str}", sync_to_thread=False)
        def raw_sqlite(number: str) -> dict[str, Any]:
            row = conn.execute(sql, (number,)).fetchone()
            if row is None:
                raise NotFoundException()
            return _out(row)

        return Litestar([const, raw_sqlite])

    import asyncpg

    dsn = "postgresql://" + url.split("://", 1)[1]
    state: dict[str, Any] = {}
    sql = SQL.format(p="$1")

    async def startup() -> None:
        state["pool"] = await asyncpg.create_pool(dsn, min_size=10, max_size=10)

    @get("/raw/{number:str}")
    async def raw_pg(number: str) -> dict[str, Any]:
        async with state["pool"].acquire() as c:
            row = await c.fetchrow(sql, number)
        if row is None:
            raise NotFoundException()
        return _out(tuple(row))

    return Litestar([const, raw_pg], on_startup=[startup])
