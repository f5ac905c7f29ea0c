"""Rate limits: a sliding window of hits per bucket and client, counted in a store.

``RateLimiter`` holds one limit (its bucket, the hits allowed, the window, the refusal) and counts
in one of three stores:

- ``MemoryStore``: this process's memory, the default (the embedded single-process setup). With N
  processes a client gets up to N times the limit.
- ``FileStore``: a memory-mapped file shared by the workers of one ``app serve`` without Redis
  (beside the SQLite database, or the file it names on PostgreSQL): the limit holds whichever
  worker answers.
- ``RedisStore``: one Redis (``REDIS_URL``) shared by every worker and instance, so the limit holds
  whichever process answers. When Redis is down or slow the request is still served: the hit is
  counted in this process's memory instead, a warning is logged once per outage, and the shared
  count resumes by itself when Redis answers again.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import math
import mmap
import os
import secrets
import struct
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.lib.errors import TooManyRequests

log = logging.getLogger(__name__)


class RateStore(Protocol):
    async def hit(self, key: str, limit: int, window: float, record: bool = True) -> float:
        """Record a hit on ``key`` unless it already has ``limit`` hits in the last ``window``
        seconds: 0 when recorded, otherwise the seconds until its oldest hit leaves the window.
        ``record=False``: the same answer, nothing recorded (is ``key`` over its limit?)."""
        ...

    async def close(self) -> None: ...


@dataclass
class RateLimiter:
    bucket: str
    """The kind of request limited (``login``, ``verify``...): keys of two buckets never meet."""
    limit: int
    window_seconds: float
    store: RateStore | None = None
    """None: a ``MemoryStore`` of this limiter's own."""

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = MemoryStore()

    async def hit(self, key: str) -> None:
        """Record one request; raise TooManyRequests when the key is over its limit."""
        self._refuse(await self._store().hit(f"{self.bucket}:{key}", self.limit, self.window_seconds))

    async def check(self, key: str) -> None:
        """Raise TooManyRequests when the key is over its limit; record nothing (a limit that counts
        only some outcomes, such as failed logins, checks first and ``record``s the outcome)."""
        self._refuse(
            await self._store().hit(f"{self.bucket}:{key}", self.limit, self.window_seconds, record=False)
        )

    async def record(self, key: str) -> None:
        """Count one hit on the key (one already at its limit stays there); never refuses."""
        await self._store().hit(f"{self.bucket}:{key}", self.limit, self.window_seconds)

    def _store(self) -> RateStore:
        assert self.store is not None
        return self.store

    @staticmethod
    def _refuse(wait: float) -> None:
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TooManyRequests(f"请求过于频繁，请在{retry}秒后再试", retry_after=retry)


class MemoryStore:
    """Hits in this process's memory, for at most ``max_keys`` keys.

    When full, a new key first evicts the keys whose hits have all left their window (they count
    nothing), then the least recently used ones, down to 90 % (one scan per ``max_keys / 10`` new
    keys). A live counter is only dropped when ``max_keys`` newer keys are live at once, and a
    client that keeps knocking stays the most recently used: flooding the store with other keys
    never resets it.
    """

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._longest_window = 0.0

    def __len__(self) -> int:
        return len(self._hits)

    async def hit(self, key: str, limit: int, window: float, record: bool = True) -> float:
        return self.take(key, limit, window, record)

    def take(self, key: str, limit: int, window: float, record: bool = True) -> float:
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            self._longest_window = max(self._longest_window, window)
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
        cutoff = now - window
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) >= limit:
            return hits[0] + window - now
        if record:
            hits.append(now)
        return 0.0

    def _evict(self, now: float) -> None:
        # Expired under the longest window any key uses: never a key that still counts.
        cutoff = now - self._longest_window
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]
        while len(self._hits) >= self.max_keys * 0.9:
            self._hits.popitem(last=False)

    async def close(self) -> None:
        pass


# A sliding window log in a sorted set, in one script (Redis runs it atomically: no two processes
# can both read 59 and both add the 60th). The time is Redis's own, so the instances' clocks need
# not agree. Scores are microseconds; the reply is 0 (recorded, or under the limit when ARGV[4] is
# "0": a check that records nothing) or the microseconds to wait.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
if ARGV[4] == '0' then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return 0
"""


class SharedStore(ABC):
    """What a store shared by several processes does when it fails: the request is still served,
    its hit counted in this process's ``fallback``; one warning per outage; the store is tried
    again every ``retry_seconds`` and sharing resumes by itself when it answers. Subclasses name
    the store (``name``, for the log), the exceptions that mean it failed (``FAILURES``) and count
    a hit in it (``_shared_hit``)."""

    FAILURES: tuple[type[Exception], ...] = (Exception,)

    def __init__(self, name: str, *, retry_seconds: float, fallback: MemoryStore | None) -> None:
        self.name = name
        self.fallback = fallback if fallback is not None else MemoryStore()
        self.retry_seconds = retry_seconds
        self.down = False
        self._retry_at = 0.0

    async def hit(self, key: str, limit: int, window: float, record: bool = True) -> float:
        if self.down and time.monotonic() < self._retry_at:
            return self.fallback.take(key, limit, window, record)
        try:
            wait = await self._shared_hit(key, limit, window, record)
        except self.FAILURES as exc:
            self._failed(exc)
            return self.fallback.take(key, limit, window, record)
        if self.down:
            self.down = False
            log.warning("rate limits: %s is back; limits are shared again", self.name)
        return wait

    @abstractmethod
    async def _shared_hit(self, key: str, limit: int, window: float, record: bool) -> float:
        """Count the hit in the shared store (``RateStore.hit``); raise one of ``FAILURES`` when
        the store fails."""

    @abstractmethod
    async def ping(self) -> str:
        """``"ok"`` when the store answers, else ``"unreachable"`` (/health)."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of the store (its connections, its map)."""

    def _failed(self, exc: Exception) -> None:
        self._retry_at = time.monotonic() + self.retry_seconds
        if not self.down:
            self.down = True
            log.warning(
                "rate limits: %s is unavailable (%s: %s); counting in this process until it answers again",
                self.name,
                type(exc).__name__,
                exc,
            )


class RedisStore(SharedStore):
    """Hits in one Redis shared by every process, with this process's memory as the fallback.

    Redis answers a hit in well under a millisecond on a local network; one that has not answered
    (or accepted a connection) in ``timeout`` seconds counts as down. While down, hits are counted
    in ``fallback`` and Redis is tried again every ``retry_seconds`` (so an outage costs one timeout
    a second, not one per request). The URL's query overrides the timeouts (redis-py's
    ``?socket_timeout=0.25&socket_connect_timeout=0.25&timeout=0.25``, the last one the wait for a
    free connection): an event loop that runs late by more than the timeout, on a machine loaded
    far beyond its cores, also looks like an outage.
    """

    PREFIX = "zf:ratelimit:"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.1,
        retry_seconds: float = 1.0,
        max_connections: int = 64,
        fallback: MemoryStore | None = None,
    ) -> None:
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # waiting for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # no retry: the fallback answers at once instead
        )
        super().__init__("Redis (REDIS_URL)", retry_seconds=retry_seconds, fallback=fallback)
        self._redis = Redis(connection_pool=self._pool)
        self._script = self._redis.register_script(SLIDING_WINDOW)
        # Members of the sorted set must be unique across every process.
        self._process = secrets.token_hex(6)
        self._seq = itertools.count()

    # Any failure of the store counts as down: refused, timed out, out of memory...
    async def _shared_hit(self, key: str, limit: int, window: float, record: bool) -> float:
        wait = await self._script(
            keys=[self.PREFIX + key],
            args=[round(window * 1_000_000), limit, f"{self._process}:{next(self._seq)}", int(record)],
        )
        return int(wait) / 1_000_000

    async def ping(self) -> str:
        """``"ok"`` when Redis answers within the store's timeout, else ``"unreachable"`` (/health)."""
        try:
            await self._redis.ping()
        except Exception:  # any failure to reach the store is the answer itself
            return "unreachable"
        return "ok"

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


class FileStore(SharedStore):
    """Hits in a memory-mapped file shared by the worker processes of one server on one machine.

    The same sliding window log as the other stores, in a table of fixed size: ``slots`` slots of
    one key each (found by a 64-bit hash of the key, probing ``PROBE`` slots on), each a ring of
    ``RING`` entries (first hit, last hit, hits).

    - A limit under ``RING`` keeps one entry per hit: the exact log, as the other stores keep it.
    - A larger limit (a NAT's, a bench's lifted one) merges the hits of one quantum,
      ``window / (RING - 2)``, into one entry, which leaves the window with its last hit: stricter
      than the exact log by at most the quantum, never looser. The entries of a live key start at
      least a quantum apart, so the ring never overflows.

    A hit reads and writes its slot in place, under an exclusive ``flock`` on the file that the
    workers take in turn (3.4 µs alone, ``bench/rate_store.py``; the kernel hands it over at once and
    releases it when a process dies).

    - A worker killed inside its turn may leave a slot half written: each turn checks the slot it
      reads and starts a damaged one afresh (that key's count is lost, no request fails).
    - When the table is full, a new key takes the slot in its probe range seen the longest ago: a
      live key is only dropped when ``PROBE`` keys seen later are live around it, and a client
      that keeps knocking stays.
    - The file is reserved whole on disk when it is created (52 MB), so that a full disk fails the
      creation (the hits are then counted in this process's memory, ``SharedStore``), never a
      write into the map.
    - The time is the wall clock, which every process shares; entries dated ahead of it (a clock
      set back) leave at the key's next hit.
    """

    SLOTS = 32_768
    PROBE = 8
    RING = 64
    SPIN = 20
    MAGIC = b"zfrate01"
    FAILURES = (OSError, ValueError, struct.error)
    _FILE = struct.Struct("<8sII")  # magic, ring, slots
    _FILE_SIZE = 64
    # key hash (0: never used), window, oldest entry, entries, hits, last seen (refused or checked too)
    _SLOT = struct.Struct("<QdIIQd")
    _ENTRY = struct.Struct("<ddQ")  # first hit, last hit, hits

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        fallback: MemoryStore | None = None,
        slots: int = SLOTS,
    ) -> None:
        super().__init__(path, retry_seconds=1.0, fallback=fallback)
        self.path = path
        self.clock = clock
        self.slots = slots
        self._slot_size = self._SLOT.size + self.RING * self._ENTRY.size
        self._size = self._FILE_SIZE + slots * self._slot_size
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._digests: dict[str, int] = {}

    def _opened(self) -> mmap.mmap:
        if self._map is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    header = self._FILE.pack(self.MAGIC, self.RING, self.slots)
                    if os.fstat(fd).st_size != self._size or os.pread(fd, len(header), 0) != header:
                        # New, or another layout's: zeroed and reserved whole, the header last (a
                        # creation cut short is made again by the next process).
                        os.ftruncate(fd, 0)
                        os.posix_fallocate(fd, 0, self._size)
                        os.pwrite(fd, header, 0)
                    self._map = mmap.mmap(fd, self._size)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._map

    async def _shared_hit(self, key: str, limit: int, window: float, record: bool) -> float:
        table = self._opened()
        digest = self._digests.get(key)
        if digest is None:
            if len(self._digests) >= self.slots:
                self._digests.clear()
            digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
            self._digests[key] = digest
        self._lock()
        try:
            return self._take(table, digest, limit, window, record, self.clock())
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _lock(self) -> None:
        """Take the file's lock. The other worker holds it for a few µs at most, unless the kernel
        has paused it there: try again ``SPIN`` times before sleeping, since a sleep and its wake-up
        cost the loop more than the turn itself."""
        for _ in range(self.SPIN):
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                continue
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def _take(
        self, table: mmap.mmap, digest: int, limit: int, window: float, record: bool, now: float
    ) -> float:
        slot = self._SLOT
        at = self._FILE_SIZE + digest % self.slots * self._slot_size  # the key's first slot
        held, _window, oldest, n, hits, _seen = slot.unpack_from(table, at)
        if held != digest:
            at = self._find(table, digest, now, create=record)
            if at < 0:
                return 0.0  # a check on a key with no hits
            held, _window, oldest, n, hits, _seen = slot.unpack_from(table, at)
        ring, entry = self.RING, self._ENTRY
        size = entry.size
        entries = at + slot.size
        if oldest >= ring or n > ring or hits < n or (n == 0 and hits):
            oldest = n = hits = 0  # half written by a worker killed in its turn: start afresh
        cutoff = now - window
        while n:
            first, last, count = entry.unpack_from(table, entries + oldest * size)
            if last > cutoff and first <= now + 1.0:
                break
            hits -= count
            oldest = (oldest + 1) % ring
            n -= 1
        if n == 0:
            hits = 0
        wait = 0.0
        if hits >= limit:
            wait = entry.unpack_from(table, entries + oldest * size)[1] + window - now
        elif record:
            newest = entries + (oldest + n - 1) % ring * size
            first, last, count = entry.unpack_from(table, newest) if n else (0.0, 0.0, 0)
            if n and limit >= ring and (first > now - window / (ring - 2) or n == ring):
                entry.pack_into(table, newest, first, last if last > now else now, count + 1)
            else:
                entry.pack_into(table, entries + (oldest + n) % ring * size, now, now, 1)
                n += 1
            hits += 1
        slot.pack_into(table, at, digest, window, oldest, n, hits, now)
        return wait if wait > 0.0 else 0.0

    def _find(self, table: mmap.mmap, digest: int, now: float, *, create: bool) -> int:
        """The offset of the key's slot; for a new key (``create``), the first never used or expired
        slot in its probe range, else the live one seen the longest ago (a client that keeps
        knocking, refused, stays); else -1."""
        free = stalest = -1
        stalest_at = math.inf
        start = digest % self.slots
        for i in range(self.PROBE):
            at = self._FILE_SIZE + (start + i) % self.slots * self._slot_size
            held, window, oldest, n, _hits, seen = self._SLOT.unpack_from(table, at)
            if held == digest:
                return at
            if held == 0:  # slots are never emptied: the key is in none further on
                if free < 0:
                    free = at
                break
            if free >= 0:
                continue
            if oldest >= self.RING or not 0 < n <= self.RING:
                free = at
                continue
            newest = self._SLOT.size + at + (oldest + n - 1) % self.RING * self._ENTRY.size
            last = self._ENTRY.unpack_from(table, newest)[1]
            if last + window <= now:
                free = at
            elif seen < stalest_at:
                stalest, stalest_at = at, seen
        if not create:
            return -1
        at = free if free >= 0 else stalest
        self._SLOT.pack_into(table, at, digest, 0.0, 0, 0, 0, now)
        return at

    async def ping(self) -> str:
        """``"ok"`` when the file is mapped, else ``"unreachable"`` (/health)."""
        try:
            self._opened()
        except self.FAILURES:
            return "unreachable"
        return "ok"

    def _failed(self, exc: Exception) -> None:
        self._release()  # opened again at the next try
        super()._failed(exc)

    async def close(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def client_key(scope_client: tuple[str, int] | None) -> str:
    """The client address as the server sees it (X-Forwarded-For is not trusted: it is spoofable)."""
    return scope_client[0] if scope_client else "unknown"
