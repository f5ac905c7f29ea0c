"""`app training import|totals`: the hours ledger from the console."""

from __future__ import annotations

import sys
from typing import Any

import click

from app.cli.base import cli, run, session


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


@training.command("totals")
@click.option("--check", is_flag=True, help="Only compare with the ledger; exit 1 on any difference.")
@click.option("--year", type=click.IntRange(2000, 2100), default=None, help="Check one year only.")
def training_totals(check: bool, year: int | None) -> None:
    """The yearly totals against the ledger they sum: check them, or rebuild them from it."""
    from app.training.services import totals_check, totals_rebuild

    async def go() -> tuple[list[Any], int | None]:
        async with session() as db:
            differences = await totals_check(db, year=year)
            await db.rollback()
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
