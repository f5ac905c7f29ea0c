"""Uploaded files: the one reader for multipart fields, and what the import pages and API of the
domains (officers, attendance sheets) share: the preview page, the report's answer, their messages.

Litestar refuses a body over ``request_max_body_size`` (``MAX_UPLOAD_BYTES``) with
``RequestEntityTooLarge`` before any handler runs; ``app.lib.errors.exception_handler`` turns it into
the one 413 answer, naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, NamedTuple, Protocol

from litestar import Request, Response
from litestar.datastructures import UploadFile
from litestar.response import Template

from app.lib.errors import DomainError, size_text
from app.lib.web import Req, render

NO_SHEET = "请选择要上传的文件（CSV 或 Excel .xlsx）"
"""The answer to an import page's upload sent without its file."""
STAGED_GONE = "待导入的文件已失效或不存在（超过24小时或已处理），请重新上传"
"""The answer to a confirmation whose checked file is no longer staged (nor imported)."""
HTML_ERROR_LIMIT = 5000
"""The bad rows a preview page lists at the most (the JSON report lists them all)."""


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


class Preview(Protocol):
    """What the import previews of the domains have in common (a msgspec struct each)."""

    __struct_fields__: ClassVar[tuple[str, ...]]
    errors: Any

    @property
    def ok(self) -> bool: ...


def confirmed_sha256(form: dict[str, Any]) -> str:
    """The checked file a confirmation names: the SHA-256 the preview page put in its form."""
    return str(form.get("sha256", "")).strip().lower()


def upload_page(
    template: str, request: Req, *, status: int = 200, error: str = "", **context: Any
) -> Template:
    """An import's upload page: the size limit (``max_size``) and the refusal of the last upload."""
    max_size = size_text(request.app.state.settings.max_upload_bytes)
    return render(template, request, status_code=status, max_size=max_size, error=error, **context)


def preview_page(template: str, request: Req, preview: Preview, **context: Any) -> Template:
    """The checked file: 200 with the rows to confirm, or 422 listing the first ``HTML_ERROR_LIMIT``
    bad rows (``hidden_errors``: how many more)."""
    return render(
        template,
        request,
        status_code=200 if preview.ok else 422,
        preview=preview,
        errors=preview.errors[:HTML_ERROR_LIMIT],
        hidden_errors=max(0, len(preview.errors) - HTML_ERROR_LIMIT),
        **context,
    )


def import_report(report: type[Any], preview: Preview, **outcome: Any) -> Response[Any]:
    """The JSON answer to an import: the ``preview``'s fields and the ``outcome`` (dry run, rows
    imported...) as a ``report``; 200, or 422 when any row is bad."""
    body = report(**{k: getattr(preview, k) for k in preview.__struct_fields__}, **outcome)
    return Response(body, status_code=200 if preview.ok else 422)


_YES = frozenset({"true", "1", "yes", "on"})
_NO = frozenset({"false", "0", "no", "off"})


async def dry_run_of(request: Request[Any, Any, Any], query: bool | None) -> bool:
    """Whether an import only checks (``dry_run``), from the query string or the form, never ignored;
    neither given: a check (the safe default). See :func:`flag_of`."""
    return await flag_of(request, "dry_run", query, default=True)


async def flag_of(request: Request[Any, Any, Any], name: str, query: bool | None, *, default: bool) -> bool:
    """A yes/no option of an upload, from the query string or the form, never silently ignored.

    A client may send it as a query parameter (as documented) or as a field of the multipart form
    beside the file (an HTML checkbox sends ``on``). Either is honoured; both given and different,
    or a form value that is not a yes/no, is refused with a 400 naming the field — a
    ``dry_run=false`` sent in the form must not quietly run as a check. Neither given: ``default``.
    """
    form = await request.form()
    raw = form.get(name)
    if raw is None or isinstance(raw, UploadFile):
        return default if query is None else query
    text = str(raw).strip().lower()
    if text not in _YES | _NO:
        raise DomainError(f"{name} 只能是 true 或 false", field=name)
    given = text in _YES
    if query is not None and query != given:
        raise DomainError(f"查询参数与表单字段中的 {name} 不一致，请只保留一个", field=name)
    return given


__all__ = [
    "HTML_ERROR_LIMIT",
    "NO_SHEET",
    "STAGED_GONE",
    "FileUpload",
    "Upload",
    "clean_filename",
    "confirmed_sha256",
    "dry_run_of",
    "flag_of",
    "import_report",
    "preview_page",
    "read_upload",
    "read_uploads",
    "require_upload",
    "size_text",
    "upload_page",
]
