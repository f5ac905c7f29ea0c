"""The audit chain: appended in order, verified end to end, and any edit or deletion detected."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.audit import GENESIS, SYSTEM, AuditEvent, audit_record, audit_verify


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
