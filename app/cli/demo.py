"""`app demo-data`: the demo province."""

from __future__ import annotations

import click

from app.cli.base import cli, run


@cli.command("demo-data")
@click.option("--officers", default=2000, show_default=True, type=click.IntRange(0, 5_000_000))
@click.option("--seed", default=20261122, show_default=True, type=int)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has agencies.")
def demo_data(officers: int, seed: int, if_empty: bool) -> None:
    """Load a plausible demo province: agencies, officers, one account per role."""
    from app.accounts.demo import generate_demo

    report = run(generate_demo, officers=officers, seed=seed, if_empty=if_empty, progress=True)
    click.echo(report)
