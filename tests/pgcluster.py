"""A throwaway PostgreSQL 15 primary with streaming replicas, in a temporary directory, for tests.

The same set-up as ``scripts/test.sh`` (Debian's binaries in ``/usr/lib/postgresql/15/bin``, trust
authentication on loopback, durability off), from Python: ``initdb`` for the primary,
``pg_basebackup -R`` for each replica (the backup plus ``standby.signal`` and ``primary_conninfo``:
a hot standby streaming from the primary). initdb refuses to run as root, so as root every command
runs as the ``postgres`` system user through ``runuser`` (scripts/test.sh creates that user).

    with PgCluster() as cluster:
        primary = cluster.start_primary()
        replica = cluster.add_replica()
        ...  # primary.url, replica.url: SQLAlchemy URLs (asyncpg)
        cluster.wait_caught_up(replica)
        primary.stop(mode="immediate")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PG_BIN = Path("/usr/lib/postgresql/15/bin")
"""The Debian package's binaries, never a wrapper on PATH (as scripts/test.sh)."""

CONF = """
# throwaway test cluster: local only, speed over durability
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = on
wal_level = replica
max_wal_senders = 5
hot_standby = on
wal_receiver_status_interval = 1s
"""
"""Appended to each node's postgresql.conf (a replica's copy comes from the primary; its own port
appended last wins). ``full_page_writes`` stays on: ``pg_basebackup`` needs it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    """Are the PostgreSQL 15 server binaries installed (scripts/test.sh installs them)?"""
    return all((PG_BIN / name).exists() for name in ("initdb", "pg_ctl", "pg_basebackup", "psql"))


@dataclass
class Node:
    """One PostgreSQL server of the cluster: its data directory, port and log."""

    cluster: PgCluster
    name: str
    port: int

    @property
    def data(self) -> Path:
        return self.cluster.root / self.name

    @property
    def log(self) -> Path:
        return self.cluster.root / f"{self.name}.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``postgres`` database (asyncpg)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.cluster.run(PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-s")
        self.wait_ready()

    def stop(self, *, mode: str = "fast") -> None:
        """``pg_ctl stop``: ``immediate`` is a crash (no shutdown checkpoint, clients cut off)."""
        self.cluster.run(PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-s")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = subprocess.run(  # noqa: S603 - fixed binary and arguments
                [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                check=False,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL {self.name} is not accepting connections:\n{self.log_text()}")

    @property
    def _psql(self) -> list[str | Path]:
        return [PG_BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]

    def sql(self, statement: str) -> str:
        """Run one statement with psql; its result, unaligned and without headers."""
        out = subprocess.run(  # noqa: S603 - fixed binary; statements are the tests' own
            [*self._psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"


class PgCluster:
    """A primary and its streaming replicas under one temporary directory, removed on ``close``."""

    def __init__(self) -> None:
        if not available():
            raise RuntimeError(
                f"no PostgreSQL 15 server binaries in {PG_BIN} (scripts/test.sh installs them)"
            )
        # Not pytest's tmp_path: as root, the postgres user cannot enter /tmp/pytest-of-root (0700).
        self.root = Path(tempfile.mkdtemp(prefix="app-pgcluster-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.nodes: list[Node] = []
        self.primary: Node | None = None

    def run(self, *cmd: str | Path) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        done = subprocess.run(  # noqa: S603 - fixed binaries and arguments
            [*prefix, *map(str, cmd)], cwd=self.root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def _append_conf(self, node: Node) -> None:
        conf = CONF.format(port=node.port, socket_dir=self.root)
        # The file belongs to postgres; root may still append to it.
        with (node.data / "postgresql.conf").open("a") as f:
            f.write(conf)

    def start_primary(self) -> Node:
        node = Node(self, "primary", free_port())
        self.run(
            PG_BIN / "initdb",
            f"--pgdata={node.data}",
            "--username=postgres",
            "--auth=trust",  # loopback only; pg_hba.conf also lets 127.0.0.1 replicate
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._append_conf(node)
        self.nodes.append(node)
        self.primary = node
        node.start()
        return node

    def add_replica(self, name: str = "replica") -> Node:
        """A hot standby streaming from the primary: ``pg_basebackup -R``, then started."""
        assert self.primary is not None, "start the primary first"
        node = Node(self, name, free_port())
        self.run(
            PG_BIN / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            node.data,
            "-R",  # standby.signal and primary_conninfo: start as a replica of this primary
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        self._append_conf(node)
        self.nodes.append(node)
        node.start()
        return node

    def wait_caught_up(self, replica: Node, timeout: float = 30) -> None:
        """Until ``replica`` has replayed everything the primary has written so far."""
        assert self.primary is not None
        # The insert position, not pg_current_wal_lsn() (the write position): with synchronous_commit
        # off a commit is in the WAL buffers before it is written, and would be missed.
        target = self.primary.sql("SELECT pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if replica.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t":
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{replica.name} did not replay up to {target} in {timeout} s:\n{replica.log_text()}"
        )

    def close(self) -> None:
        for node in reversed(self.nodes):
            if node.running():
                with contextlib.suppress(RuntimeError):  # already gone: the directory goes anyway
                    node.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
