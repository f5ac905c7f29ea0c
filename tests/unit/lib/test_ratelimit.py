"""The rate limiter over its in-process store: the window, the refusal, and an eviction that never
resets a live counter (table-driven). The shared store: tests/integration/test_ratelimit_shared.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from app.lib.errors import TooManyRequests
from app.lib.ratelimit import MemoryStore, RateLimiter

WINDOW = 60.0
LIMIT = 3
MAX_KEYS = 100_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_window_and_refusal() -> None:
    clock = Clock()
    rl = RateLimiter("login", limit=3, window_seconds=10, store=MemoryStore(clock=clock))
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


async def test_a_check_records_nothing_and_record_never_refuses() -> None:
    """The login's limit on failures: ``check`` before the password check, ``record`` a failure."""
    clock = Clock()
    rl = RateLimiter("login", limit=2, window_seconds=10, store=MemoryStore(clock=clock))
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


async def test_buckets_do_not_share_counts() -> None:
    store = MemoryStore()
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
