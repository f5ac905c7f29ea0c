"""Run Alembic programmatically (used by `app db ...` and by the tests).

The migration scripts ship inside the distribution: the repository keeps them in the top-level
``alembic/`` and pyproject.toml installs that folder as the package ``app_migrations``. They are
found through the import system, so ``app db upgrade`` works from any directory after a plain
(non-editable) ``pip install`` as well as in the checkout's editable venv. The repository's
``alembic.ini`` only serves the ``alembic`` command in a checkout (``alembic revision --autogenerate``);
nothing here reads it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic.config import Config

from alembic import command

MIGRATIONS_PACKAGE = "app_migrations"


def script_location() -> Path:
    """The directory holding ``env.py`` and ``versions/``, as installed with the package."""
    # find_spec rather than importlib.resources.files: the package has no __init__.py (alembic/ must
    # not have one, or it would shadow the alembic library), and the editable install's namespace path
    # carries a placeholder entry that resources.files() rejects on Python 3.11.
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    for entry in (spec.submodule_search_locations or []) if spec else []:
        path = Path(entry)
        if (path / "env.py").is_file() and (path / "versions").is_dir():
            return path
    raise RuntimeError(
        f"the migration scripts (package {MIGRATIONS_PACKAGE!r}) are not installed: reinstall the package"
    )


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("path_separator", "os")
    if database_url:
        cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "-1") -> None:
    command.downgrade(alembic_config(database_url), revision)
