"""How the demo province's one big transaction is loaded into SQLite (``app.demo.province``).

Three settings of the loading connection, each undone or checked before the load can count as
done, none weakening what the database guarantees afterwards:

- a page cache the province fits in (the loading connection is closed after the load);
- CHECK constraints evaluated once per table over the loaded rows (``check_tables``) instead of
  row by row: SQLite builds a constant ``IN`` list (the enumerations) again for every row of an
  executemany, which was half the cost of inserting an officer;
- the rollback journal instead of WAL for the load (``rollback_journal``): a WAL commit writes
  every page twice (to the log, then the checkpoint to the database file), 1.5-2 s for the
  province's 260 MB against 0.45 s written once.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

LOAD_CACHE_KIB = 512 * 1024
"""Page cache of the loading connection: the 200,000-officer province fits (about 270 MB)."""
TABLE_CHECK = (3, 33, 0)
"""``PRAGMA quick_check(table)``, which the deferred CHECK constraints may need, came with SQLite 3.33."""


async def prepare(driver: Any) -> bool:
    """Set the loading connection up (the driver's, inside the load's transaction). Returns whether
    CHECK constraints are held off until ``check_tables``."""
    # The load's indexes take their rows in random order (ID numbers, names): with SQLite's
    # default 2 MiB page cache each insert would read and spill index pages.
    cursor = await driver.execute(f"PRAGMA cache_size = -{LOAD_CACHE_KIB}")
    await cursor.close()
    if sqlite3.sqlite_version_info < TABLE_CHECK:
        return False
    cursor = await driver.execute("PRAGMA ignore_check_constraints = ON")
    await cursor.close()
    return True


async def check_tables(conn: AsyncConnection, tables: list[str]) -> None:
    """The CHECK constraints again for every later statement, and every row of ``tables`` checked
    against them, one scan per table. A violation is an error: the load rolls back."""
    await conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
    for table in tables:
        broken = await _violations(conn, table)
        if broken:
            raise RuntimeError(f"demo data for {table} breaks its constraints: {'; '.join(broken)}")


def _checks_of(sync_conn: Connection, table: str) -> tuple[list[str], str]:
    """A table's CHECK expressions as the catalog reads them, and its CREATE statement."""
    checks = [c["sqltext"] for c in inspect(sync_conn).get_check_constraints(table)]
    sql = sync_conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    )
    return checks, sql.scalar_one()


async def _violations(conn: AsyncConnection, table: str) -> list[str]:
    """What in a table breaks its CHECK constraints: one scan with all of them. A table whose
    CHECKs the catalog's reader does not all account for (as many read as its SQL names) gets
    SQLite's own ``PRAGMA quick_check``, which checks them too (and NOT NULL, and the b-trees)."""
    checks, sql = await conn.run_sync(_checks_of, table)
    if len(checks) != len(re.findall(r"\bCHECK\b", sql, re.IGNORECASE)):
        found = await conn.exec_driver_sql(f'PRAGMA quick_check("{table}")')
        return [str(r) for (r,) in found if r != "ok"]
    if not checks:
        return []
    broken = " OR ".join(f"NOT ({c})" for c in checks)
    rows = (await conn.exec_driver_sql(f'SELECT count(*) FROM "{table}" WHERE {broken}')).scalar_one()
    return [f"{rows} rows fail a CHECK constraint"] if rows else []


@asynccontextmanager
async def rollback_journal(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite: the database in rollback-journal mode inside the block, with ``synchronous = FULL`` (what
    that mode needs to survive a power cut), and in WAL again afterwards, whatever happened.

    The mode can only change outside a transaction and with no other connection open: the load's
    session then takes this same pooled connection. Another connection open (a server) leaves the
    database in WAL, as before. A load killed meanwhile leaves a hot journal that the next
    connection rolls back, and every connection of the application sets WAL when it opens.
    """
    switched = engine.dialect.name == "sqlite" and await _journal(engine, "delete", "FULL")
    try:
        yield
    finally:
        if switched:
            await _journal(engine, "wal", "NORMAL")


async def _journal(engine: AsyncEngine, mode: str, synchronous: str) -> bool:
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            cursor = await driver.execute(f"PRAGMA journal_mode = {mode}")
        except sqlite3.OperationalError:  # "database is locked": another connection is open
            return False
        (now,) = await cursor.fetchone()
        await cursor.close()
        cursor = await driver.execute(f"PRAGMA synchronous = {synchronous}")
        await cursor.close()
    return str(now).lower() == mode
