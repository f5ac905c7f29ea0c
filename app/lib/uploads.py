"""Uploaded files: the one reader for multipart fields.

Litestar refuses a body over ``request_max_body_size`` (``MAX_UPLOAD_BYTES``) with
``RequestEntityTooLarge`` before any handler runs; ``app.lib.errors.exception_handler`` turns it into
the one 413 answer, naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, NamedTuple

from litestar.datastructures import UploadFile

from app.lib.errors import DomainError, size_text


@dataclass
class FileUpload:
    """multipart/form-data with the file in the field ``file`` (the OpenAPI shape of an import)."""

    file: UploadFile


class Upload(NamedTuple):
    data: bytes
    filename: str
    """The client's file name, reduced to its last path part, control characters dropped."""


def clean_filename(filename: str | None, *, default: str = "未命名文件") -> str:
    name = PurePath((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name[:200] or default


async def read_upload(value: Any) -> Upload | None:
    """The file in a multipart field, or ``None`` when the field holds no file (or an empty one
    without a name, which is what a browser sends for an untouched file input)."""
    if not isinstance(value, UploadFile):
        return None
    data = await value.read()
    if not data and not value.filename:
        return None
    return Upload(data, clean_filename(value.filename))


async def require_upload(value: Any, *, field: str = "file", message: str = "请选择要上传的文件") -> Upload:
    """``read_upload``, with a 400 naming the field when no file was sent."""
    upload = await read_upload(value)
    if upload is None:
        raise DomainError(message, field=field)
    return upload


async def read_uploads(value: Any) -> list[Upload]:
    """Every file of a field that may carry several (``<input type=file multiple>``)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        upload = await read_upload(item)
        if upload is not None:
            out.append(upload)
    return out


__all__ = [
    "FileUpload",
    "Upload",
    "clean_filename",
    "read_upload",
    "read_uploads",
    "require_upload",
    "size_text",
]
