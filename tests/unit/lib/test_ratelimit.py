"""The rate limiter over its in-process store and the SQLite file its workers share: the window,
the refusal, and an eviction that never resets a live counter (table-driven). The Redis store:
tests/integration/test_ratelimit_shared.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.lib.errors import TooManyRequests
from app.lib.ratelimit import MemoryStore, RateLimiter, RateStore, SqliteStore

WINDOW = 60.0
LIMIT = 3
MAX_KEYS = 100_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Clock], RateStore]]:
    """Each store on a clock of the test's: this process's memory, or the workers' SQLite file."""
    made: list[SqliteStore] = []

    def make(clock: Clock) -> RateStore:
        if request.param == "memory":
            return MemoryStore(clock=clock)
        made.append(SqliteStore(str(tmp_path / "app.db.limits"), clock=clock))
        return made[-1]

    yield make
    for store in made:
        store._release()


async def test_window_and_refusal(store_of: Callable[[Clock], RateStore]) -> None:
    clock = Clock()
    rl = RateLimiter("login", limit=3, window_seconds=10, store=store_of(clock))
    for t in (0.0, 1.0, 2.0):
        clock.now = t
        await rl.hit("ip")
    clock.now = 3.0
    with pytest.raises(TooManyRequests) as exc:
        await rl.hit("ip")
    assert exc.value.retry_after == 7 and "7秒" in exc.value.message
    await rl.hit("other")  # keys are independent
    clock.now = 10.5
    await rl.hit("ip")  # the first hit has left the window


async def test_a_check_records_nothing_and_record_never_refuses(
    store_of: Callable[[Clock], RateStore],
) -> None:
    """The login's limit on failures: ``check`` before the password check, ``record`` a failure."""
    clock = Clock()
    rl = RateLimiter("login", limit=2, window_seconds=10, store=store_of(clock))
    for _ in range(5):
        await rl.check("ip")  # successes are never counted
    await rl.record("ip")
    await rl.record("ip")
    await rl.record("ip")  # already at the limit: no refusal, and the count stays at the limit
    with pytest.raises(TooManyRequests) as exc:
        await rl.check("ip")
    assert exc.value.retry_after == 10
    await rl.check("other")
    clock.now = 10.5
    await rl.check("ip")  # the failures have left the window


async def test_buckets_do_not_share_counts(store_of: Callable[[Clock], RateStore]) -> None:
    store = store_of(Clock())
    login = RateLimiter("login", limit=1, window_seconds=60, store=store)
    verify = RateLimiter("verify", limit=1, window_seconds=60, store=store)
    await login.hit("1.2.3.4")
    await verify.hit("1.2.3.4")
    with pytest.raises(TooManyRequests):
        await login.hit("1.2.3.4")


def _attacker_at_limit(store: MemoryStore, clock: Clock) -> None:
    for _ in range(LIMIT):
        assert store.take("attacker", LIMIT, WINDOW) == 0
    assert store.take("attacker", LIMIT, WINDOW) > 0


def _flood(store: MemoryStore, n: int, prefix: str, *, knock_every: int = 0) -> list[float]:
    """n other clients, one hit each; the attacker knocks every ``knock_every`` of them: the waits
    it is told (0 would mean a hit let through)."""
    waits = []
    for i in range(n):
        store.take(f"{prefix}{i}", LIMIT, WINDOW)
        if knock_every and i % knock_every == 0:
            waits.append(store.take("attacker", LIMIT, WINDOW))
    return waits


def knocking_through_a_live_flood(store: MemoryStore, clock: Clock) -> None:
    # 150,000 live keys arrive within the attacker's window while it keeps knocking.
    _attacker_at_limit(store, clock)
    clock.now = 1.0
    waits = _flood(store, 150_000, "live", knock_every=1_000)
    assert len(waits) == 150 and all(w > 0 for w in waits)


def idle_while_expired_keys_are_evicted(store: MemoryStore, clock: Clock) -> None:
    # 100,000 keys fill the store at t=0; the attacker reaches its limit at t=30 and then waits.
    _flood(store, MAX_KEYS, "old")
    clock.now = 30.0
    _attacker_at_limit(store, clock)
    # At t=61 the first flood has left its window: 95,000 new keys fill the store again and evict
    # those, not the attacker (live until t=90), although it is the least recently used.
    clock.now = 61.0
    _flood(store, 95_000, "new")
    assert store.take("attacker", LIMIT, WINDOW) == pytest.approx(29.0)


def the_store_stays_bounded(store: MemoryStore, clock: Clock) -> None:
    _attacker_at_limit(store, clock)
    for step in range(3):
        clock.now = float(step)
        _flood(store, MAX_KEYS, f"s{step}-", knock_every=10_000)
        assert len(store) <= MAX_KEYS
    assert store.take("attacker", LIMIT, WINDOW) > 0


def least_recently_used_goes_first(store: MemoryStore, clock: Clock) -> None:
    # All live and the store full: the client unseen the longest is dropped, the knocking one kept.
    store.take("quiet", LIMIT, WINDOW)
    _attacker_at_limit(store, clock)
    _flood(store, MAX_KEYS - 2, "live")
    assert len(store) == MAX_KEYS
    assert store.take("attacker", LIMIT, WINDOW) > 0  # now the most recently used
    store.take("one more", LIMIT, WINDOW)  # full: evicts down to 90 %, oldest first
    assert len(store) < MAX_KEYS
    assert store.take("attacker", LIMIT, WINDOW) > 0
    assert store.take("quiet", LIMIT, WINDOW) == 0  # forgotten: counted afresh


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[MemoryStore, Clock], None]


CASES = [
    Case("an attacker knocking through 150,000 live keys stays refused", knocking_through_a_live_flood),
    Case("an idle attacker outlives 195,000 keys, the old expired", idle_while_expired_keys_are_evicted),
    Case("the store never holds more than max_keys", the_store_stays_bounded),
    Case("the least recently used key is evicted first", least_recently_used_goes_first),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_eviction_never_resets_a_live_counter(case: Case) -> None:
    clock = Clock()
    case.run(MemoryStore(max_keys=MAX_KEYS, clock=clock), clock)


# One worker of a server on SQLite: hits the key ``n`` times on the shared file, prints how many
# were let through.
_WORKER = """
import asyncio, sys
from app.lib.ratelimit import SqliteStore
async def main():
    store = SqliteStore(sys.argv[1])
    passed = 0
    for _ in range(int(sys.argv[2])):
        passed += await store.hit("verify:203.0.113.9", 60, 60.0) == 0
    print(passed)
asyncio.run(main())
"""


def test_the_workers_of_one_server_share_the_limit(tmp_path: Path) -> None:
    """Two processes, 50 hits each on one key with a limit of 60: exactly 60 pass, however the
    kernel interleaves them (each hit is a transaction, taken in turn)."""
    path = str(tmp_path / "app.db.limits")
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, path, "50"], stdout=subprocess.PIPE, text=True)  # noqa: S603 - this interpreter, our code
        for _ in range(2)
    ]
    passed = [int(w.communicate(timeout=60)[0]) for w in workers]
    assert sum(passed) == 60 and all(p >= 10 for p in passed), passed


async def test_a_broken_file_counts_in_memory_and_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that cannot be opened (here a directory in its place) must not fail requests: the hit
    is counted in this process until the file answers, with one warning per outage."""
    path = tmp_path / "app.db.limits"
    path.mkdir()
    clock = Clock()
    store = SqliteStore(str(path), clock=clock)
    store.retry_seconds = 0.0
    rl = RateLimiter("login", limit=2, window_seconds=10, store=store)
    await rl.hit("ip")
    await rl.hit("ip")
    with pytest.raises(TooManyRequests):
        await rl.hit("ip")  # the fallback still limits
    assert store.down and await store.ping() == "unreachable"
    assert sum("is unavailable" in r.getMessage() for r in caplog.records) == 1
    path.rmdir()
    await rl.hit("other")
    assert not store.down and await store.ping() == "ok"
    await store.close()


async def test_the_shared_file_keeps_a_count_per_key_and_forgets_expired_keys(tmp_path: Path) -> None:
    """A hit reads the key's count, never counts its rows (a generous limit, such as a NAT's or
    the benches' lifted one, would make that grow with every hit); expired hits leave the count at
    the key's next hit, and keys whose newest hit has expired leave the file at the purge."""
    import sqlite3

    clock = Clock()
    store = SqliteStore(str(tmp_path / "app.db.limits"), clock=clock)
    store.PURGE_EVERY = store._until_purge = 50
    for i in range(300):
        clock.now = i * 0.1  # 30 s of hits on one key, a limit never reached
        assert await store.hit("verify:hall", 10**9, 60.0) == 0
    await store.hit("verify:phone", 10**9, 60.0)
    db = sqlite3.connect(tmp_path / "app.db.limits")
    assert db.execute("SELECT key, n FROM keys ORDER BY key").fetchall() == [
        ("verify:hall", 300),
        ("verify:phone", 1),
    ]
    clock.now = 75.05  # the hall's first 151 hits (up to 15 s) have left the window
    assert await store.hit("verify:hall", 10**9, 60.0) == 0
    left = sum(1 for i in range(300) if i * 0.1 > 15.05) + 1
    assert left == 150
    assert db.execute("SELECT n FROM keys WHERE key = 'verify:hall'").fetchone() == (left,)
    assert db.execute("SELECT count(*) FROM hits WHERE key = 'verify:hall'").fetchone() == (left,)
    clock.now = 200.0  # every hit has expired: the purge (every 50 hits) drops both keys
    for _ in range(50):
        await store.hit("verify:other", 10**9, 60.0)
    assert db.execute("SELECT key FROM keys").fetchall() == [("verify:other",)]
    assert db.execute("SELECT DISTINCT key FROM hits").fetchall() == [("verify:other",)]
    db.close()
    await store.close()
