"""Jinja globals and filters shared by every page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine

from app.lib import enums
from app.lib.clock import CHINA
from app.lib.enums import Role
from app.lib.static import static_url

# (path, label, roles allowed): the navigation, filtered by the logged-in role.
NAV: list[tuple[str, str, frozenset[Role]]] = [
    ("/", "首页", frozenset(Role)),
    ("/officers", "执法人员", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/officers/import", "批量导入", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/agencies", "单位管理", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/accounts", "账号管理", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/training", "培训学时", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/my/training", "我的学时", frozenset({Role.OFFICER})),
    ("/certificates", "执法证件", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/certificates/applications", "证件申领", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/certificates", "我的证件", frozenset({Role.OFFICER})),
    ("/exams", "资格考试", frozenset({Role.AUTHORITY_ADMIN})),
    ("/my/exams", "我的考试", frozenset({Role.OFFICER})),
    ("/assessments", "年度考核", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/my/assessments", "我的考核", frozenset({Role.OFFICER})),
    ("/rosters", "名册统计", frozenset({Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN})),
    ("/audit", "审计日志", frozenset({Role.AUTHORITY_ADMIN})),
]


def nav_for(user: Any) -> list[tuple[str, str]]:
    if user is None:
        return []
    return [(p, label) for p, label, roles in NAV if user.role in roles]


def label(value: Any, enum_name: str) -> str:
    enum = getattr(enums, enum_name)
    try:
        return str(enum(value).label)
    except ValueError:
        return str(value)


def fmt_dt(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def configure_jinja(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.globals.update(nav_for=nav_for, enums=enums, static_url=static_url)
    # Templates are read once per process (a release restarts the server): with auto_reload every
    # page paid a stat() of its template and of each one it extends or includes.
    env.auto_reload = False
    env.filters.update(label=label, dt=fmt_dt)
    env.autoescape = True
