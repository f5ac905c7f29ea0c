"""Domain errors and the handlers that turn every failure into a clear answer, never a bare 500.

JSON callers get RFC 9457 problem details (``application/problem+json``) naming the offending field;
browsers get a Chinese error page. Forms catch ``DomainError`` themselves to re-render with the
message beside the field.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("app.errors")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """A request the rules refuse. ``errors`` name the fields; ``message`` sums it up in Chinese."""

    status_code = 400
    title = "请求无效"

    def __init__(self, message: str, *, field: str | None = None, errors: list[FieldError] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if field is not None:
            self.errors.insert(0, FieldError(field, message))

    def field_messages(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.errors:
            out.setdefault(e.field, e.message)
        return out

    def form_errors(self, fields: tuple[str, ...] | None = None) -> dict[str, str]:
        """Messages beside a form's ``fields`` (any field when not named); anything else (a conflict,
        a missing record) on top."""
        messages = {k: v for k, v in self.field_messages().items() if fields is None or k in fields}
        return messages or {"form": self.message}


class NotFound(DomainError):
    status_code = 404
    title = "未找到"


class Forbidden(DomainError):
    status_code = 403
    title = "无权操作"


class Conflict(DomainError):
    status_code = 409
    title = "数据冲突"


class InsufficientStorage(DomainError):
    """The server's disk is full (ENOSPC): nothing was written; the request can be repeated later."""

    status_code = 507
    title = "存储空间不足"


class StaleForm(Conflict):
    title = "数据已被他人修改"


class TooManyRequests(DomainError):
    status_code = 429
    title = "请求过于频繁"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Problem:
    status: int
    title: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def wants_html(request: Request[Any, Any, Any]) -> bool:
    if request.url.path.startswith("/api/") or request.url.path.startswith("/schema"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


_MSGSPEC_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A value of the right type outside its bounds first: "Expected `int` >= 0" also starts with
    # "Expected `int`", and a choice of 9 was told "应为整数" (it is one).
    (re.compile(r"Expected `\w+` of length <= (\d+)"), "长度不能超过 {0}"),
    (re.compile(r"Expected `\w+` of length >= (\d+)"), "长度不能少于 {0}"),
    (re.compile(r"Expected `\w+` >= (-?[\d.]+)"), "不能小于 {0}"),
    (re.compile(r"Expected `\w+` <= (-?[\d.]+)"), "不能大于 {0}"),
    (re.compile(r"Expected `\w+` > (-?[\d.]+)"), "必须大于 {0}"),
    (re.compile(r"Expected `\w+` < (-?[\d.]+)"), "必须小于 {0}"),
    (re.compile(r"Expected `\w+` that's a multiple of (-?[\d.]+)"), "应为 {0} 的倍数"),
    (re.compile(r"Expected `\w+` matching regex"), "格式不正确"),
    (re.compile(r"Expected `int`"), "应为整数"),
    (re.compile(r"Expected `float`"), "应为数字"),
    (re.compile(r"Expected `bool`"), "应为布尔值 true 或 false"),
    (re.compile(r"Expected `str`"), "应为文本"),
    (re.compile(r"Expected `date`|Invalid RFC3339 encoded date\b"), "应为日期（YYYY-MM-DD）"),
    (
        re.compile(r"Expected `datetime`|Invalid RFC3339 encoded datetime"),
        "应为时间（如 2026-01-01T08:00:00+08:00）",
    ),
    (re.compile(r"Expected `array`"), "应为数组"),
    (re.compile(r"Expected `object`"), "应为对象"),
    (re.compile(r"Invalid enum value"), "取值不在允许范围内"),
    (re.compile(r"Object missing required field `([^`]+)`"), "缺少必填字段 {0}"),
    (re.compile(r"Object contains unknown field `([^`]+)`"), "不支持的字段 {0}"),
    (re.compile(r"JSON is malformed|malformed|Input data was truncated", re.I), "请求体不是有效的 JSON"),
]


def _translated(message: str) -> str | None:
    """msgspec's ``message`` in Chinese, or None when it is none of the known ones."""
    for pattern, zh in _MSGSPEC_PATTERNS:
        m = pattern.search(message)
        if m:
            return zh.format(*m.groups())
    return None


def translate_validation(message: str) -> str:
    return _translated(message) or "取值无效"


def _field_from(message: str, key: str | None) -> str:
    m = re.search(r"at `\$\.([^`]+)`", message)
    if m:
        return m.group(1)
    m = re.search(r"(?:required|unknown) field `([^`]+)`", message)
    if m:
        return m.group(1)
    return key or "body"


def problem_for(exc: Exception) -> Problem:
    if isinstance(exc, TooManyRequests):
        return Problem(429, exc.title, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, DomainError):
        return Problem(exc.status_code, exc.title, exc.message, exc.errors)
    if isinstance(exc, ValidationException):
        errors: list[FieldError] = []
        for item in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(item, dict):
                msg = str(item.get("message", ""))
                errors.append(FieldError(_field_from(msg, item.get("key")), translate_validation(msg)))
        if not errors:
            errors.append(FieldError(_field_from(exc.detail, None), translate_validation(exc.detail)))
        detail = "；".join(f"{e.field}: {e.message}" for e in errors)
        return Problem(400, "请求参数有误", detail, errors)
    if isinstance(exc, NotAuthorizedException):
        return Problem(401, "未登录", "请先登录")
    if isinstance(exc, PermissionDeniedException) and "CSRF" in (exc.detail or ""):
        return Problem(403, "安全校验失败", "安全校验失败（页面已过期或来源不明），请刷新页面后重试")
    if isinstance(exc, PermissionDeniedException):
        return Problem(403, "无权访问", exc.detail if _is_chinese(exc.detail) else "您无权访问该页面或数据")
    if isinstance(exc, NotFoundException):
        return Problem(404, "未找到", "您访问的页面或数据不存在")
    if isinstance(exc, HTTPException):
        if _is_chinese(exc.detail):
            detail = exc.detail
        else:  # a 400 with msgspec's message (a body cut short: not valid JSON) says which
            known = _translated(exc.detail) if exc.status_code == 400 else None
            detail = known or _generic_detail(exc.status_code)
        headers = dict(exc.headers or {})
        return Problem(exc.status_code, _generic_title(exc.status_code), detail, headers=headers)
    if _is_out_of_range(exc):
        return Problem(400, "请求无效", "数值超出允许范围（编号或数量过大）")
    if database_unreachable(exc):
        return Problem(503, "服务暂不可用", PRIMARY_DOWN, headers={"Retry-After": RETRY_AFTER})
    if transient_conflict(exc):
        return Problem(503, "服务繁忙", CONFLICT_RETRY, headers={"Retry-After": "1"})
    return Problem(HTTP_500_INTERNAL_SERVER_ERROR, "服务器内部错误", "服务器处理请求时出错，请稍后再试")


PRIMARY_DOWN = "系统维护中：数据库主库暂不可用，请稍后再试"
READ_SIDE_DOWN = "证件查询暂不可用：数据库只读副本暂时无法连接，请稍后再试"
RETRY_AFTER = "5"
CONFLICT_RETRY = "数据库正忙（与其他操作冲突），本次操作未生效，请稍后重试"
READ_SIDE = "db_read_side"
"""A route ``opt`` key: the route reads only from ``DATABASE_READ_URL`` (the public router), so when
a replica is configured, an unreachable database there is the replica, not the primary."""

_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
"""Connection exceptions (class 08); the server shutting down (admin_shutdown: ``pg_ctl stop``,
crash_shutdown) or not accepting connections yet (cannot_connect_now: starting, recovering)."""

_SQLITE_READONLY = 8
"""sqlite3's primary result code for "attempt to write a readonly database" (its ``sqlite_errorcode``
carries extended codes in the upper bits)."""


def database_unreachable(exc: BaseException) -> bool:
    """Is ``exc`` the database being away (down, restarting, the network cut) rather than a bug?

    - ``OSError`` (``ConnectionRefusedError``, ``socket.gaierror``, ``TimeoutError``): asyncpg fails to
      connect with these, and SQLAlchemy passes them through unwrapped;
    - ``ConnectionError``: ``app.db.DriverPool``'s faults;
    - SQLAlchemy's ``OperationalError`` / ``InterfaceError`` (asyncpg's ``ConnectionDoesNotExistError``,
      "connection was closed in the middle of operation"; SQLite's "database is locked") and any
      ``DBAPIError`` that invalidated its connection;
    - a ``DBAPIError`` whose SQLSTATE is one of ``_UNREACHABLE_SQLSTATES``: asyncpg's
      ``AdminShutdownError`` / ``CannotConnectNowError`` reach SQLAlchemy as its generic ``DBAPIError``;
    - ``PoolTimeout``: every connection of this worker stayed busy for the pool's timeout.

    A write refused by a read-only session (PostgreSQL's SQLSTATE 25006, also a hot standby's
    answer; SQLite's SQLITE_READONLY under ``query_only``) is not among them: that is a bug, a 500.
    """
    if (
        isinstance(exc, OperationalError)
        and getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY
    ):
        return False
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
        return exc.connection_invalidated or str(code).startswith(_UNREACHABLE_SQLSTATES)
    return False


_CONFLICT_SQLSTATES = ("40001", "40P01", "55P03")
"""PostgreSQL refusing one transaction so that others may go on; the same request, repeated, succeeds:
serialization_failure (also a hot standby cancelling a read that conflicts with the primary's
changes being replayed, "conflict with recovery"), deadlock_detected, lock_not_available."""


def transient_conflict(exc: BaseException) -> bool:
    """Is ``exc`` PostgreSQL refusing this transaction for the sake of another (a 503 with a short
    Retry-After: nothing was written, the request's transaction rolled back) rather than a bug?"""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
    return str(code) in _CONFLICT_SQLSTATES


def _is_out_of_range(exc: Exception) -> bool:
    """An integer too large for the database column: SQLite's driver raises OverflowError, asyncpg a
    DataError; both come from input, never from a fault, so the caller gets a 400 (and nothing is written:
    the request's transaction rolls back)."""
    if isinstance(exc, OverflowError):
        return True
    if isinstance(exc, DBAPIError):
        orig = getattr(exc, "orig", None)
        text = str(orig or exc)
        return (
            isinstance(orig, OverflowError) or "out of int64 range" in text or "out of range for type" in text
        )
    return False


def _is_chinese(text: str | None) -> bool:
    return bool(text) and bool(re.search(r"[\u4e00-\u9fff]", text or ""))


def _generic_title(status: int) -> str:
    return {
        400: "请求无效",
        403: "无权访问",
        404: "未找到",
        405: "请求方法不允许",
        413: "上传内容过大",
        415: "不支持的内容类型",
        429: "请求过于频繁",
        503: "服务暂不可用",
    }.get(status, "请求失败")


def _generic_detail(status: int) -> str:
    return {
        400: "请求无效，请检查后重试",
        403: "安全校验失败或无权操作，请刷新页面后重试",
        405: "该地址不支持此请求方法",
        413: "上传内容超过大小限制",
        415: "不支持的内容类型",
        429: "请求过于频繁，请稍后再试",
    }.get(status, "请求失败")


def problem_response(request: Request[Any, Any, Any], problem: Problem) -> Response[Any]:
    if wants_html(request):
        if problem.status == 401:
            # Percent-encoded, so that a crafted path cannot add headers or parameters to the redirect.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Redirect(path=f"/login?next={quote(target, safe='/')}", status_code=303)
        return Template(
            template_name="error.html",
            context={"problem": problem, "request": request},
            status_code=problem.status,
            headers=problem.headers,
            media_type=MediaType.HTML,
        )
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    return Response(
        content=body,
        status_code=problem.status,
        media_type="application/problem+json",
        headers=problem.headers,
    )


def size_text(size: int) -> str:
    """A byte count as people read it on an upload form: ``10 MB``, ``512 KB``."""
    return f"{size / (1024 * 1024):g} MB" if size >= 1024 * 1024 else f"{size / 1024:g} KB"


def too_large_problem(limit: int) -> Problem:
    """The one 413 answer: the body (an upload) is over ``MAX_UPLOAD_BYTES``."""
    return Problem(
        413,
        "上传文件过大",
        f"上传的文件超过 {size_text(limit)} 的大小限制，请拆分成几个较小的文件分批导入",
    )


def _reads_replica(request: Request[Any, Any, Any]) -> bool:
    handler = request.scope.get("route_handler")
    return bool(
        request.app.state.settings.database_read_url and handler is not None and handler.opt.get(READ_SIDE)
    )


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RequestEntityTooLarge):
        return problem_response(request, too_large_problem(request.app.state.settings.max_upload_bytes))
    problem = problem_for(exc)
    if problem.detail == PRIMARY_DOWN and _reads_replica(request):
        problem = Problem(503, problem.title, READ_SIDE_DOWN, headers=problem.headers)
    if problem.status == 503:
        # The database is away: one line per request, not a traceback each while it lasts.
        log.warning("database unreachable on %s %s: %r", request.method, request.url.path, exc)
    elif problem.status >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, problem)


__all__ = [
    "READ_SIDE",
    "Conflict",
    "DomainError",
    "FieldError",
    "Forbidden",
    "InsufficientStorage",
    "MediaType",
    "NotFound",
    "StaleForm",
    "TooManyRequests",
    "database_unreachable",
    "exception_handler",
    "possible_id",
    "size_text",
    "too_large_problem",
    "transient_conflict",
]


ID_MAX = 2**63 - 1
"""Database keys are signed 64-bit integers; a larger id would overflow the driver (a 500) rather
than simply match nothing."""


def possible_id(value: int) -> bool:
    """Whether ``value`` can be a row's id (1..2^63-1)."""
    return 0 < value <= ID_MAX


async def reject_impossible_ids(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: an integer path parameter outside 1..2^63-1 names nothing (404)."""
    for name, value in request.path_params.items():
        if isinstance(value, int) and not isinstance(value, bool) and not possible_id(value):
            raise NotFound(f"{name} 为 {value} 的对象不存在")
