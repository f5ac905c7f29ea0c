"""The `app` console command: serve, migrate, demo data, admin tasks.

The command names are a contract that operators' scripts rely on; keep them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

T = TypeVar("T")


def _run(coro_fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
    return asyncio.run(coro_fn(*args, **kwargs))


@click.group()
def cli() -> None:
    """行政执法人员资格管理系统 — operator commands."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--workers", default=1, type=int, show_default=True, help="Processes (PostgreSQL only for >1).")
@click.option("--reload", is_flag=True, help="Reload on code changes (development).")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    """Run the web service."""
    import uvicorn

    from app.settings import get_settings

    settings = get_settings()
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError("SQLite 只支持单进程运行；多进程请使用 PostgreSQL（设置 DATABASE_URL）")
    click.echo(
        f"行政执法人员资格管理系统 listening on http://{host}:{port} ({settings.database_url.split('://')[0]})"
    )
    uvicorn.run(
        "app.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        # Behind a reverse proxy every request comes from the proxy's address, and per-client limits
        # (login, public lookups) would throttle everyone at once: trust X-Forwarded-For from the
        # proxies named in FORWARDED_ALLOW_IPS only, never from anyone (it is trivially spoofed).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level="info",
        access_log=False,
    )


@cli.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (default: to the newest revision)."""
    from app.lib import migrate

    migrate.upgrade(None, revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema (default: one revision)."""
    from app.lib import migrate

    migrate.downgrade(None, revision)
    click.echo(f"database downgraded to {revision}")


@cli.command("create-admin")
@click.option("--username", required=True)
@click.option("--password", default=None, help="Omit to be prompted (never echoed).")
@click.option("--display-name", default="系统管理员", show_default=True)
@click.option(
    "--agency-id", type=int, default=None, help="Issuing-authority agency; default: the tree's root."
)
def create_admin(username: str, password: str | None, display_name: str, agency_id: int | None) -> None:
    """Create an authority administrator (司法行政管理员) account."""
    from app.accounts.bootstrap import create_authority_admin
    from app.lib.security import password_policy_error

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert password is not None
    if msg := password_policy_error(password, username=username):
        raise click.ClickException(msg)
    try:
        account_id = _run(
            create_authority_admin,
            username=username,
            password=password,
            display_name=display_name,
            agency_id=agency_id,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created authority admin {username} (account {account_id})")


@cli.command("demo-data")
@click.option("--officers", default=2000, show_default=True, type=click.IntRange(0, 5_000_000))
@click.option("--seed", default=20261122, show_default=True, type=int)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has agencies.")
def demo_data(officers: int, seed: int, if_empty: bool) -> None:
    """Load a plausible demo province: agencies, officers, one account per role."""
    from app.accounts.demo import generate_demo

    report = _run(generate_demo, officers=officers, seed=seed, if_empty=if_empty, progress=True)
    click.echo(report)


@cli.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--anchor",
    default=None,
    metavar="ID:HASH",
    help="A head printed by an earlier run and kept outside the database: fail if it is gone or changed.",
)
def audit_verify_cmd(as_json: bool, anchor: str | None) -> None:
    """Recompute the whole chain; exit 1 at the first changed, inserted or deleted row."""
    from app.db import make_engine, make_sessionmaker
    from app.lib.audit import audit_drain_all, audit_verify
    from app.settings import get_settings

    async def go() -> Any:
        engine = make_engine(get_settings().database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                await audit_drain_all(session)  # events still in the outbox join the chain first
                return await audit_verify(session, anchor=pin)
        finally:
            await engine.dispose()

    pin: tuple[int, str] | None = None
    if anchor:
        anchor_id, _, anchor_hash = anchor.partition(":")
        if not anchor_id.isdigit() or len(anchor_hash) != 64:
            raise click.BadParameter(
                "expected ID:HASH as printed by `app audit verify`", param_hint="--anchor"
            )
        pin = (int(anchor_id), anchor_hash.lower())
    report = _run(go)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "first_bad_id": report.first_bad_id,
                    "reason": report.reason,
                    "head": f"{report.head_id}:{report.head_hash}" if report.head_id else None,
                },
                ensure_ascii=False,
            )
        )
    elif report.ok:
        click.echo(f"audit chain intact: {report.checked} events verified")
        if report.head_id is not None:
            click.echo(
                f"head (keep it outside the database, check later with --anchor): {report.head_id}:{report.head_hash}"
            )
    else:
        click.echo(
            f"AUDIT CHAIN BROKEN at event {report.first_bad_id}: {report.reason} ({report.checked} verified before it)",
            err=True,
        )
    sys.exit(0 if report.ok else 1)


@cli.group()
def training() -> None:
    """Yearly training (年度培训): the hours ledger and attendance import."""


@training.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--year", type=click.IntRange(2000, 2100), default=None, help="Training year (default: this year)."
)
@click.option(
    "--course-id", type=int, default=None, help="One course for every row (no course column needed)."
)
@click.option(
    "--as-user",
    "username",
    default=None,
    help="Import as this administrator (scoped to its agency tree); default: the system, whole tree.",
)
def training_import(
    file: str, dry_run: bool, as_json: bool, year: int | None, course_id: int | None, username: str | None
) -> None:
    """Import an attendance sheet (CSV UTF-8/GBK or XLSX), all rows or none.

    Exits 1, writing nothing, when the file or any row is bad; every bad row is listed with its
    row number and reason.
    """
    from pathlib import Path

    from app.training.importer import command_import

    outcome = _run(
        command_import,
        data=Path(file).read_bytes(),
        filename=Path(file).name,
        dry_run=dry_run,
        year=year,
        course_id=course_id,
        username=username,
    )
    if as_json:
        click.echo(outcome.json())
    else:
        for line in outcome.lines():
            click.echo(line)
    sys.exit(0 if outcome.ok else 1)


@training.command("totals")
@click.option("--check", is_flag=True, help="Only compare with the ledger; exit 1 on any difference.")
@click.option("--year", type=click.IntRange(2000, 2100), default=None, help="Check one year only.")
def training_totals(check: bool, year: int | None) -> None:
    """The yearly totals against the ledger they sum: check them, or rebuild them from it."""
    from app.db import make_engine, make_sessionmaker
    from app.settings import get_settings
    from app.training.services import totals_check, totals_rebuild

    async def go() -> tuple[list[Any], int | None]:
        engine = make_engine(get_settings().database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                differences = await totals_check(session, year=year)
                await session.rollback()
                if check:
                    return differences, None
                return differences, await totals_rebuild(session)
        finally:
            await engine.dispose()

    differences, rebuilt = _run(go)
    for y, officer_id, category, kept, ledger in differences:
        click.echo(f"{y} officer {officer_id} {category}: totals {kept / 10:g} h, ledger {ledger / 10:g} h")
    if rebuilt is not None:
        click.echo(f"yearly totals rebuilt from the ledger: {rebuilt} rows ({len(differences)} differed)")
        sys.exit(0)
    click.echo("yearly totals match the ledger" if not differences else f"{len(differences)} differences")
    sys.exit(1 if differences else 0)


def _add_domain_commands() -> None:
    from app.certificates.cli import certificates

    cli.add_command(certificates)


_add_domain_commands()


@cli.group()
def exams() -> None:
    """Online qualification exams (执法资格考试): question banks, time-up sweep."""


@exams.command("import")
@click.argument("path", type=click.Path(exists=True, readable=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--code", default=None, help="GIFT/XLSX: the bank code (default: from the file name).")
@click.option(
    "--part", type=click.Choice(["public", "specialised"]), default=None, help="GIFT/XLSX: the part."
)
@click.option("--field", default=None, help="GIFT/XLSX: the enforcement field of a specialised bank.")
@click.option(
    "--category",
    type=click.Choice(["public_law", "specialised_law", "new_law"]),
    default=None,
    help="GIFT/XLSX: the category of questions that do not name one.",
)
def exams_import(
    path: str, as_json: bool, code: str | None, part: str | None, field: str | None, category: str | None
) -> None:
    """Import a bank file (TOML, Moodle GIFT .gift/.txt, XLSX) or every bank file of a folder.

    Re-importing an unchanged bank changes nothing; a changed question becomes a new version.
    Exits 1 when any file or question was rejected (errors and unsupported questions are listed
    with their positions).
    """
    from app.exams.importer import command_import, summary_json, summary_lines

    summary = _run(command_import, path, code=code, part=part, field=field, category=category)
    if as_json:
        click.echo(summary_json(summary))
    else:
        for line in summary_lines(summary):
            click.echo(line)
    sys.exit(0 if summary.ok else 1)


@exams.command("sweep")
def exams_sweep() -> None:
    """Close (and grade) every open attempt past its time-up; the server also does this every 30 s."""
    from app.exams.tasks import sweep_once
    from app.settings import get_settings

    closed = _run(sweep_once, get_settings().database_url)
    click.echo(f"closed {closed} attempts past their time-up")


@cli.group()
def assessments() -> None:
    """Annual assessment and exit (年度考核与退出)."""


@assessments.command("close-year")
@click.argument("year", type=click.IntRange(2000, 2100))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def assessments_close_year(year: int, as_json: bool) -> None:
    """Close YEAR: open an exit case for every officer unqualified in YEAR-1 and YEAR, flag the
    year's training shortfalls. Safe to run again: nothing is opened or flagged twice."""
    import msgspec

    from app.assessments.services import close_year_lines, command_close_year
    from app.lib.errors import DomainError

    try:
        out = _run(command_close_year, year=year, progress=not as_json)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(msgspec.json.encode(out).decode())
    else:
        for line in close_year_lines(out):
            click.echo(line)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
