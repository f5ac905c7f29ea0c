"""`app create-admin`: the first issuing-authority administrator."""

from __future__ import annotations

import click

from app.cli.base import cli, run, session


@cli.command("create-admin")
@click.option("--username", required=True)
@click.option("--password", default=None, help="Omit to be prompted (never echoed).")
@click.option("--display-name", default="系统管理员", show_default=True)
@click.option(
    "--agency-id", type=int, default=None, help="Issuing-authority agency; default: the tree's root."
)
def create_admin(username: str, password: str | None, display_name: str, agency_id: int | None) -> None:
    """Create an authority administrator (司法行政管理员) account."""
    from app.accounts.services.accounts import authority_admin_create
    from app.lib.security import password_policy_error

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert password is not None
    if msg := password_policy_error(password, username=username):
        raise click.ClickException(msg)
    chosen: str = password

    async def create() -> int:
        async with session() as db:
            account = await authority_admin_create(
                db, username=username, password=chosen, display_name=display_name, agency_id=agency_id
            )
            return account.id

    try:
        account_id = run(create)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created authority admin {username} (account {account_id})")
