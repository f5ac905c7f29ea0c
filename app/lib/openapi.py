"""Document the problem+json error answers every JSON operation can give.

Litestar documents what a handler returns and a generic 400; the errors raised by guards, services,
the rate limiter and the database check (``app/lib/errors.py``) come from elsewhere. Adding them once,
after the routes are registered, keeps the schema honest without repeating ``responses=`` on every
handler: clients (and the API fuzzing in tests/e2e) can rely on every answer being described.
"""

from __future__ import annotations

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.openapi.spec.enums import OpenAPIType

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["title", "status"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "instance": Schema(type=OpenAPIType.STRING),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                properties={
                    "field": Schema(type=OpenAPIType.STRING),
                    "message": Schema(type=OpenAPIType.STRING),
                },
            ),
        ),
    },
)

ANSWERS = {
    "400": "请求无效（字段与原因见 errors）",
    "401": "未登录或会话已失效",
    "403": "无权进行此操作",
    "404": "对象不存在或不在管理范围内",
    "405": "不支持的请求方法",
    "409": "与当前状态冲突（重复提交、表单已过期、状态不允许）",
    "413": "请求体或上传文件过大",
    "415": "不支持的内容类型",
    "422": "内容无法处理（字段与原因见 errors）",
    "429": "请求过于频繁，请稍后再试",
    "503": "数据库暂时不可用",
}


def document_problem_responses(app: Litestar) -> None:
    """Add the problem+json answers to every operation of ``app``'s OpenAPI document (idempotent)."""
    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    for item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status, description in ANSWERS.items():
                existing = responses.get(status)
                if existing is None:
                    responses[status] = OpenAPIResponse(
                        description=description,
                        content={"application/problem+json": OpenAPIMediaType(schema=PROBLEM)},
                    )
                elif isinstance(existing, OpenAPIResponse):
                    content = dict(existing.content or {})
                    content.setdefault("application/problem+json", OpenAPIMediaType(schema=PROBLEM))
                    existing.content = content
            operation.responses = responses
