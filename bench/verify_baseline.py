"""Baselines for bench/verify_bench.py: bare Litestar handlers under the same uvicorn settings.

- ``GET /const``: returns a constant (what the framework and server cost by themselves);
- ``GET /raw/{number}``: the same certificate lookup as ``/v/{number}`` with the raw driver
  (asyncpg pool / sqlite3), answering the same JSON fields. The statement is the app's own
  (``app.certificates.public``), and so is the connection: on PostgreSQL ``app.db.DriverPool``, as
  the app configures it (its size, and no per-release reset: asyncpg's default reset is one more
  round trip per request, which made the floor slower than the app and read the app as "103 % of
  raw"); on SQLite ``app.db.open_sqlite_reader`` (read-only, memory-mapped), the app's reader.

Run by the benchmark as ``uvicorn verify_baseline:create --factory --app-dir bench``; the database
comes from ``BENCH_DATABASE_URL`` (SQLAlchemy form).
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, get
from litestar.exceptions import NotFoundException

from app.asgi import tune_gc, tune_threads
from app.certificates.public import POSTGRES_LOOKUP, SQLITE_LOOKUP
from app.db import DriverPool, open_sqlite_reader
from app.settings import get_settings

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
    # The server process tuned as the app's is (app.asgi.app_factory): the same GC thresholds and
    # thread switch interval, so the reference is configured as well as the app.
    tune_gc()
    tune_threads()

    @get("/const", sync_to_thread=False)
    def const() -> dict[str, str]:
        return {"status": "valid", "status_label": "有效"}

    if url.startswith("sqlite"):
        conn = open_sqlite_reader(url)  # the app's reader, as the app opens it
        sql = SQLITE_LOOKUP

        @get("/raw/{number:str}", sync_to_thread=False)
        def raw_sqlite(number: str) -> dict[str, Any]:
            row = conn.execute(sql, (number,)).fetchone()
            if row is None:
                raise NotFoundException()
            return _out(row)

        return Litestar([const, raw_sqlite])

    pool = DriverPool(url, size=get_settings().db_pool_size)  # the app's pool, as the app sizes it

    @get("/raw/{number:str}")
    async def raw_pg(number: str) -> dict[str, Any]:
        row = await pool.fetchrow(POSTGRES_LOOKUP, number)
        if row is None:
            raise NotFoundException()
        return _out(tuple(row))

    return Litestar([const, raw_pg], on_shutdown=[pool.close])
