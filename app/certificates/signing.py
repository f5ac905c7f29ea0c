"""Signed QR payloads of certificate cards (Ed25519), key ids, the published JWK set and tokens.

Payload format, version 1 — one URL that an ordinary phone camera opens::

    {base_url}/v/{number}#{body}.{signature}

    https://zfz.sft.gd.gov.cn/v/4401002026000123#MXxkUVpXcV9ZS3xFfDIwMjYwMzAxfDIwMzEwMjI4fOW8oOS4iXzlub_lt57luILluILlnLrnm5HnnaPnrqHnkIblsYA.<86 chars>

- ``body`` is base64url (no padding) of the UTF-8 text
  ``1|{kid}|{kind code}|{valid_from YYYYMMDD}|{valid_until YYYYMMDD}|{name}|{agency}``.
  The number is not repeated in the body: it is in the path, and the path is signed (below).
- ``signature`` is base64url (no padding, 86 chars) of the Ed25519 signature over
  ``b"zhifa-card-qr/1\\n" + UTF-8 of everything before the final "."`` — scheme, host, path, number
  and body. Changing any character of the URL (host included) breaks it. The context prefix keeps
  the key from ever signing something that could be mistaken for another kind of message.
- Encodings must be canonical: a base64url string that does not re-encode to itself (spare bits,
  padding, whitespace) is malformed, so no two different QR texts carry the same signature.

Why the signed part travels in the **fragment** (after ``#``): browsers never send the fragment to
the server. The phone opens ``/v/{number}``, and the server page shows the *live* status from the
database (暂扣, 吊销... which a signature printed years ago cannot know), while an offline verifier
(``app certificates verify-qr``) reads the whole text and checks the signature with nothing but the
published keys. The server never verifies a signature per request: it stores ``token_of(qr_text)``
per certificate at issuance; the public page's script hashes ``location.hash`` (SHA-256, WebCrypto)
and compares it with the stored token to say whether this is the card currently issued under that
number (a renewed card keeps its number but gets a new QR, so an old card's QR no longer matches).

Why base64 for Chinese names: the QR text stays pure ASCII, so no phone decoder has to guess the
character set (byte-mode QR has no reliable charset marker), and it costs 4 characters per Chinese
character against 9 for percent-encoding. With a 3-character name and a 10-character agency the
text is about 230 characters: QR version 11 at error correction M.

Keys. ``kid`` is the first 8 characters of the RFC 7638 thumbprint of the public JWK, short enough
for the QR. ``/.well-known/jwks.json`` lists every key that still verifies, as RFC 8037 OKP keys.
A retired key (停用) is *removed* from ``keys`` — so a standard JOSE library can never accept it — and
listed by kid in the extra top-level member ``"retired": [{"kid": ..., "retired_on": "YYYY-MM-DD"}]``
(RFC 7517 §5: members a reader does not understand are ignored), so this verifier can say "retired"
rather than "unknown". For robustness an entry of ``keys`` carrying ``"retired": true`` is also
treated as retired. Rotation: a new key signs new cards; older keys stay in ``keys`` and their cards
verify until the authority retires them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.certificates.rules import NUMBER_CHARS, CertificateKind
from app.lib.clock import beijing_date

VERSION = "1"
CONTEXT = b"zhifa-card-qr/1\n"
SEPARATOR = "|"
MAX_NAME = 40
MAX_AGENCY = 80
KID_LENGTH = 8

_B64 = r"[A-Za-z0-9_-]"
_QR = re.compile(
    rf"(?P<base>https?://[^#\s]+?)/v/(?P<number>[0-9A-Za-z-]{{1,40}})#(?P<body>{_B64}+)\.(?P<sig>{_B64}{{86}})"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: anything that does not re-encode to ``text`` is refused."""
    if not re.fullmatch(rf"{_B64}*", text):
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("not base64url") from e
    if b64url(data) != text:
        raise ValueError("non-canonical base64url")
    return data


# ---------------------------------------------------------------- keys


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """RFC 8037 OKP JWK of a public key, with its ``kid``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = b64url(raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid_of(x), "use": "sig", "alg": "EdDSA"}


def kid_of(x: str) -> str:
    """First ``KID_LENGTH`` characters of the RFC 7638 JWK thumbprint (SHA-256) of the public key."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())[:KID_LENGTH]


def generate_key() -> tuple[str, bytes, dict[str, str]]:
    """A new signing key: ``(kid, private key as unencrypted PKCS#8 PEM, public JWK)``.

    Store the PEM as a secret (never in the database in clear, never published).
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = public_jwk(key.public_key())
    return jwk["kid"], pem, jwk


def load_private_key(private_key: Ed25519PrivateKey | bytes | str) -> Ed25519PrivateKey:
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key
    data = private_key.encode() if isinstance(private_key, str) else private_key
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("签名密钥不是 Ed25519 私钥")
    return key


@dataclass(frozen=True)
class PublishedKey:
    """One key as the authority keeps it for publication: public part and retirement date."""

    kid: str
    x: str
    retired_on: dt.date | None = None

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], retired_on: dt.date | None = None) -> PublishedKey:
        return cls(kid=str(jwk["kid"]), x=str(jwk["x"]), retired_on=retired_on)


def jwks_document(keys: Iterable[PublishedKey]) -> dict[str, Any]:
    """The JWK set for ``/.well-known/jwks.json``: live keys in ``keys``, retired ones by kid only."""
    live: list[dict[str, str]] = []
    retired: list[dict[str, str]] = []
    for k in keys:
        if k.retired_on is None:
            live.append(
                {"kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid, "use": "sig", "alg": "EdDSA"}
            )
        else:
            retired.append({"kid": k.kid, "retired_on": k.retired_on.isoformat()})
    doc: dict[str, Any] = {"keys": live}
    if retired:
        doc["retired"] = retired
    return doc


# ---------------------------------------------------------------- payload


@dataclass(frozen=True)
class CardFields:
    """What the QR asserts: exactly what the card shows, never the ID number."""

    number: str
    name: str
    agency: str
    valid_from: dt.date
    valid_until: dt.date
    kind: CertificateKind


def _check_fields(f: CardFields) -> None:
    if not NUMBER_CHARS.fullmatch(f.number):
        raise ValueError(f"证号“{f.number}”含有不允许的字符")
    for label, value, limit in (("姓名", f.name, MAX_NAME), ("单位", f.agency, MAX_AGENCY)):
        if not value or value != value.strip():
            raise ValueError(f"{label}不能为空，首尾不能有空格")
        if len(value) > limit:
            raise ValueError(f"{label}超过 {limit} 个字")
        if SEPARATOR in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"{label}含有不允许的字符")
    if f.valid_until < f.valid_from:
        raise ValueError("有效期截止日期早于起始日期")


def _body_text(f: CardFields, kid: str) -> str:
    return SEPARATOR.join(
        [
            VERSION,
            kid,
            CertificateKind(f.kind).code,
            f.valid_from.strftime("%Y%m%d"),
            f.valid_until.strftime("%Y%m%d"),
            f.name,
            f.agency,
        ]
    )


def sign_payload(
    fields: CardFields, private_key: Ed25519PrivateKey | bytes | str, kid: str, base_url: str
) -> str:
    """The QR text of a card: ``{base_url}/v/{number}#{body}.{signature}`` (module docstring)."""
    _check_fields(fields)
    base = base_url.rstrip("/")
    if not re.fullmatch(r"https?://[^#\s/]+(/[^#\s]*)?", base):
        raise ValueError(f"PUBLIC_BASE_URL“{base_url}”不是有效的网址")
    key = load_private_key(private_key)
    if public_jwk(key.public_key())["kid"] != kid:
        raise ValueError(f"密钥编号“{kid}”与签名私钥不符")
    signed = f"{base}/v/{fields.number}#{b64url(_body_text(fields, kid).encode())}"
    signature = key.sign(CONTEXT + signed.encode())
    return f"{signed}.{b64url(signature)}"


class Outcome(StrEnum):
    GENUINE = "genuine"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    RETIRED_KEY = "retired_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Verification:
    """The answer of the offline verifier. ``fields`` only when the signature is genuine."""

    ok: bool
    outcome: Outcome
    reason_zh: str
    fields: CardFields | None = None
    kid: str | None = None
    base_url: str | None = None


_OFFLINE_NOTE = (
    "离线核验只能证明二维码由发证机关签发且未被篡改；证件当前是否被暂扣、吊销或注销，请以网上查询结果为准。"
)


def _no(outcome: Outcome, reason: str, **kw: Any) -> Verification:
    return Verification(ok=False, outcome=outcome, reason_zh=reason, **kw)


def _today(now: dt.date | dt.datetime) -> dt.date:
    if isinstance(now, dt.datetime):
        return beijing_date(now)
    return now


def _parse_date(text: str) -> dt.date:
    if not re.fullmatch(r"\d{8}", text):
        raise ValueError(text)
    return dt.datetime.strptime(text, "%Y%m%d").date()


def _find_key(jwks: Mapping[str, Any], kid: str) -> tuple[Ed25519PublicKey | None, str | None]:
    """(public key, None) when live; (None, retired_on or "") when retired; (None, None) unknown."""
    for entry in jwks.get("retired") or []:
        if isinstance(entry, Mapping) and entry.get("kid") == kid:
            return None, str(entry.get("retired_on") or "")
    for entry in jwks.get("keys") or []:
        if not isinstance(entry, Mapping) or entry.get("kid") != kid:
            continue
        if entry.get("retired"):
            return None, str(entry.get("retired_on") or "")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        try:
            return Ed25519PublicKey.from_public_bytes(b64url_decode(str(entry.get("x", "")))), None
        except ValueError:
            continue
    return None, None


def verify_payload(qr_text: str, jwks: Mapping[str, Any], *, now: dt.date | dt.datetime) -> Verification:
    """Check a QR text offline with only the published keys. Never says genuine unless it is."""
    m = _QR.fullmatch(qr_text)
    if not m:
        return _no(Outcome.MALFORMED, "二维码内容格式不正确，不是本系统签发的执法证件二维码。")
    try:
        body = b64url_decode(m["body"]).decode("utf-8")
        signature = b64url_decode(m["sig"])
        parts = body.split(SEPARATOR)
        if parts[0] != VERSION:
            return _no(Outcome.MALFORMED, f"不支持的二维码版本“{parts[0][:8]}”，请使用最新的核验工具。")
        _, kid, kind_code, valid_from, valid_until, name, agency = parts
        fields = CardFields(
            number=m["number"],
            name=name,
            agency=agency,
            valid_from=_parse_date(valid_from),
            valid_until=_parse_date(valid_until),
            kind=CertificateKind.from_code(kind_code),
        )
        if len(signature) != 64 or not re.fullmatch(rf"{_B64}{{{KID_LENGTH}}}", kid):
            raise ValueError("length")
    except ValueError:  # includes UnicodeDecodeError and a wrong number of parts
        return _no(Outcome.MALFORMED, "二维码内容格式不正确或已损坏，不能认定为真实证件。")

    key, retired_on = _find_key(jwks, kid)
    if retired_on is not None:
        when = f"已于 {retired_on} " if retired_on else "已"
        return _no(
            Outcome.RETIRED_KEY,
            f"签发该二维码的密钥（编号 {kid}）{when}停用，该二维码不再作为有效凭证，请持证人换领新证。",
            kid=kid,
        )
    if key is None:
        return _no(
            Outcome.UNKNOWN_KEY,
            f"签名密钥（编号 {kid}）不在发证机关公布的公钥中，无法确认真伪，不能认定为真实证件。",
            kid=kid,
        )
    signed = qr_text[: qr_text.rindex(".")]
    try:
        key.verify(signature, CONTEXT + signed.encode())
    except InvalidSignature:
        return _no(Outcome.BAD_SIGNATURE, "签名校验失败：二维码内容被篡改或系伪造，不是真实证件。", kid=kid)

    today, base = _today(now), m["base"]
    genuine: dict[str, Any] = {"fields": fields, "kid": kid, "base_url": base}
    if today < fields.valid_from:
        return _no(
            Outcome.NOT_YET_VALID,
            f"证件自 {fields.valid_from:%Y年%m月%d日} 起生效，目前尚未生效。",
            **genuine,
        )
    if today > fields.valid_until:
        return _no(
            Outcome.EXPIRED, f"证件已于 {fields.valid_until:%Y年%m月%d日} 到期，已过有效期。", **genuine
        )
    return Verification(
        ok=True,
        outcome=Outcome.GENUINE,
        reason_zh=f"二维码真实：由发证机关签发，内容未被篡改，证件在有效期内。{_OFFLINE_NOTE}",
        **genuine,
    )


def token_of(qr_text: str) -> str:
    """The token the server stores per certificate: base64url SHA-256 of the fragment (43 chars).

    Computed from the part after ``#`` because that is what the public page's script can read
    (``location.hash``); accepts the whole QR text or the fragment alone, with or without ``#``.
    """
    fragment = qr_text.split("#", 1)[1] if "#" in qr_text else qr_text
    return b64url(hashlib.sha256(fragment.encode("utf-8")).digest())


def sign_payloads(
    fields: Iterable[CardFields], private_key: Ed25519PrivateKey | bytes | str, kid: str, base_url: str
) -> list[str]:
    """``sign_payload`` for many cards with one key (bulk issuance, demo data): the key is checked once."""
    key = load_private_key(private_key)
    items = iter(fields)
    first = next(items, None)
    if first is None:
        return []
    base = base_url.rstrip("/")
    out = [sign_payload(first, key, kid, base_url)]
    for f in items:
        _check_fields(f)
        signed = f"{base}/v/{f.number}#{b64url(_body_text(f, kid).encode())}"
        out.append(f"{signed}.{b64url(key.sign(CONTEXT + signed.encode()))}")
    return out


CardRow = tuple[str, str, str, dt.date, dt.date, str]
"""A card's signed fields as a plain tuple ``(number, name, agency, valid_from, valid_until, kind)``."""


def sign_card_rows(rows: Iterable[CardRow], pem: bytes, kid: str, base_url: str) -> list[str]:
    """``sign_payloads`` over plain tuples: what a process pool sends and unpickles cheaply."""
    return sign_payloads(
        (
            CardFields(n, name, agency, start, end, CertificateKind(kind))
            for n, name, agency, start, end, kind in rows
        ),
        pem,
        kid,
        base_url,
    )
