"""The installed package carries everything the service needs: every sub-package of app/ and the
migration scripts, which the repository keeps in the top-level alembic/ and pyproject.toml installs as
the package ``app_migrations`` (so a non-editable ``pip install`` can run ``app db upgrade``).

A real ``pip install`` is too slow for the suite; these checks read the declaration and resolve the
scripts the way the installed command does, from a directory outside the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from app.lib import migrate

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_directory_under_app_is_a_declared_package() -> None:
    """The package list is explicit (discovery cannot map alembic/): a new sub-package must be added,
    or the wheel silently ships without it (templates and static files included)."""
    found = {
        ".".join(d.relative_to(ROOT).parts)
        for d in [ROOT / "app", *(ROOT / "app").rglob("*")]
        if d.is_dir() and "__pycache__" not in d.parts
    }
    declared = {p for p in SETUPTOOLS["packages"] if p == "app" or p.startswith("app.")}
    assert declared == found, f"missing from pyproject.toml: {found - declared}; stale: {declared - found}"


def test_the_migration_scripts_are_declared_as_package_data() -> None:
    assert SETUPTOOLS["package-dir"] == {migrate.MIGRATIONS_PACKAGE: "alembic"}
    # env.py and versions/*.py ship as the modules of these two packages, the template as data.
    package = migrate.MIGRATIONS_PACKAGE
    assert {package, f"{package}.versions"} <= set(SETUPTOOLS["packages"])
    assert "script.py.mako" in SETUPTOOLS["package-data"][package]
    assert (ROOT / "alembic" / "script.py.mako").is_file()
    # A version file outside versions/ or in a sub-folder would be left out of the wheel.
    assert sorted(p.name for p in (ROOT / "alembic").iterdir() if p.name != "__pycache__") == [
        "env.py",
        "script.py.mako",
        "versions",
    ]
    versions = ROOT / "alembic" / "versions"
    assert not [p for p in versions.iterdir() if p.is_dir() and p.name != "__pycache__"]
    # No __init__.py: it would make the repository's alembic/ shadow the alembic library.
    assert not (ROOT / "alembic" / "__init__.py").exists()


def test_migrate_finds_the_scripts_through_the_package_from_any_directory(tmp_path: Path) -> None:
    """What `app db upgrade` does, in a fresh interpreter whose working directory is not the checkout
    (-I: neither the current directory nor PYTHONPATH on sys.path)."""
    probe = (
        "import json\n"
        "from alembic.script import ScriptDirectory\n"
        "from app.lib import migrate\n"
        "script = ScriptDirectory.from_config(migrate.alembic_config())\n"
        "print(json.dumps({'location': str(migrate.script_location()),\n"
        "                  'revisions': sorted(r.module.__file__ for r in script.walk_revisions()),\n"
        "                  'heads': script.get_heads()}))\n"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout)
    location = Path(found["location"])
    assert (location / "env.py").is_file()
    assert len(found["heads"]) == 1
    # In this (editable) venv the package maps onto the repository's alembic/; installed, it would be
    # site-packages/app_migrations. Either way every version file is found through it.
    assert location.resolve() == (ROOT / "alembic").resolve()
    assert sorted(Path(f).name for f in found["revisions"]) == sorted(
        p.name for p in (ROOT / "alembic" / "versions").glob("*.py")
    )


_WHERE = "import json, sys\nfrom app import settings as s\nprint(json.dumps([str(s.VAR_DIR), str(s.CARDS_DIR), sys.prefix]))\n"


def _where(app_parent: Path, cwd: Path, **env: str) -> list[str]:
    """VAR_DIR and CARDS_DIR as a fresh interpreter sees them with ``app`` imported from ``app_parent``."""
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(app_parent)!r})\n" + _WHERE],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return list(json.loads(out.stdout))


def test_an_installed_package_keeps_its_state_outside_site_packages(tmp_path: Path) -> None:
    """Installed (no pyproject.toml beside app/), the state goes under <prefix>/var/zhifa-instance,
    not into site-packages; a checkout keeps its own var/ and certificates/out; APP_VAR_DIR wins."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "app", site / "app", ignore=shutil.ignore_patterns("__pycache__"))
    var, cards, prefix = _where(site, tmp_path)
    assert var == str(Path(prefix) / "var" / "zhifa-instance")
    assert cards == str(Path(var) / "certificates")
    assert not var.startswith(str(site))
    assert _where(ROOT, tmp_path)[:2] == [str(ROOT / "var"), str(ROOT / "certificates" / "out")]
    assert _where(site, tmp_path, APP_VAR_DIR=str(tmp_path / "state"))[:2] == [
        str(tmp_path / "state"),
        str(tmp_path / "state" / "certificates"),
    ]
