"""`app serve`: the web service under uvicorn."""

from __future__ import annotations

import click

from app.cli.base import cli


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--workers", default=1, type=int, show_default=True, help="Processes (PostgreSQL only for >1).")
@click.option("--reload", is_flag=True, help="Reload on code changes (development).")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    """Run the web service."""
    import uvicorn

    from app.db import DatabaseInUse, hold_sqlite_file
    from app.settings import get_settings

    settings = get_settings()
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError("SQLite 只支持单进程运行；多进程请使用 PostgreSQL（设置 DATABASE_URL）")
    if not reload:  # with --reload the server runs in a child process, which claims the file itself
        try:
            hold_sqlite_file(settings.database_url)
        except DatabaseInUse as exc:
            raise click.ClickException(str(exc)) from exc
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
