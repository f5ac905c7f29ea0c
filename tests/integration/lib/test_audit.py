"""The audit chain: appended in order, verified end to end, and any edit or deletion detected."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.audit.models import AuditEvent, AuditOutbox
from app.audit.rules import GENESIS
from app.audit.services import audit_drain, audit_enqueue, audit_record, audit_verify
from app.lib.actor import SYSTEM, Actor


async def _three(db: AsyncSession) -> list[AuditEvent]:
    for i in range(3):
        await audit_record(
            db, actor=SYSTEM, action="test.event", entity_type="thing", entity_id=i, data={"n": i, "名": "值"}
        )
    await db.commit()
    return list((await db.scalars(select(AuditEvent).order_by(AuditEvent.id))).all())


async def test_chain_links(db: AsyncSession) -> None:
    events = await _three(db)
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    report = await audit_verify(db)
    assert report.ok and report.checked == 3


@pytest.mark.parametrize(
    "tamper,reason",
    [
        ("edit_data", "记录内容与其哈希不符（记录被篡改）"),
        ("edit_actor", "记录内容与其哈希不符（记录被篡改）"),
        ("delete_middle", "上一条记录的哈希不匹配（记录被删除、插入或篡改）"),
        ("delete_first", "上一条记录的哈希不匹配（记录被删除、插入或篡改）"),
    ],
)
async def test_tampering_is_detected(db: AsyncSession, tamper: str, reason: str) -> None:
    events = await _three(db)
    if tamper == "edit_data":
        await db.execute(update(AuditEvent).where(AuditEvent.id == events[1].id).values(data='{"n":99}'))
        bad = events[1].id
    elif tamper == "edit_actor":
        await db.execute(update(AuditEvent).where(AuditEvent.id == events[2].id).values(actor_name="someone"))
        bad = events[2].id
    elif tamper == "delete_middle":
        await db.execute(delete(AuditEvent).where(AuditEvent.id == events[1].id))
        bad = events[2].id
    else:
        await db.execute(delete(AuditEvent).where(AuditEvent.id == events[0].id))
        bad = events[1].id
    await db.commit()
    report = await audit_verify(db)
    assert not report.ok and report.first_bad_id == bad and report.reason == reason


async def test_cli_verify_exit_codes(db: AsyncSession, database_url: str) -> None:
    await _three(db)
    env = {**os.environ, "DATABASE_URL": database_url}
    ok = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "audit", "verify", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert '"ok": true' in ok.stdout and '"checked": 3' in ok.stdout
    await db.execute(
        text("UPDATE audit_events SET action = 'x' WHERE id = (SELECT min(id) FROM audit_events)")
    )
    await db.commit()
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "AUDIT CHAIN BROKEN" in bad.stderr


async def test_an_anchor_catches_truncation_that_the_chain_alone_cannot(db: AsyncSession) -> None:
    events = await _three(db)
    report = await audit_verify(db)
    assert (report.head_id, report.head_hash) == (events[2].id, events[2].hash)
    anchor = (events[2].id, events[2].hash)
    await db.execute(delete(AuditEvent).where(AuditEvent.id == events[2].id))
    await db.commit()
    assert (await audit_verify(db)).ok  # cutting the tail leaves a valid (shorter) chain
    report = await audit_verify(db, anchor=anchor)
    assert not report.ok and report.first_bad_id == events[2].id and "截断" in report.reason


async def test_an_anchor_catches_a_rewritten_chain(db: AsyncSession) -> None:
    """Whoever can write the table can recompute every hash after an edit; the anchor kept elsewhere
    still tells."""
    from app.audit.rules import _content, chain_hash

    events = await _three(db)
    anchor = (events[2].id, events[2].hash)
    prev = events[0].hash
    for ev in events[1:]:
        await db.refresh(ev)
        ev.data = '{"n":99}' if ev.id == events[1].id else ev.data
        ev.prev_hash = prev
        ev.hash = chain_hash(
            prev,
            _content(
                occurred_at=ev.occurred_at,
                actor_id=ev.actor_id,
                actor_name=ev.actor_name,
                action=ev.action,
                entity_type=ev.entity_type,
                entity_id=ev.entity_id,
                agency_id=ev.agency_id,
                data=ev.data,
            ),
        )
        prev = ev.hash
    await db.commit()
    assert (await audit_verify(db)).ok
    report = await audit_verify(db, anchor=anchor)
    assert not report.ok and report.first_bad_id == anchor[0] and "锚点" in report.reason


async def test_cli_prints_the_head_and_checks_an_anchor(db: AsyncSession, database_url: str) -> None:
    events = await _three(db)
    env = {**os.environ, "DATABASE_URL": database_url}

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app", "audit", "verify", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    ok = await run()
    head = f"{events[2].id}:{events[2].hash}"
    assert ok.returncode == 0 and head in ok.stdout
    assert (await run("--anchor", head)).returncode == 0
    await db.execute(delete(AuditEvent).where(AuditEvent.id == events[2].id))
    await db.commit()
    gone = await run("--anchor", head)
    assert gone.returncode == 1 and "AUDIT CHAIN BROKEN" in gone.stderr
    bad = await run("--anchor", "not-an-anchor")
    assert bad.returncode == 2


async def test_the_drain_chains_the_outbox_in_order_in_batches_after_direct_appends(db: AsyncSession) -> None:
    """Outbox events keep their own time, actor and data, enter the chain in outbox order, a batch at
    a time, after whatever was appended directly in between; nothing is chained twice."""
    base = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    officer = Actor(account_id=7, name="张三")
    for i in range(5):
        await audit_enqueue(
            db,
            actor=officer,
            action="exam.answers.save",
            entity_type="exam_attempt",
            entity_id=40 + i,
            agency_id=3,
            data={"answers": [[i, 1, "0"]]},
            occurred_at=base + dt.timedelta(seconds=10 - i),  # times need not follow the outbox order
        )
    await db.commit()
    assert await audit_drain(db, batch=2) == 2
    await audit_record(db, actor=SYSTEM, action="test.direct", entity_type="thing", entity_id="x")
    await db.commit()
    assert [await audit_drain(db, batch=2) for _ in range(3)] == [2, 1, 0]
    assert (await db.execute(select(AuditOutbox.id))).all() == []

    events = list((await db.scalars(select(AuditEvent).order_by(AuditEvent.id))).all())
    assert [(e.action, e.entity_id) for e in events] == [
        ("exam.answers.save", "40"),
        ("exam.answers.save", "41"),
        ("test.direct", "x"),
        ("exam.answers.save", "42"),
        ("exam.answers.save", "43"),
        ("exam.answers.save", "44"),
    ]
    saves = [e for e in events if e.action == "exam.answers.save"]
    assert [e.occurred_at for e in saves] == [base + dt.timedelta(seconds=10 - i) for i in range(5)]
    assert {(e.actor_id, e.actor_name, e.agency_id) for e in saves} == {(7, "张三", 3)}
    assert saves[2].data == '{"answers":[[2,1,"0"]]}'
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    report = await audit_verify(db)
    assert report.ok and report.checked == 6


async def test_on_sqlite_the_drain_holds_the_write_connection_for_small_batches(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a drain batch holds the server's one write connection, which every exam save waits
    for: the drain chains 450 events in batches of at most SQLITE_DRAIN_BATCH, the chain intact."""
    from app.audit import tasks

    for i in range(450):
        await audit_enqueue(db, actor=SYSTEM, action="test.event", entity_type="t", entity_id=i)
    batches: list[int] = []
    real = tasks.audit_drain

    async def drain(session: AsyncSession, *, batch: int) -> int:
        batches.append(batch)
        return await real(session, batch=batch)

    monkeypatch.setattr(tasks, "audit_drain", drain)
    assert await tasks.audit_drain_all(db) == 450
    sqlite = db.bind is not None and db.bind.dialect.name == "sqlite"
    expected = tasks.SQLITE_DRAIN_BATCH if sqlite else tasks.DRAIN_BATCH
    assert set(batches) == {expected} and len(batches) == (3 if sqlite else 1)
    assert (await audit_verify(db)).ok
    assert (await db.scalar(select(func.count()).select_from(AuditOutbox))) == 0


async def test_on_sqlite_the_server_drains_in_threads_and_two_drains_never_fork_the_chain(
    database_url: str, engine: AsyncEngine
) -> None:
    """A server on SQLite drains in a thread of its own (``SqliteDrain``: no round trip through the
    event loop per statement while it holds the write lock); two of them, as two workers run,
    chain every event exactly once, in batches, and the chain verifies."""
    from app.audit.tasks import SQLITE_DRAIN_BATCH, SqliteDrain
    from app.db import make_sessionmaker, sqlite_file

    path = sqlite_file(database_url)
    if path is None:
        pytest.skip("PostgreSQL drains through its sessions under an advisory lock (the tests above)")
    maker = make_sessionmaker(engine)
    async with maker() as db:
        before = await db.scalar(select(func.count()).select_from(AuditEvent)) or 0
        for i in range(2 * SQLITE_DRAIN_BATCH + 50):
            await audit_enqueue(db, actor=SYSTEM, action="test.thread", entity_type="t", entity_id=i)
        await db.commit()
    drains = [SqliteDrain(path), SqliteDrain(path)]
    try:
        moved = await asyncio.gather(*(asyncio.to_thread(d.drain_all) for d in drains))
    finally:
        for d in drains:
            d.close()
    assert sum(moved) == 2 * SQLITE_DRAIN_BATCH + 50
    async with maker() as db:
        assert await db.scalar(select(func.count()).select_from(AuditOutbox)) == 0
        ids = (
            await db.scalars(
                select(AuditEvent.entity_id).where(AuditEvent.action == "test.thread").order_by(AuditEvent.id)
            )
        ).all()
        assert ids == [str(i) for i in range(2 * SQLITE_DRAIN_BATCH + 50)]  # outbox order, once each
        assert await db.scalar(select(func.count()).select_from(AuditEvent)) == before + len(ids)
        assert (await audit_verify(db)).ok
