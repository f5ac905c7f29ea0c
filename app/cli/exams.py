"""`app exams import|sweep`: question banks and the time-up sweep."""

from __future__ import annotations

import sys

import click

from app.cli.base import cli, run


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

    summary = run(command_import, path, code=code, part=part, field=field, category=category)
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

    closed = run(sweep_once, get_settings().database_url)
    click.echo(f"closed {closed} attempts past their time-up")
