"""`app certificates ...`: offline QR verification, signing keys, listing, card files."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from app.cli.base import cli, echo_json, session

T = TypeVar("T")


def _with_session(fn: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        async with session() as db:
            return await fn(db)

    return asyncio.run(go())


@cli.group("certificates")
def certificates() -> None:
    """Certificates (执法证件): verify QR codes offline, signing keys, cards."""


@certificates.command("verify-qr")
@click.argument("source")
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The published JWK set (/.well-known/jwks.json saved to a file). Default: this installation's keys.",
)
@click.option("--json", "as_json", is_flag=True)
def verify_qr(source: str, keys_file: str | None, as_json: bool) -> None:
    """Check a QR text, or a QR image file, with only the public keys. Exit 0 genuine, 1 otherwise."""
    from app.certificates import qr, signing
    from app.lib.clock import today

    texts: list[str]
    path = Path(source)
    if len(source) < 4096 and path.is_file():
        try:
            texts = qr.read_qr(path.read_bytes())
        except ValueError as e:
            click.echo(str(e), err=True)
            sys.exit(1)
        if not texts:
            click.echo("图片中没有找到二维码", err=True)
            sys.exit(1)
    else:
        texts = [source.strip()]
    if keys_file:
        try:
            jwks = json.loads(Path(keys_file).read_text(encoding="utf-8"))
            if not isinstance(jwks, dict):
                raise ValueError("not an object")
        except ValueError as e:
            click.echo(f"公钥文件不是有效的 JWK Set：{e}", err=True)
            sys.exit(2)
    else:
        from app.certificates.keys import jwks as load_jwks

        jwks = _with_session(load_jwks)
    ok = True
    for text in texts:
        v = signing.verify_payload(text, jwks, now=today())
        ok = ok and v.ok
        if as_json:
            f = v.fields
            echo_json(
                {
                    "ok": v.ok,
                    "outcome": v.outcome.value,
                    "reason": v.reason_zh,
                    "kid": v.kid,
                    "number": f.number if f else None,
                    "name": f.name if f else None,
                    "agency": f.agency if f else None,
                    "valid_from": f.valid_from.isoformat() if f else None,
                    "valid_until": f.valid_until.isoformat() if f else None,
                },
            )
        else:
            click.echo(("真实 " if v.ok else "无法验证 ") + f"[{v.outcome.value}] {v.reason_zh}")
            if v.fields:
                f = v.fields
                click.echo(
                    f"  证号 {f.number} · {f.name} · {f.agency} · {f.kind.label} · "
                    f"{f.valid_from} 至 {f.valid_until} · 密钥 {v.kid}"
                )
    sys.exit(0 if ok else 1)


@certificates.group("keys")
def keys_group() -> None:
    """QR signing keys: rotate, list, retire."""


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """Every key: kid, current, created, retired (never the private part)."""
    from app.certificates.keys import key_list

    rows = _with_session(key_list)
    if as_json:
        echo_json(
            [
                {
                    "kid": r.kid,
                    "current": r.is_current,
                    "x": r.public_x,
                    "created_at": r.created_at.isoformat(),
                    "retired_on": r.retired_on.isoformat() if r.retired_on else None,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        click.echo(
            "no signing keys yet (the first is made when the first card is issued, or by `keys rotate`)"
        )
    for r in rows:
        state = "current" if r.is_current else (f"retired {r.retired_on}" if r.retired_on else "verifies")
        click.echo(f"{r.kid}  {state:<20}  created {r.created_at:%Y-%m-%d %H:%M}")


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Make a new current key; older keys keep verifying their cards until retired."""
    from app.certificates.keys import key_rotate
    from app.lib.actor import SYSTEM
    from app.settings import get_settings

    async def go(db: Any) -> str:
        row = await key_rotate(db, secret_key=get_settings().secret_key, actor=SYSTEM)
        return str(row.kid)

    click.echo(f"new current signing key {_with_session(go)}")


@keys_group.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Retire a key: QR codes signed with it no longer verify (holders need a renewed card)."""
    from app.certificates.keys import key_retire
    from app.lib.actor import SYSTEM
    from app.lib.clock import today
    from app.lib.errors import DomainError

    async def go(db: Any) -> None:
        await key_retire(db, kid=kid, on=today(), actor=SYSTEM)

    try:
        _with_session(go)
    except DomainError as e:
        raise click.ClickException(e.message) from e
    click.echo(f"key {kid} retired")


@certificates.command("list")
@click.option(
    "--status",
    type=click.Choice(["valid", "suspended", "revoked", "cancelled", "expired", "lost"]),
    default=None,
)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(status: str | None, limit: int, as_json: bool) -> None:
    """Certificates, newest first, with their effective status today."""
    from app.certificates.rules import CertificateStatus
    from app.certificates.selectors import certificate_list
    from app.lib.security import system_principal

    async def go(db: Any) -> Any:
        return await certificate_list(
            db,
            system_principal(),
            status=CertificateStatus(status) if status else None,
            per_page=limit,
        )

    items, total = _with_session(go)
    if as_json:
        echo_json(
            [
                {
                    "number": c.number,
                    "kind": c.kind.value,
                    "name": c.holder_name,
                    "agency": c.agency_name,
                    "valid_from": c.valid_from.isoformat(),
                    "valid_until": c.valid_until.isoformat(),
                    "status": c.status.value,
                }
                for c in items
            ],
        )
        return
    for c in items:
        click.echo(f"{c.number}\t{c.status.value}\t{c.holder_name}\t{c.agency_name}\t{c.valid_until}")
    click.echo(f"{len(items)} of {total}", err=True)


async def _by_number(db: Any, number: str) -> Any:
    from sqlalchemy import select

    from app.certificates.models import Certificate

    return await db.scalar(select(Certificate).where(Certificate.number == number))


@certificates.command("qr")
@click.argument("number")
def qr_cmd(number: str) -> None:
    """Print the QR content (the signed URL) of a certificate."""
    cert = _with_session(lambda db: _by_number(db, number))
    if cert is None:
        raise click.ClickException(f"no certificate {number}")
    click.echo(cert.qr_text)


@certificates.command("card")
@click.argument("number")
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Copy the file here too.")
def card_cmd(number: str, fmt: str, out: str | None) -> None:
    """Render the card (under certificates/out/) and print its path."""
    from app.certificates.services.cards import card_file_for

    async def go(db: Any) -> Path | None:
        cert = await _by_number(db, number)
        return None if cert is None else await card_file_for(db, cert, fmt)

    path = _with_session(go)
    if path is None:
        raise click.ClickException(f"no certificate {number}")
    if out:
        Path(out).write_bytes(path.read_bytes())
        path = Path(out)
    click.echo(str(path))
