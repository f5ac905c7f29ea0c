"""What one rate-limit hit costs: in this process's memory, in Redis (redis-py's own parser), and in
Redis with hiredis when it is installed (it is not a dependency: this measures whether it helps).

Starts a private in-memory redis-server on a free loopback port (or uses --redis-url). Each round
runs every store once, in turn (interleaved), and the medians of the rounds are printed:
sequential hits (the latency a request pays) and hits from 64 concurrent tasks (a busy worker).

    .venv/bin/python bench/ratelimit_bench.py [--rounds 5] [--hits 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from app.lib.errors import TooManyRequests
from app.lib.ratelimit import MemoryStore, RateLimiter, RateStore, RedisStore

CONCURRENCY = 64


def _start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server), or pass --redis-url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _redis(url: str, parser: type) -> Callable[[], RateStore]:
    def make() -> RateStore:
        store = RedisStore(url, timeout=1.0)
        store._pool.connection_kwargs["parser_class"] = parser  # before any connection is made
        return store

    return make


async def _run(limiter: RateLimiter, hits: int, tasks: int) -> float:
    """Microseconds per hit: ``hits`` hits over ``tasks`` concurrent tasks, 500 client keys."""

    async def worker(offset: int) -> None:
        for i in range(offset, hits, tasks):
            with contextlib.suppress(TooManyRequests):
                await limiter.hit(f"198.51.{i % 500 // 250}.{i % 250}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return (time.perf_counter() - started) / hits * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()

    proc = None
    with tempfile.TemporaryDirectory() as workdir:
        url = args.redis_url
        if not url:
            proc, url = _start_redis(workdir)
        stores: dict[str, Callable[[], RateStore]] = {
            "memory": MemoryStore,
            "redis": _redis(url, _AsyncRESP3Parser),
        }
        if HIREDIS_AVAILABLE:
            stores["redis+hiredis"] = _redis(url, _AsyncHiredisParser)
        results: dict[tuple[str, int], list[float]] = {}
        try:
            for _ in range(args.rounds):
                for name, make in stores.items():
                    for tasks in (1, CONCURRENCY):
                        store = make()
                        # 20 a minute per client: most hits of a round are refusals, as in a flood.
                        limiter = RateLimiter("bench", limit=20, window_seconds=60, store=store)
                        await _run(limiter, 200, tasks)  # warm: connections, the script loaded
                        results.setdefault((name, tasks), []).append(await _run(limiter, args.hits, tasks))
                        await store.close()
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()

    print(f"load average {os.getloadavg()[0]:.1f} (1 min), {args.rounds} rounds of {args.hits} hits")
    base = {t: statistics.median(results[("memory", t)]) for t in (1, CONCURRENCY)}
    for (name, tasks), values in results.items():
        med = statistics.median(values)
        print(f"{name:14} {tasks:3} task(s): {med:8.1f} µs/hit median  ({med / base[tasks]:6.1f} × memory)")
    if HIREDIS_AVAILABLE:
        for tasks in (1, CONCURRENCY):
            pairs = zip(results[("redis+hiredis", tasks)], results[("redis", tasks)], strict=True)
            ratio = statistics.median(h / r for h, r in pairs)
            print(f"hiredis / redis-py's parser, {tasks:3} task(s): {ratio:.2f} (median of per-round ratios)")
    else:
        print("hiredis not installed: pip install hiredis to compare")


if __name__ == "__main__":
    asyncio.run(main())
