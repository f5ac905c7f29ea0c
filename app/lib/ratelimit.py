"""Rate limits: a sliding window of hits per bucket and client, counted in a store.

``RateLimiter`` holds one limit (its bucket, the hits allowed, the window, the refusal) and counts
in one of two stores:

- ``MemoryStore``: this process's memory, the default (the embedded single-process setup). With N
  processes a client gets up to N times the limit.
- ``SqliteStore``: a SQLite file beside the database, shared by the workers of one server on
  SQLite (``app serve`` with several processes): the limit holds whichever worker answers.
- ``RedisStore``: one Redis (``REDIS_URL``) shared by every worker and instance, so the limit holds
  whichever process answers. When Redis is down or slow the request is still served: the hit is
  counted in this process's memory instead, a warning is logged once per outage, and the shared
  count resumes by itself when Redis answers again.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import math
import os
import secrets
import sqlite3
import time
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


class SharedStore:
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

    async def _shared_hit(self, key: str, limit: int, window: float, record: bool) -> float:
        raise NotImplementedError

    async def ping(self) -> str:
        """``"ok"`` when the store answers, else ``"unreachable"`` (/health)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

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


class SqliteStore(SharedStore):
    """Hits in a SQLite file shared by the worker processes of one server on one machine.

    The same sliding window log as the other stores, one row per hit, and per key the count and
    the newest hit's time. Each hit is one short transaction (~35 µs, ``bench/rate_store.py``) run
    on the event loop's thread: a hop to a thread would cost more than the statements. The workers
    take turns on an exclusive ``flock`` around each transaction, so that one never meets another
    inside SQLite's lock (whose busy handler sleeps a millisecond or more); the kernel hands the
    lock over at once. ``synchronous=OFF``: a crash of the machine may forget the last hits, which
    a limit can afford. A key's expired hits go at its next hit; keys whose newest hit has left the
    longest window in use go every ``PURGE_EVERY`` hits. When the file fails (a full disk, a broken
    file), hits are counted in this process's memory (``SharedStore``).
    """

    PURGE_EVERY = 1_000
    FAILURES = (sqlite3.Error, OSError)

    def __init__(
        self, path: str, *, clock: Callable[[], float] = time.time, fallback: MemoryStore | None = None
    ) -> None:
        super().__init__(path, retry_seconds=1.0, fallback=fallback)
        self.path = path
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock_fd = -1
        self._longest_window = 0.0
        self._until_purge = self.PURGE_EVERY

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS hits_key_at ON hits (key, at)")
            # Per key: its hits in the table and the newest one's time, so that a hit never counts
            # the key's rows (a generous limit, such as a NAT's, would make that grow with the rows).
            conn.execute(
                "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, n INTEGER NOT NULL, last REAL NOT NULL)"
                " WITHOUT ROWID"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS keys_last ON keys (last)")
        except BaseException:
            conn.close()
            raise
        try:
            self._lock_fd = os.open(self.path + ".turn", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            conn.close()
            raise
        return conn

    def _opened(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    async def _shared_hit(self, key: str, limit: int, window: float, record: bool) -> float:
        conn = self._opened()
        now = self.clock()
        self._longest_window = max(self._longest_window, window)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                expired = conn.execute(
                    "DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - window)
                ).rowcount
                row = conn.execute("SELECT n FROM keys WHERE key = ?", (key,)).fetchone()
                count = max(0, (row[0] if row else 0) - expired)
                wait = 0.0
                if count >= limit:
                    (oldest,) = conn.execute("SELECT min(at) FROM hits WHERE key = ?", (key,)).fetchone()
                    wait = oldest + window - now
                elif record:
                    conn.execute("INSERT INTO hits (key, at) VALUES (?, ?)", (key, now))
                    count += 1
                if row is None or expired or (record and not wait):
                    conn.execute(
                        "INSERT INTO keys (key, n, last) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                        " SET n = excluded.n, last = max(last, excluded.last)",
                        (key, count, now if record and not wait else 0.0),
                    )
                self._until_purge -= 1
                if self._until_purge <= 0:
                    self._until_purge = self.PURGE_EVERY
                    # Keys whose newest hit has left the longest window hold only expired hits.
                    cutoff = (now - self._longest_window,)
                    conn.execute(
                        "DELETE FROM hits WHERE key IN (SELECT key FROM keys WHERE last <= ?)", cutoff
                    )
                    conn.execute("DELETE FROM keys WHERE last <= ?", cutoff)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return max(wait, 0.0)

    async def ping(self) -> str:
        """``"ok"`` when the file answers, else ``"unreachable"`` (/health)."""
        try:
            self._opened().execute("SELECT 1").fetchone()
        except (sqlite3.Error, OSError):
            return "unreachable"
        return "ok"

    def _failed(self, exc: Exception) -> None:
        self._release()  # opened again at the next try
        super()._failed(exc)

    async def close(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def client_key(scope_client: tuple[str, int] | None) -> str:
    """The client address as the server sees it (X-Forwarded-For is not trusted: it is spoofable)."""
    return scope_client[0] if scope_client else "unknown"
