"""A/B of the public verification on SQLite: this tree's /v/<number> JSON against another tree's,
with the constant and raw-lookup floors, all interleaved round after round.

``bench/verify_bench.py`` gives the ratios of one version; this runs two versions of the service
side by side on the same database (the other one from a source tree of its own, e.g. main's
``git archive``), so that a change is measured against what it changes, under the same load:

    mkdir /tmp/main-src && git archive main | tar -x -C /tmp/main-src
    .venv/bin/python bench/verify_ab.py --database /tmp/bench.db --other /tmp/main-src

The database is an existing SQLite file (``app db upgrade`` and ``app demo-data`` already run).
Each app server gets its own path to it (a symbolic link: ``app.db.hold_sqlite_file`` lets one
server claim one path; SQLite resolves the link, so both read the same file and WAL). Kinds: (a)
constant, (b) raw lookup (``bench/verify_baseline.py``, this tree's), then each app's JSON; each
printed with its req/s and the server's CPU time per request; ratios to (a) are the median of the
rounds' own ratios. Same uvicorn settings as ``verify_bench.py`` (1 worker, the app as served).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_bench import PY, Figure, Meter, _port, _server, _wrk


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="a SQLite file with demo data")
    parser.add_argument("--other", required=True, help="the other version's source tree (holds app/)")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    database = Path(args.database).resolve()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-verify-ab-"))
        with sqlite3.connect(database) as c:
            numbers = [r[0] for r in c.execute("SELECT number FROM certificates")]
        random.Random(1).shuffle(numbers)
        numbers_file = Path(tmp) / "numbers.txt"
        numbers_file.write_text("\n".join(numbers[: args.sample]) + "\n")
        env = {
            **os.environ,
            "APP_ENV": "test",
            "APP_VAR_DIR": tmp,
            "SECRET_KEY": secrets.token_hex(24),
            "VERIFY_RATE_PER_MINUTE": "1000000000",
            "BENCH_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        }
        uv = ["-m", "uvicorn", "--host", "127.0.0.1", "--workers", "1",
              "--no-access-log", "--log-level", "warning", "--factory"]  # fmt: skip
        port = _port()
        base = f"http://127.0.0.1:{port}"
        base_pid = stack.enter_context(
            _server(
                [PY, *uv, "--port", str(port), "--app-dir", "bench", "verify_baseline:create"],
                env,
                f"{base}/const",
            )
        )
        kinds: list[tuple[str, str, str, Meter]] = [
            ("(a) constant", base, "/const?", Meter(base_pid, None)),
            ("(b) raw lookup", base, "/raw/", Meter(base_pid, None)),
        ]
        for label, source in (("this tree's JSON", None), ("other tree's JSON", args.other)):
            link = Path(tmp) / f"{len(kinds)}.db"
            link.symlink_to(database)
            port = _port()
            url = f"http://127.0.0.1:{port}"
            app_env = {**env, "APP_ENV": "development", "DATABASE_URL": f"sqlite+aiosqlite:///{link}"}
            app_dir = ["--app-dir", str(Path(source).resolve())] if source else []
            pid = stack.enter_context(
                _server(
                    [PY, *uv, "--port", str(port), *app_dir, "app.asgi:app_factory"], app_env, f"{url}/health"
                )
            )
            kinds.append((label, url, "/v/", Meter(pid, None)))
        runs: dict[str, list[Figure]] = {k[0]: [] for k in kinds}
        for r in range(args.rounds):
            for label, url, prefix, meter in kinds:
                f = _wrk(url, prefix, "application/json", numbers_file, args, label, meter)
                runs[label].append(f)
                print(
                    f"  round {r + 1}: {label:<20} {f.rps:>8,.0f} req/s  load {f.load:.2f}"
                    f"  CPU/request {1000 * f.server_cpu_ms:.0f} us",
                    flush=True,
                )
    const = runs["(a) constant"]
    print(f"  medians of {args.rounds} rounds; load now {os.getloadavg()[0]:.2f}")
    for label, figures in runs.items():
        cpu = statistics.median(f.server_cpu_ms for f in figures) * 1000
        line = f"  {label:<20} {statistics.median(f.rps for f in figures):>8,.0f} req/s  CPU/request {cpu:.0f} us"
        if figures is not const:
            ratios = [x.rps / y.rps for x, y in zip(figures, const, strict=True)]
            each = ", ".join(f"{x:.0%}" for x in ratios)
            line += f"  / constant {statistics.median(ratios):.0%} (rounds: {each})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
