"""`app training import|totals`: the hours ledger from the console.

The console is an edge like an HTTP request: each command runs its use case in ``session()``, which
commits once when the work returns. An import is one transaction whatever the sheet's length (the
rows wait in the database's scratch tables, not in this process), so a process killed at any moment
leaves the whole sheet or none of it; there is no chunk loop that commits.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from app.cli.base import cli, run, session

if TYPE_CHECKING:  # the service's modules load when a command runs, not for `app --help`
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.lib.security import Principal
    from app.training.schemas import ImportPreview, ImportReport


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

    outcome = run(
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


@dataclass
class CommandOutcome:
    """What ``app training import`` reports: the checked file, or why it could not be read."""

    ok: bool
    dry_run: bool
    report: ImportReport | None = None
    error: str | None = None

    def json(self) -> str:
        import msgspec

        body: dict[str, Any] = {"ok": self.ok, "dry_run": self.dry_run, "error": self.error}
        if self.report is not None:
            body.update(msgspec.to_builtins(self.report))
        return json.dumps(body, ensure_ascii=False, indent=2)

    def lines(self) -> list[str]:
        if self.report is None:
            return [f"导入失败：{self.error}"]
        r = self.report
        kind = "Excel（.xlsx）" if r.file_type == "xlsx" else f"CSV（{r.encoding}）"
        out = [
            f"文件：{r.filename}（{kind}） 年度：{r.year} SHA-256：{r.sha256}",
            f"数据行：{r.total_rows} 检查通过：{r.valid_rows} 有错误：{r.invalid_rows} 学时合计：{r.hours_total:g}",
        ]
        out += [f"第{e.row}行 {e.column}：{e.message}" for e in r.errors]
        if not r.ok:
            out.append(f"有 {r.invalid_rows} 行错误，未写入任何数据。")
        elif self.dry_run:
            out.append("全部检查通过（--dry-run，未写入）。")
        else:
            out.append(f"已导入 {r.imported} 条学时记录（批次 {r.batch_id}）。")
        return out


async def command_principal(db: AsyncSession, username: str | None) -> Principal:
    """Who the console imports as: ``--as-user`` (an active administrator, scoped to its tree) or the system."""
    from app.accounts.principal import principal_by_username
    from app.lib.errors import DomainError
    from app.lib.security import system_principal

    if username is None:
        return system_principal()
    principal = await principal_by_username(db, username)
    if principal is None:
        raise DomainError(f"账号“{username}”不存在或已停用", field="as_user")
    if not principal.is_admin:
        raise DomainError(f"账号“{username}”不是管理员，不能导入学时", field="as_user")
    # A pending password change holds the account's web session, not the operator's console.
    return replace(principal, must_change_password=False)


async def command_import(
    *,
    data: bytes,
    filename: str,
    dry_run: bool,
    year: int | None,
    course_id: int | None,
    username: str | None,
) -> CommandOutcome:
    """The web import for operators: same checks, same all-or-nothing commit, source ``cli``.

    A refused sheet is committed as its record (a rejected batch); a file that cannot be read, or
    any other refusal, rolls everything back.
    """
    from app.lib.errors import DomainError
    from app.training.services.imports import training_import_commit, training_import_preview

    try:
        async with session() as db:
            principal = await command_principal(db, username)
            kw: dict[str, Any] = {
                "principal": principal,
                "data": data,
                "filename": filename,
                "year": year,
                "course_id": course_id,
            }
            if dry_run:
                preview = await training_import_preview(db, **kw)
                report = _as_report(preview, dry_run=True, imported=0, batch_id=None)
                return CommandOutcome(ok=preview.ok, dry_run=True, report=report)
            result = await training_import_commit(db, source="cli", **kw)
            report = _as_report(
                result.preview, dry_run=False, imported=result.imported, batch_id=result.batch_id
            )
            return CommandOutcome(ok=result.ok, dry_run=False, report=report)
    except DomainError as exc:
        return CommandOutcome(ok=False, dry_run=dry_run, error=exc.message)


def _as_report(preview: ImportPreview, *, dry_run: bool, imported: int, batch_id: int | None) -> ImportReport:
    from app.training.schemas import ImportReport

    return ImportReport(
        **{k: getattr(preview, k) for k in preview.__struct_fields__},
        dry_run=dry_run,
        imported=imported,
        batch_id=batch_id,
    )


@training.command("totals")
@click.option("--check", is_flag=True, help="Only compare with the ledger; exit 1 on any difference.")
@click.option("--year", type=click.IntRange(2000, 2100), default=None, help="Check one year only.")
def training_totals(check: bool, year: int | None) -> None:
    """The yearly totals against the ledger they sum: check them, or rebuild them from it."""
    from app.training.selectors.totals import totals_check
    from app.training.services.totals import totals_rebuild

    async def go() -> tuple[list[Any], int | None]:
        async with session() as db:
            differences = await totals_check(db, year=year)
            if check:
                return differences, None
            return differences, await totals_rebuild(db)

    differences, rebuilt = run(go)
    for y, officer_id, category, kept, ledger in differences:
        click.echo(f"{y} officer {officer_id} {category}: totals {kept / 10:g} h, ledger {ledger / 10:g} h")
    if rebuilt is not None:
        click.echo(f"yearly totals rebuilt from the ledger: {rebuilt} rows ({len(differences)} differed)")
        sys.exit(0)
    click.echo("yearly totals match the ledger" if not differences else f"{len(differences)} differences")
    sys.exit(1 if differences else 0)


__all__ = ["CommandOutcome", "command_import", "command_principal", "training"]
