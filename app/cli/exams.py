"""`app exams import|sweep`: question banks and the time-up sweep."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from app.cli.base import cli, run, session
from app.exams.schemas import ImportSummary


@cli.group()
def exams() -> None:
    """Online qualification exams (执法资格考试): question banks, time-up sweep."""


async def command_import(
    path: str,
    *,
    code: str | None = None,
    part: str | None = None,
    field: str | None = None,
    category: str | None = None,
    supported_only: bool = False,
) -> ImportSummary:
    """``app exams import PATH``: a file or every bank file of a folder, as the system; the files
    that loaded are committed even when another was rejected (the summary says which). A file with
    an unsupported question loads nothing unless ``supported_only``."""
    from app.exams.importer import bank_files, import_files
    from app.lib.security import system_principal

    files = [(p.name, p.read_bytes()) for p in bank_files(Path(path))]
    async with session() as db:
        return await import_files(
            db,
            principal=system_principal(),
            files=files,
            code=code,
            part=part,
            field=field,
            category=category,
            supported_only=supported_only,
        )


def summary_lines(summary: ImportSummary) -> list[str]:
    lines = []
    for r in summary.files:
        head = f"{r.source}: " + (f"题库 {r.bank} " if r.bank else "")
        if r.errors:
            lines.append(head + f"有 {len(r.errors)} 处错误，未导入")
            lines.extend(f"  错误 {e.position}: {e.message}" for e in r.errors)
            continue
        if r.imported:
            lines.append(
                head
                + f"新增 {r.loaded} 题，未变 {r.unchanged} 题，新版本 {r.new_versions} 题，"
                + f"更新说明 {r.updated} 题，停用 {r.retired} 题"
                + (f"，草稿 {len(r.drafts)} 题" if r.drafts else "")
                + (f"，跳过不支持的题型 {len(r.skipped)} 题" if r.skipped else "")
            )
        else:
            lines.append(head + f"未导入：{r.note}")
        lines.extend(f"  不支持 {u.position}: {u.kind} — {u.excerpt}" for u in r.unsupported)
        lines.extend(f"  跳过 {u.position}: {u.kind} — {u.excerpt}" for u in r.skipped)
        lines.extend(
            f"  草稿 {d.position}" + (f"（{d.title}）" if d.title else "") + f": {d.reason}" for d in r.drafts
        )
        lines.extend(f"  重复 {d.position}: 与 {d.message} 相同，只导入一次" for d in r.duplicates)
    if not summary.files:
        lines.append("没有找到题库文件")
    return lines


def summary_json(summary: ImportSummary) -> str:
    return msgspec.json.encode(summary).decode()


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
@click.option(
    "--supported-only",
    is_flag=True,
    help="GIFT/XLSX: import the supported questions of a file that also has unsupported ones "
    "(listed as skipped); without it such a file loads nothing.",
)
def exams_import(
    path: str,
    as_json: bool,
    code: str | None,
    part: str | None,
    field: str | None,
    category: str | None,
    supported_only: bool,
) -> None:
    """Import a bank file (TOML, Moodle GIFT .gift/.txt, XLSX) or every bank file of a folder.

    Re-importing an unchanged bank changes nothing; a changed question becomes a new version.
    Exits 1 when any file or question was rejected (errors and unsupported questions are listed
    with their positions). Questions without a basis load as drafts (listed), never drawn until
    their basis is filled in.
    """
    summary = run(
        command_import,
        path,
        code=code,
        part=part,
        field=field,
        category=category,
        supported_only=supported_only,
    )
    if as_json:
        click.echo(summary_json(summary))
    else:
        for line in summary_lines(summary):
            click.echo(line)
    sys.exit(0 if summary.ok else 1)


async def command_sweep(database_url: str) -> int:
    """``app exams sweep``: every attempt past its time-up closed, each in its own transaction."""
    from app.db import make_engine, make_sessionmaker
    from app.exams.tasks import sweep_all

    engine = make_engine(database_url)
    try:
        return await sweep_all(make_sessionmaker(engine))
    finally:
        await engine.dispose()


@exams.command("sweep")
def exams_sweep() -> None:
    """Close (and grade) every open attempt past its time-up; the server also does this every 30 s."""
    from app.settings import get_settings

    closed = run(command_sweep, get_settings().database_url)
    click.echo(f"closed {closed} attempts past their time-up")
