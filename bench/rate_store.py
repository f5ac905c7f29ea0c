"""What a rate-limit hit costs in each store a server on one machine uses: this process's memory
(one process) and the mapped file the workers of a server on SQLite share (``FileStore``).

    .venv/bin/python bench/rate_store.py [--rounds 3]     # interleaved rounds of 20,000 hits each

Each hit is the public lookup's: a limit of 60 a minute per client, clients cycling over 2,000
addresses (so most keys hold a few hits, as scans spread over many phones do), never refused
(the limit is raised to the hits per key). Prints µs per hit (wall and CPU), medians of the rounds,
and the load average. Nothing is reniced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lib.ratelimit import FileStore, MemoryStore, RateStore

HITS = 20_000
CLIENTS = 2_000


async def _round(store: RateStore) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(HITS):
        await store.hit(f"verify:198.51.{i % CLIENTS // 250}.{i % 250}", HITS, 60.0)
    return (time.perf_counter() - wall) / HITS * 1e6, (time.process_time() - cpu) / HITS * 1e6


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, RateStore] = {
            "memory (one process)": MemoryStore(),
            "mapped file (the workers of one server)": FileStore(os.path.join(tmp, "app.db.limits")),
        }
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
        print(f"load average (1 min) {os.getloadavg()[0]:.1f}; {rounds} rounds of {HITS:,} hits", flush=True)
        for _ in range(rounds):
            for name, store in stores.items():
                figures[name].append(await _round(store))
        for name, runs in figures.items():
            wall = statistics.median(w for w, _c in runs)
            cpu = statistics.median(c for _w, c in runs)
            print(f"{name:42s} {wall:7.1f} µs wall  {cpu:7.1f} µs CPU per hit")
        for store in stores.values():
            await store.close()
        print(f"load average (1 min) {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
