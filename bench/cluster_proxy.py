"""The load balancer's share: CPU per request of HAProxy (TLS, forwarding) beside the instances'.

Against a running `scripts/cluster.sh` cluster: wrk over HTTPS through HAProxy (keep-alive
connections, as browsers and the exam page hold them), `--rounds` runs of `--duration` seconds;
for each, the CPU time per request of the HAProxy process and of every instance (supervisor and
workers), read from /proc before and after. The path is `/health` by default (one `SELECT 1` on the
primary), so the proxy's share is measured against about the cheapest request an instance serves.

    bash scripts/cluster.sh start --dir /tmp/cl
    .venv/bin/python bench/cluster_proxy.py --dir /tmp/cl          # needs wrk (apt-get install wrk)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _settings(directory: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (directory / "cluster.env").read_text().splitlines()
        if line and not line.startswith("#")
    )


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _TICK


def _tree(root: int) -> set[int]:
    """``root`` and its children (an instance: uvicorn's supervisor and its workers)."""
    out = {root}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if int(_stat(int(entry))[1]) == root:
                    out.add(int(entry))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path("var/cluster"))
    parser.add_argument("--path", default="/health")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = _settings(args.dir)
    run = args.dir / "run"
    haproxy = int((run / "haproxy.pid").read_text().split()[0])
    instances = {p.stem: int(p.read_text().split()[0]) for p in sorted(run.glob("app*.pid"))}
    url = settings["CLUSTER_URL"] + args.path
    print(f"{url}: wrk -c {args.connections} -d {args.duration}s, {os.cpu_count()} CPUs", flush=True)
    proxy_ms, app_ms = [], []
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        groups = {name: _tree(pid) for name, pid in instances.items()}
        before = _cpu({haproxy}), {name: _cpu(p) for name, p in groups.items()}
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.duration}s", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        after = _cpu({haproxy}), {name: _cpu(p) for name, p in groups.items()}
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        proxy_ms.append(1000 * (after[0] - before[0]) / requests)
        per = {name: 1000 * (after[1][name] - before[1][name]) / requests for name in groups}
        app_ms.append(sum(per.values()))
        spread = ", ".join(f"{name} {ms:.3f}" for name, ms in per.items())
        print(
            f"  round {r + 1}: {rps:8,.0f} req/s, load {load:.2f}, CPU ms/request: haproxy {proxy_ms[-1]:.3f}, "
            f"instances {app_ms[-1]:.3f} ({spread}){f', {bad.group(1)} non-2xx' if bad else ''}",
            flush=True,
        )
    print(
        f"  median: haproxy {statistics.median(proxy_ms):.3f} ms, instances {statistics.median(app_ms):.3f} ms "
        "of CPU per request",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
