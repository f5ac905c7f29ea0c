"""A checked sheet kept on disk between its preview and the administrator's "import" click.

One folder per account under ``VAR_DIR/uploads/training-import``; files are named by their SHA-256
(what the preview page sends back) and expire after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from app import settings as app_settings
from app.lib.security import Principal

STAGE_TTL_SECONDS = 24 * 3600
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _stage_dir(principal: Principal) -> Path:
    return Path(app_settings.VAR_DIR) / "uploads" / "training-import" / str(principal.account_id)


def _stage_write(directory: Path, sha256: str, data: bytes, meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cutoff = time.time() - STAGE_TTL_SECONDS
    for old in directory.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    tmp = directory / f".{sha256}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / sha256)
    (directory / f"{sha256}.json").write_text(json.dumps(meta, ensure_ascii=False))


def _stage_read(directory: Path, sha256: str) -> tuple[bytes, dict[str, Any]] | None:
    try:
        data = (directory / sha256).read_bytes()
        meta = json.loads((directory / f"{sha256}.json").read_text())
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != sha256 or not isinstance(meta, dict):
        return None
    return data, meta


def _stage_remove(directory: Path, sha256: str) -> None:
    for path in (directory / sha256, directory / f"{sha256}.json"):
        with contextlib.suppress(OSError):
            path.unlink()


async def stage_upload(principal: Principal, sha256: str, data: bytes, meta: dict[str, Any]) -> None:
    await asyncio.to_thread(_stage_write, _stage_dir(principal), sha256, data, meta)


async def staged_upload(principal: Principal, sha256: str) -> tuple[bytes, dict[str, Any]] | None:
    if not _SHA256.match(sha256):
        return None
    return await asyncio.to_thread(_stage_read, _stage_dir(principal), sha256)


async def unstage_upload(principal: Principal, sha256: str) -> None:
    if _SHA256.match(sha256):
        await asyncio.to_thread(_stage_remove, _stage_dir(principal), sha256)


__all__ = ["STAGE_TTL_SECONDS", "stage_upload", "staged_upload", "unstage_upload"]
