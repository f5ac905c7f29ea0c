"""`app assessments close-year`: the year-end close."""

from __future__ import annotations

import click

from app.cli.base import cli, run


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
        out = run(command_close_year, year=year, progress=not as_json)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(msgspec.json.encode(out).decode())
    else:
        for line in close_year_lines(out):
            click.echo(line)
