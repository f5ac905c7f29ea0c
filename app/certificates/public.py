"""Public verification (网上查询): the hot path behind ``/v/<number>`` and the scanned-code check.

Every scan of a card lands here, so the lookup is one Core statement on a pooled connection (no
ORM session, no identity map), and no signature is verified per request: the certificate row
carries ``token`` = SHA-256 of the QR fragment issued, and the page's script sends the fragment
it was opened with (browsers never send it by themselves) to compare.

Nothing here reveals an ID number or an internal id: the answer is what the card itself shows.
"""

from __future__ import annotations

import datetime as dt
import hmac
import sqlite3
from typing import Any, NamedTuple

from app.certificates import rules, signing
from app.certificates.rules import CertificateKind, CertificateStatus
from app.certificates.schemas import CheckOut, PublicCertificate
from app.db import DriverPool, open_sqlite_reader

LOOKUP_SQL = (
    "SELECT c.number, c.kind, c.holder_name, c.agency_name, c.field, c.area, c.authority_name, "
    "c.valid_from, c.valid_until, c.status, c.token, o.photo_path "
    "FROM certificates c JOIN officers o ON o.id = c.officer_id WHERE c.number = {p}"
)
"""The public lookup (``PublicRow``'s columns), with the driver's placeholder for ``{p}``."""
SQLITE_LOOKUP = LOOKUP_SQL.format(p="?")
POSTGRES_LOOKUP = LOOKUP_SQL.format(p="$1")


class PublicRow(NamedTuple):
    number: str
    kind: str
    holder_name: str
    agency_name: str
    field: str
    area: str
    authority_name: str
    valid_from: dt.date
    valid_until: dt.date
    status: str
    token: str
    photo_path: str | None


class PublicLookup:
    """The certificate lookup of the public pages, straight on the driver (asyncpg / sqlite3).

    Every scan lands here, so it skips what the ORM session and SQLAlchemy's pool add per request
    (the pool's pre-ping alone doubles the round trips): a small asyncpg pool of its own on
    PostgreSQL; on SQLite one read-only, memory-mapped connection per process, queried in place
    (``app.db.open_sqlite_reader``: a point lookup by the unique index takes tens of microseconds,
    less than a hop to a thread).
    """

    def __init__(self, database_url: str, *, pool_size: int = 10, driver: DriverPool | None = None) -> None:
        self.database_url = database_url
        self.is_sqlite = database_url.startswith("sqlite")
        self._driver = None
        if not self.is_sqlite:
            self._driver = driver or DriverPool(database_url, size=pool_size)
        self._sqlite: sqlite3.Connection | None = None

    async def get(self, number: str) -> PublicRow | None:
        if not number_ok(number):
            return None
        if self.is_sqlite:
            conn = self._sqlite or self._open_sqlite()
            row = conn.execute(SQLITE_LOOKUP, (number,)).fetchone()
            if row is None:
                return None
            r = list(row)
            r[7], r[8] = dt.date.fromisoformat(r[7]), dt.date.fromisoformat(r[8])
            return PublicRow(*r)
        assert self._driver is not None
        found = await self._driver.fetchrow(POSTGRES_LOOKUP, number)
        return None if found is None else PublicRow(*found)

    def _open_sqlite(self) -> sqlite3.Connection:
        conn = self._sqlite = open_sqlite_reader(self.database_url)
        return conn

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None


STATUS_LABELS = {
    CertificateStatus.VALID: "有效",
    CertificateStatus.SUSPENDED: "暂扣",
    CertificateStatus.REVOKED: "吊销",
    CertificateStatus.CANCELLED: "注销",
    CertificateStatus.EXPIRED: "已过期",
    CertificateStatus.LOST: "遗失作废",
}
"""What the public page prints in large type (过期 reads 已过期 to a passer-by)."""

STATUS_NOTES = {
    CertificateStatus.VALID: "证件有效，持证人可以从事证件载明范围内的行政执法活动。",
    CertificateStatus.SUSPENDED: "证件已被暂扣，暂扣期间持证人不得从事行政执法活动。",
    CertificateStatus.REVOKED: "证件已被吊销，持证人不得从事行政执法活动。",
    CertificateStatus.CANCELLED: "证件已注销，持证人不得从事行政执法活动。",
    CertificateStatus.EXPIRED: "证件已超过有效期，持证人不得凭此证从事行政执法活动。",
    CertificateStatus.LOST: "证件已挂失作废，持此证件者不得从事行政执法活动。",
}

UNVERIFIABLE = "无法验证"


def number_ok(number: str) -> bool:
    return bool(rules.NUMBER_CHARS.fullmatch(number))


def status_of(row: Any, today: dt.date) -> CertificateStatus:
    return rules.effective_status(row.status, row.valid_until, today)


def public_view(row: Any, today: dt.date) -> PublicCertificate:
    status = status_of(row, today)
    kind = CertificateKind(row.kind)
    return PublicCertificate(
        number=row.number,
        kind=kind,
        kind_label=kind.label,
        name=row.holder_name,
        agency=row.agency_name,
        field=row.field,
        area=row.area,
        issuing_authority=row.authority_name,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=status,
        status_label=STATUS_LABELS[status],
        has_photo=bool(row.photo_path),
        photo_url=f"/v/{row.number}/photo" if row.photo_path else None,
    )


def check(
    row: Any, fragment: str, today: dt.date, jwks: dict[str, Any] | None = None, base_url: str = ""
) -> CheckOut:
    """Is ``fragment`` (location.hash) the code currently issued under this number?

    A constant-time comparison with the stored token. Only when it differs, and ``jwks`` is
    given, is the signature checked, to tell an older genuine code of this number (the card was
    renewed since) from a forgery. Either way the answer is 无法验证: only the current code counts.
    """
    fragment = fragment.removeprefix("#")
    if row is None:
        return CheckOut("", False, "unknown", UNVERIFIABLE, "未查到该证号，此二维码不是发证机关签发的证件。")
    status = status_of(row, today)
    if fragment and hmac.compare_digest(signing.token_of(fragment), row.token):
        return CheckOut(
            row.number,
            True,
            status.value,
            STATUS_LABELS[status],
            "二维码与发证机关签发的证件一致。" + STATUS_NOTES[status],
        )
    message = "二维码内容与发证机关签发的证件不符，可能被篡改或伪造，请勿信任此证件。"
    if jwks is not None and fragment and base_url:
        v = signing.verify_payload(f"{base_url.rstrip('/')}/v/{row.number}#{fragment}", jwks, now=today)
        if v.fields is not None:  # genuine signature, but not the code issued now
            message = "该二维码是此证号较早签发的版本（证件已换发），已不作为有效凭证，请持证人出示新证。"
    return CheckOut(row.number, False, "unverifiable", UNVERIFIABLE, message)
