"""Document the problem+json error answers every JSON operation can give.

Litestar documents what a handler returns and a generic 400; the errors raised by guards, services,
the rate limiter and the database check (``app/lib/errors.py``) come from elsewhere. Adding them to
the document keeps the schema honest without repeating ``responses=`` on every handler: clients (and
the API fuzzing in tests/e2e) can rely on every answer being described.

Litestar builds the document on the first request for it; the render plugins here add the answers
then, once, to the document it serves (no schema work at ``create_app``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RapidocRenderPlugin,
    RedocRenderPlugin,
    StoplightRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import Schema
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


def document_problem_responses(openapi: dict[str, Any]) -> None:
    """Add the problem+json answers to every operation of an OpenAPI document (idempotent)."""
    problem = {"application/problem+json": {"schema": PROBLEM.to_schema()}}
    for item in (openapi.get("paths") or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ANSWERS.items():
                existing = responses.get(status)
                if existing is None:
                    responses[status] = {"description": description, "content": dict(problem)}
                elif "$ref" not in existing:
                    existing.setdefault("content", {}).update(
                        {k: v for k, v in problem.items() if k not in existing.get("content", {})}
                    )


class ProblemDocumented(OpenAPIRenderPlugin):
    """A render plugin that documents the problem answers in the document it is given (the one
    Litestar built on the first request and keeps), then renders it as ``inner`` does."""

    def __init__(self, inner: OpenAPIRenderPlugin) -> None:
        self.inner = inner
        self.paths = inner.paths
        self.media_type = inner.media_type
        self.favicon = inner.favicon
        self.style = inner.style
        self.documented: int | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self.documented != id(openapi_schema):
            document_problem_responses(openapi_schema)
            self.documented = id(openapi_schema)
        return self.inner.render(request, openapi_schema)

    def receive_router(self, router: Router) -> None:
        self.inner.receive_router(router)


def problem_documented_plugins() -> list[OpenAPIRenderPlugin]:
    """The render plugins Litestar serves by default under the schema path (ReDoc at its root),
    each documenting the problem answers."""
    inner: list[OpenAPIRenderPlugin] = [
        RedocRenderPlugin(path=["/", "/redoc"]),
        JsonRenderPlugin(),
        YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
        SwaggerRenderPlugin(),
        RapidocRenderPlugin(),
        StoplightRenderPlugin(),
    ]
    return [ProblemDocumented(p) for p in inner]
