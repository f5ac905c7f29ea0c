"""The rate limiter over its in-process store and the mapped file its workers share: the window,
the refusal, an eviction that never resets a live counter (table-driven), and the file's log
checked hit by hit against the rule it keeps. The Redis store: tests/integration/test_ratelimit_shared.py."""

from __future__ import annotations

import bisect
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.lib.errors import TooManyRequests
from app.lib.ratelimit import FileStore, MemoryStore, RateLimiter, RateStore

WINDOW = 60.0
LIMIT = 3
MAX_KEYS = 100_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "file"])
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Clock], RateStore]]:
    """Each store on a clock of the test's: this process's memory, or the workers' mapped file."""
    made: list[FileStore] = []

    def make(clock: Clock) -> RateStore:
        if request.param == "memory":
            return MemoryStore(clock=clock)
        made.append(FileStore(str(tmp_path / "app.db.limits"), clock=clock, slots=1024))
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
from app.lib.ratelimit import FileStore
async def main():
    store = FileStore(sys.argv[1])
    passed = 0
    for _ in range(int(sys.argv[2])):
        passed += await store.hit("verify:203.0.113.9", 60, 60.0) == 0
    print(passed)
asyncio.run(main())
"""


def test_the_workers_of_one_server_share_the_limit(tmp_path: Path) -> None:
    """Two processes, 50 hits each on one key with a limit of 60: exactly 60 pass, however the
    kernel interleaves them (each hit is one turn on the file's lock)."""
    path = str(tmp_path / "app.db.limits")
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, path, "50"], stdout=subprocess.PIPE, text=True)  # noqa: S603 - this interpreter, our code
        for _ in range(2)
    ]
    passed = [int(w.communicate(timeout=60)[0]) for w in workers]
    assert sum(passed) == 60 and all(p >= 10 for p in passed), passed


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


async def test_a_hit_waits_for_a_turn_held_past_its_spin(tmp_path: Path) -> None:
    """Another worker paused inside its turn (here: holding the lock for 0.3 s): the hit neither
    fails nor skips the count; it waits for the turn after its tries, then counts."""
    import time

    path = str(tmp_path / "app.db.limits")
    store = FileStore(path, slots=64)
    assert await store.hit("ip", 2, 60.0) == 0  # creates the file
    # The other worker (this interpreter, our code); started blocking on purpose: so is the turn.
    holder = subprocess.Popen(  # noqa: S603, ASYNC220
        [sys.executable, "-c", _HOLDER, path, "0.3"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    started = time.monotonic()
    assert await store.hit("ip", 2, 60.0) == 0
    assert time.monotonic() - started > 0.1  # it waited for the turn
    assert await store.hit("ip", 2, 60.0) > 0  # and counted: the limit of 2 is reached
    holder.wait(timeout=10)
    await store.close()


async def test_a_broken_file_counts_in_memory_and_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that cannot be opened (here a directory in its place) must not fail requests: the hit
    is counted in this process until the file answers, with one warning per outage."""
    path = tmp_path / "app.db.limits"
    path.mkdir()
    clock = Clock()
    store = FileStore(str(path), clock=clock, slots=64)
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


def _allowed_in(allowed: list[float], start: float, end: float) -> int:
    """How many of the (sorted) times fall in (start, end]."""
    return bisect.bisect_right(allowed, end) - bisect.bisect_right(allowed, start)


@pytest.mark.parametrize(
    ("limit", "hits", "spread"),
    [
        (3, 400, 40.0),  # the login's kind of limit: one entry per hit, the exact log
        (20, 2_000, 90.0),
        (63, 3_000, 120.0),  # the largest exact limit (RING - 1)
        (64, 3_000, 120.0),  # the smallest merged one
        (500, 20_000, 150.0),  # a NAT's: the hits of a quantum share an entry
        (10**9, 5_000, 30.0),  # a lifted limit: never refused
    ],
)
async def test_the_file_keeps_the_window_hit_by_hit(
    tmp_path: Path, limit: int, hits: int, spread: float
) -> None:
    """Random hits on one key, checked one by one against the rule: a hit let through never makes
    more than ``limit`` in any window (never looser than the exact log); a refused one finds
    ``limit`` let through within the window and one quantum more (stricter by at most a quantum,
    none under RING), and its wait ends no later than that. Every fifth request is a check that
    must give the same answer and record nothing."""
    clock = Clock()
    store = FileStore(str(tmp_path / "app.db.limits"), clock=clock, slots=64)
    window = 20.0
    quantum = window / (FileStore.RING - 2) if limit >= FileStore.RING else 0.0
    rnd = random.Random(limit)
    allowed: list[float] = []
    for t in sorted(rnd.uniform(0, spread) for _ in range(hits)):
        clock.now = t
        checked = await store.hit("verify:hall", limit, window, record=False)
        wait = await store.hit("verify:hall", limit, window)
        assert (checked == 0) == (wait == 0), t
        if wait == 0:
            allowed.append(t)
            assert _allowed_in(allowed, t - window, t) <= limit, t
        else:
            assert _allowed_in(allowed, t - window - quantum - 1e-9, t) >= limit, t
            assert 0 < wait <= window
            assert _allowed_in(allowed, t + wait - window + 1e-9, t) < limit, t  # free by then
    assert allowed  # the cases let some through and (but for the lifted limit) refuse some
    assert (len(allowed) == hits) == (limit == 10**9)
    await store.close()


def _fill(store: FileStore, keys: list[str], now: float) -> None:
    for key in keys:
        assert store._take(store._opened(), _digest(key), LIMIT, WINDOW, True, now) == 0


def _digest(key: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


async def test_a_full_table_drops_the_stalest_key_and_reuses_expired_ones(tmp_path: Path) -> None:
    """Eight slots, all in every key's probe range: a ninth live key takes the slot whose newest
    hit is the oldest, never the knocking attacker's; once keys expire, their slots are taken
    before any live one."""
    clock = Clock()
    store = FileStore(str(tmp_path / "app.db.limits"), clock=clock, slots=FileStore.PROBE)
    for _ in range(LIMIT):
        await store.hit("attacker", LIMIT, WINDOW)
    clock.now = 1.0
    await store.hit("quiet", LIMIT, WINDOW)
    clock.now = 2.0
    _fill(store, [f"live{i}" for i in range(6)], 2.0)  # the table is full, every key live
    clock.now = 3.0
    assert await store.hit("attacker", LIMIT, WINDOW) > 0  # still refused, now the latest
    await store.hit("newcomer", LIMIT, WINDOW)  # takes quiet's slot: its hit is the oldest
    assert await store.hit("attacker", LIMIT, WINDOW) > 0
    assert await store.hit("quiet", LIMIT, WINDOW) == 0  # forgotten: counted afresh
    clock.now = 62.5  # live0..5 (t=2) have expired; the attacker (t=0, refused at t=3) too
    await store.hit("late", LIMIT, WINDOW)
    assert await store.hit("newcomer", LIMIT, WINDOW) == 0  # kept: an expired slot was taken
    await store.close()


async def test_a_damaged_slot_or_a_foreign_file_starts_afresh(tmp_path: Path) -> None:
    """A worker killed inside its turn may leave a slot half written, and the file may be another
    layout's (the SQLite file earlier versions kept here): neither fails a request."""
    path = tmp_path / "app.db.limits"
    path.write_bytes(b"SQLite format 3\x00" + bytes(4096))
    clock = Clock()
    store = FileStore(str(path), clock=clock, slots=64)
    for _ in range(LIMIT):
        await store.hit("ip", LIMIT, WINDOW)
    assert await store.hit("ip", LIMIT, WINDOW) > 0
    assert path.stat().st_size == store._size
    table = store._opened()
    at = store._find(table, _digest("ip"), clock.now, create=False)
    FileStore._SLOT.pack_into(table, at, _digest("ip"), WINDOW, 7, FileStore.RING + 5, 2, 0.0)  # torn
    assert await store.hit("ip", LIMIT, WINDOW) == 0  # counted afresh
    assert await store.hit("ip", LIMIT, WINDOW) == 0
    assert await store.hit("ip", LIMIT, WINDOW) == 0
    assert await store.hit("ip", LIMIT, WINDOW) > 0
    clock.now = -3600.0  # the clock set back an hour: the hits dated ahead of it leave
    assert await store.hit("ip", LIMIT, WINDOW) == 0
    assert await store.hit("never hit", LIMIT, WINDOW, record=False) == 0
    assert store._find(table, _digest("never hit"), clock.now, create=False) == -1  # a check claims no slot
    await store.close()
    again = FileStore(str(path), clock=clock, slots=64)  # the file is kept as it is
    assert await again.hit("ip", LIMIT, WINDOW) == 0
    assert await again.hit("ip", LIMIT, WINDOW) == 0
    assert await again.hit("ip", LIMIT, WINDOW) > 0
    await again.close()
