"""A small in-process sliding-window rate limiter, keyed by bucket and client.

Per process: with N app processes a client gets at most N times the limit, which is still a hard
bound on enumeration speed. A shared store can replace it behind the same interface.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from app.lib.errors import TooManyRequests


@dataclass
class RateLimiter:
    limit: int
    window_seconds: float
    max_keys: int = 100_000
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def hit(self, key: str, *, now: float | None = None) -> None:
        """Record one request; raise TooManyRequests when the key is over its limit."""
        now = time.monotonic() if now is None else now
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            q = self._hits[key] = deque()
        cutoff = now - self.window_seconds
        while q and q[0] <= cutoff:
            q.popleft()
        if len(q) >= self.limit:
            retry = max(1, math.ceil(q[0] + self.window_seconds - now))
            raise TooManyRequests(f"请求过于频繁，请在{retry}秒后再试", retry_after=retry)
        q.append(now)

    def _evict(self, now: float) -> None:
        cutoff = now - self.window_seconds
        for k in [k for k, q in self._hits.items() if not q or q[-1] <= cutoff]:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:
            self._hits.clear()

    def reset(self) -> None:
        self._hits.clear()


def client_key(scope_client: tuple[str, int] | None) -> str:
    """The client address as the server sees it (X-Forwarded-For is not trusted: it is spoofable)."""
    return scope_client[0] if scope_client else "unknown"
