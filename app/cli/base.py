"""The root of the `app` console command and what every command module shares.

A console command is an edge like an HTTP request: ``session`` opens one session on the configured
database and commits once when the command's work returns (rolls back when it raises), so the
services it calls never commit themselves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def run(coro_fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    return asyncio.run(coro_fn(*args, **kwargs))


@asynccontextmanager
async def session(*, write: bool = True) -> AsyncIterator[AsyncSession]:
    """One session on ``DATABASE_URL`` for a console command: committed at the end, rolled back on error."""
    from app.db import make_engine, make_sessionmaker
    from app.settings import get_settings

    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine, write=write)() as db:
            try:
                yield db
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
    finally:
        await engine.dispose()


def echo_json(value: Any) -> None:
    """A command's ``--json`` answer: one line, Chinese written as is (not as ``\\u`` escapes)."""
    click.echo(json.dumps(value, ensure_ascii=False))


@click.group()
def cli() -> None:
    """行政执法人员资格管理系统 — operator commands."""


__all__ = ["cli", "echo_json", "run", "session"]
