"""`app certificates verify-qr`: offline with a saved JWK set; exit 0 genuine, 1 with the reason otherwise."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from app.certificates import qr, signing
from app.certificates.rules import CertificateKind
from app.cli import cli

TODAY = dt.date.today()


def _card(tmp_path: Path) -> tuple[str, Path, Path]:
    kid, pem, jwk = signing.generate_key()
    fields = signing.CardFields(
        number="3200002026000007",
        name="李明",
        agency="甲市市场监督管理局",
        valid_from=TODAY - dt.timedelta(days=10),
        valid_until=TODAY + dt.timedelta(days=1000),
        kind=CertificateKind.ENFORCEMENT,
    )
    text = signing.sign_payload(fields, pem, kid, "https://zfz.example.gov.cn")
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(signing.jwks_document([signing.PublishedKey.from_jwk(jwk)])))
    image = tmp_path / "qr.png"
    image.write_bytes(qr.qr_png(text))
    return text, keys, image


def test_genuine_string_and_image(tmp_path: Path) -> None:
    text, keys, image = _card(tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["certificates", "verify-qr", text, "--keys", str(keys)])
    assert r.exit_code == 0, r.output
    assert "真实" in r.output and "李明" in r.output
    r = runner.invoke(cli, ["certificates", "verify-qr", str(image), "--keys", str(keys), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["number"] == "3200002026000007"


def test_altered_forged_and_retired_are_refused(tmp_path: Path) -> None:
    text, keys, _ = _card(tmp_path)
    runner = CliRunner()
    i = text.index("#") + 5
    altered = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    r = runner.invoke(cli, ["certificates", "verify-qr", altered, "--keys", str(keys)])
    assert r.exit_code == 1 and "无法验证" in r.output
    _kid, _pem, other = signing.generate_key()
    other_keys = tmp_path / "other.json"
    other_keys.write_text(json.dumps({"keys": [other]}))
    r = runner.invoke(cli, ["certificates", "verify-qr", text, "--keys", str(other_keys)])
    assert r.exit_code == 1 and "unknown_key" in r.output
    doc = json.loads(keys.read_text())
    retired = {"keys": [], "retired": [{"kid": doc["keys"][0]["kid"], "retired_on": "2026-01-01"}]}
    keys.write_text(json.dumps(retired))
    r = runner.invoke(cli, ["certificates", "verify-qr", text, "--keys", str(keys)])
    assert r.exit_code == 1 and "停用" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    r = runner.invoke(cli, ["certificates", "verify-qr", text, "--keys", str(bad)])
    assert r.exit_code == 2
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    r = runner.invoke(cli, ["certificates", "verify-qr", str(junk), "--keys", str(keys)])
    assert r.exit_code == 1
