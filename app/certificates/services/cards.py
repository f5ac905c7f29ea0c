"""Card files: the print-ready PDF and the PNG preview, rendered on demand off the event loop and
kept per card and QR token."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.certificates.models import (
    Certificate,
)
from app.certificates.selectors import certificate_get
from app.lib.errors import (
    DomainError,
    InsufficientStorage,
)
from app.lib.security import Principal
from app.lib.structs import project
from app.settings import CARDS_DIR

OUT_DIR = CARDS_DIR


def card_data(c: Certificate) -> Any:
    from app.certificates.card import CardData

    return project(CardData, c, name=c.holder_name, agency=c.agency_name, issuing_authority=c.authority_name)


def _render_file(card: Any, photo: bytes | None, qr_text: str, fmt: str, target: Path) -> Path:
    from app.certificates.card import render_card_pdf, render_card_png
    from app.certificates.qr import qr_png

    if target.exists():
        return target
    png = qr_png(qr_text)
    data = render_card_pdf(card, photo, png) if fmt == "pdf" else render_card_png(card, photo, png)
    _write_whole(target, data)
    return target


DISK_FULL = "服务器存储空间已满，证件文件暂时无法生成，请稍后再试；如持续出现，请联系系统管理员清理磁盘"


def _write_whole(target: Path, data: bytes) -> None:
    """``target`` holds all of ``data`` or does not exist: written to a private temporary file beside it,
    then renamed. A full disk (ENOSPC, or a quota) removes the partial file and says so in Chinese (507)."""
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(target)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(DISK_FULL) from exc
        raise


async def certificate_card_file(
    db: AsyncSession, principal: Principal, certificate_id: int, fmt: str, *, out_dir: Path | None = None
) -> tuple[Certificate, Path]:
    """The card as PDF or PNG, rendered on demand (off the event loop) and kept per version."""
    if fmt not in ("pdf", "png"):
        raise DomainError("格式须为 pdf 或 png", field="fmt")
    cert = await certificate_get(db, principal, certificate_id)
    return cert, await card_file_for(db, cert, fmt, out_dir=out_dir)


async def card_file_for(
    db: AsyncSession, cert: Certificate, fmt: str, *, out_dir: Path | None = None
) -> Path:
    from app.accounts.photos import read_photo

    officer = await db.get(Officer, cert.officer_id)
    photo = read_photo(officer.photo_path) if officer and officer.photo_path else None
    # The file name carries the token: a renewed card (new QR) never reuses an old file.
    target = (out_dir or OUT_DIR) / f"{cert.number}-{cert.token[:12]}.{fmt}"
    return await asyncio.to_thread(_render_file, card_data(cert), photo, cert.qr_text, fmt, target)
