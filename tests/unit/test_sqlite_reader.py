"""The public lookup's SQLite reader (app.db.open_sqlite_reader): read-only, memory-mapped, and
never behind a commit.

The verify page shows a card's live status, so whatever a writer has committed (a revocation, a
suspension) must be what the very next lookup reads: with memory-mapped reads, while a writer holds
its transaction open, after a checkpoint, and once the file has grown past what was mapped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db import open_sqlite_reader

LOOKUP = "SELECT status FROM certificates WHERE number = ?"


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    """A WAL database as the app keeps it (a writer of its own), and the reader on it."""
    path = tmp_path / "app.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(
        "CREATE TABLE certificates (id INTEGER PRIMARY KEY, number TEXT UNIQUE, status TEXT, pad TEXT)"
    )
    writer.execute("INSERT INTO certificates (number, status, pad) VALUES ('A-1', 'valid', '')")
    reader = open_sqlite_reader(f"sqlite+aiosqlite:///{path}")
    yield writer, reader
    reader.close()
    writer.close()


def _status(reader: sqlite3.Connection, number: str = "A-1") -> str | None:
    row = reader.execute(LOOKUP, (number,)).fetchone()
    return None if row is None else str(row[0])


def test_the_reader_cannot_write(files: tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
    _, reader = files
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("UPDATE certificates SET status = 'revoked'")
    assert _status(reader) == "valid"


def test_the_reader_maps_the_file(files: tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
    _, reader = files
    assert reader.execute("PRAGMA mmap_size").fetchone()[0] > 0


@pytest.mark.parametrize("checkpoint", ["", "PASSIVE", "TRUNCATE"])
def test_each_commit_is_read_by_the_next_lookup(
    files: tuple[sqlite3.Connection, sqlite3.Connection], checkpoint: str
) -> None:
    """A revocation is seen at once: from the WAL before a checkpoint, from the mapped file after."""
    writer, reader = files
    assert _status(reader) == "valid"
    writer.execute("UPDATE certificates SET status = 'revoked' WHERE number = 'A-1'")
    if checkpoint:
        writer.execute(f"PRAGMA wal_checkpoint({checkpoint})")
    assert _status(reader) == "revoked"


def test_a_writer_holding_its_transaction_neither_blocks_nor_shows(
    files: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    writer, reader = files
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE certificates SET status = 'suspended' WHERE number = 'A-1'")
    assert _status(reader) == "valid"  # at once (no busy wait), the last committed state
    writer.execute("COMMIT")
    assert _status(reader) == "suspended"


def test_a_lookup_holds_no_snapshot(files: tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
    """A snapshot left open would keep showing the old status and stop checkpoints from finishing:
    right after a lookup, a TRUNCATE checkpoint completes (its first column is 0: not busy)."""
    writer, reader = files
    writer.execute("UPDATE certificates SET status = 'lost' WHERE number = 'A-1'")
    assert _status(reader) == "lost"
    assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone() == (0, 0, 0)


def test_rows_beyond_the_first_mapping_are_read(files: tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
    """The file grows after the reader mapped it (thousands of cards issued, then checkpointed)."""
    writer, reader = files
    assert _status(reader, "B-2999") is None
    pages_before = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute("BEGIN")
    writer.executemany(
        "INSERT INTO certificates (number, status, pad) VALUES (?, 'valid', ?)",
        ((f"B-{i}", "x" * 500) for i in range(3000)),
    )
    writer.execute("COMMIT")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert writer.execute("PRAGMA page_count").fetchone()[0] > pages_before + 300
    assert _status(reader, "B-2999") == "valid"
    writer.execute("UPDATE certificates SET status = 'cancelled' WHERE number = 'B-2999'")
    assert _status(reader, "B-2999") == "cancelled"
