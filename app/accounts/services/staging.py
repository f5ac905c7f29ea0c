"""The uploaded import file, carried on the server from the preview to the commit.

Staged under ``VAR_DIR/uploads``, named by its SHA-256: the browser only sends the hash back, never
the data. Files never confirmed are dropped after a day.
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

from app import settings as app_settings
from app.lib.security import Principal

STAGE_TTL_SECONDS = 24 * 3600


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _stage_dir(principal: Principal) -> Path:
    # Read at call time so that tests (and operators) can point VAR_DIR elsewhere.
    return Path(app_settings.VAR_DIR) / "uploads" / "officer-import" / str(principal.account_id)


def _stage_write(directory: Path, sha256: str, data: bytes, filename: str) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _stage_purge(directory.parent)
    target = directory / sha256
    tmp = directory / f".{sha256}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    (directory / f"{sha256}.json").write_text(json.dumps({"filename": filename}, ensure_ascii=False))


def _stage_purge(base: Path) -> None:
    """Drop files staged more than a day ago, whoever staged them (previews never confirmed)."""
    cutoff = time.time() - STAGE_TTL_SECONDS
    for old in base.glob("*/*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


def _stage_read(directory: Path, sha256: str) -> tuple[bytes, str] | None:
    target = directory / sha256
    try:
        data = target.read_bytes()
        meta = json.loads((directory / f"{sha256}.json").read_text())
    except (OSError, ValueError):
        return None
    # The name is the content's hash: a file changed on disk is treated as gone.
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    return data, str(meta.get("filename") or "未命名文件")


def _stage_remove(directory: Path, sha256: str) -> None:
    for path in (directory / sha256, directory / f"{sha256}.json"):
        with contextlib.suppress(OSError):
            path.unlink()


def is_sha256(value: str) -> bool:
    """Whether ``value`` can name a staged file (64 lowercase hex digits, nothing else)."""
    return bool(_SHA256.match(value))


async def stage_upload(principal: Principal, sha256: str, data: bytes, filename: str) -> None:
    await asyncio.to_thread(_stage_write, _stage_dir(principal), sha256, data, filename)


async def staged_upload(principal: Principal, sha256: str) -> tuple[bytes, str] | None:
    if not is_sha256(sha256):
        return None
    return await asyncio.to_thread(_stage_read, _stage_dir(principal), sha256)


async def unstage_upload(principal: Principal, sha256: str) -> None:
    if is_sha256(sha256):
        await asyncio.to_thread(_stage_remove, _stage_dir(principal), sha256)
