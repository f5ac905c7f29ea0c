"""Fault: the disk fills up while a card is rendered.

The card files go to a real, tiny tmpfs filled to the last byte (``mount -t tmpfs -o size=…``; the
tests run as root under ``scripts/test.sh``). Where mounting is not permitted, the fixture says so
and injects ENOSPC at the writer instead (a write that stores half the bytes, then fails).

Either way: the download answers 507 with a Chinese problem, leaves neither the card nor a partial
temporary file behind, and works again once space is freed.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates.services import cards as svc
from tests.factories import World
from tests.integration.certificates.test_certificate_routes import _issue_via_api
from tests.integration.conftest import Client

FILLER = "filler.bin"


def _fill(disk: Path) -> None:
    """Write until the filesystem refuses: not one more byte fits."""
    with (disk / FILLER).open("wb", buffering=0) as f:  # unbuffered: nothing left to flush on close
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


class _HalfThenFull:
    """A file whose write stores half the bytes, then fails as a full disk does."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def write(self, data: bytes) -> int:
        self.raw.write(data[: len(data) // 2])
        self.raw.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self) -> _HalfThenFull:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    """(card directory on a full filesystem, a function that frees the space)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = (
            subprocess.run(  # noqa: S603 - fixed arguments
                ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(disk)],  # noqa: S607
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    except OSError:  # no mount command
        mounted = False
    monkeypatch.setattr(svc, "OUT_DIR", disk)
    try:
        if mounted:
            _fill(disk)

            def free() -> None:
                (disk / FILLER).unlink()

        else:
            print("mount not permitted: ENOSPC is injected at the card writer instead of a full tmpfs")
            real = os.fdopen
            monkeypatch.setattr(svc.os, "fdopen", lambda fd, mode: _HalfThenFull(real(fd, mode)))

            def free() -> None:
                monkeypatch.setattr(svc.os, "fdopen", real)

        yield disk, free
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)  # noqa: S603, S607


async def test_a_full_disk_gives_a_clear_507_and_leaves_no_partial_file(
    client: Client, db: AsyncSession, world: World, full_disk: tuple[Path, Any]
) -> None:
    disk, free = full_disk
    cert = await _issue_via_api(client, db, world)
    before = sorted(p.name for p in disk.iterdir())

    for fmt in ("pdf", "png"):
        r = await client.get(f"/api/certificates/{cert['id']}/card/{fmt}")
        assert r.status_code == 507, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["title"] == "存储空间不足"
        assert "存储空间已满" in problem["detail"]
    assert sorted(p.name for p in disk.iterdir()) == before  # no card, no half-written temporary file

    # The certificate itself is untouched, and its page still opens.
    r = await client.get(f"/certificates/{cert['id']}", headers={"accept": "text/html"})
    assert r.status_code == 200 and cert["number"] in r.text

    # Space freed: the same request renders the card.
    free()
    r = await client.get(f"/api/certificates/{cert['id']}/card/pdf")
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    files = [p for p in disk.iterdir() if p.name != FILLER]
    assert [p.suffix for p in files] == [".pdf"] and files[0].read_bytes() == r.content
