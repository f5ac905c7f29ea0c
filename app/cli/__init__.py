"""The `app` console command: serve, migrate, demo data, admin tasks, one module per domain.

The command names are a contract that operators' scripts rely on; keep them. Console code (engines,
progress bars, printing) lives here and never in the services.
"""

from __future__ import annotations

from app.cli import accounts, assessments, audit, certificates, db, demo, exams, serve, training  # noqa: F401
from app.cli.base import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
