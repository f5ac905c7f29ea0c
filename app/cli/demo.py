"""`app demo-data`: the demo province, with a progress bar on the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from app.cli.base import cli, run


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """``update(description, completed, total)`` drawing a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(description: str, completed: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=completed, total=total)

        yield update


@cli.command("demo-data")
@click.option("--officers", default=2000, show_default=True, type=click.IntRange(0, 5_000_000))
@click.option("--seed", default=20261122, show_default=True, type=int)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has agencies.")
def demo_data(officers: int, seed: int, if_empty: bool) -> None:
    """Load a plausible demo province: agencies, officers, one account per role."""
    from app.demo.province import DemoDataRefused, generate_demo

    try:
        with _progress_bar() as update:
            report = run(generate_demo, officers=officers, seed=seed, if_empty=if_empty, progress=update)
    except DemoDataRefused as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(report)
