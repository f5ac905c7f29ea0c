"""`app assessments close-year`: the year-end close from the console, with its progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from app.cli.base import cli, run, session

if TYPE_CHECKING:
    from app.assessments.schemas import CloseYearOut


@cli.group()
def assessments() -> None:
    """Annual assessment and exit (年度考核与退出)."""


async def command_close_year(*, year: int, progress: bool) -> CloseYearOut:
    """The whole tree, recorded as the system, in ONE transaction committed by ``session`` when the
    close returns: the close is set-based (a few statements, whatever the size of the province) and
    holds its advisory lock until that commit, so it needs no chunks of its own."""
    from app.assessments.services.closing import close_year
    from app.lib.security import system_principal

    async with session() as db:
        if not progress:
            return await close_year(db, principal=system_principal(), year=year)
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        with bar:
            task = bar.add_task(f"{year} 年度结转", total=4)

            def update(description: str, done: int, total: int) -> None:
                bar.update(task, description=f"{year} 年度结转：{description}", completed=done, total=total)

            return await close_year(db, principal=system_principal(), year=year, progress=update)


def close_year_lines(out: CloseYearOut) -> list[str]:
    """The console summary, per agency."""
    lines = [
        f"{out.year} 年度结转（{out.scope}）：新开立退出案件 {out.cases_opened} 件"
        f"（此前已开立 {out.cases_existing} 件），培训学时不足标记 {out.flags_added} 人，用时 {out.seconds:.2f} 秒",
    ]
    for a in out.agencies:
        lines.append(f"  {a.agency_name}：退出案件 {a.cases_opened}，学时不足 {a.shortfall_flags}")
    return lines


@assessments.command("close-year")
@click.argument("year", type=click.IntRange(2000, 2100))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def assessments_close_year(year: int, as_json: bool) -> None:
    """Close YEAR: open an exit case for every officer unqualified in YEAR-1 and YEAR, flag the
    year's training shortfalls. Safe to run again: nothing is opened or flagged twice."""
    import msgspec

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
