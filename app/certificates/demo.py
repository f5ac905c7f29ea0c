"""Certificate demo data: exam passes, and cards in every status, so the public page can be tried at once.

Called by ``app demo-data`` after officers and training are loaded, through the same bulk writer
(COPY on PostgreSQL, executemany on SQLite). Deterministic from the seed except the signing key.

- Every active officer of an allowed staff type gets a ``legacy`` exam pass (ExamQualification),
  except about one in twenty (so the apply page shows "no valid exam pass").
- About four in five of them hold an enforcement card (supervision posts: a supervision card),
  issued between 2021 and the reference date; by status: mostly 有效, and some 暂扣 · 吊销 (with the
  reapplication bar) · 注销 · 已过期 (issued 2021, past its fifth year) · 遗失作废 (with its reissue).
- QR payloads are signed in bulk (Ed25519 with its text is ~40 µs a card here): a province-sized
  load signs in worker processes (forkserver: never a fork of this threaded process), each chunk
  as soon as it is drawn, while the caller loads the other domains; the cards are written when
  ``finish`` is awaited. Small loads sign here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import forkserver
from typing import Any

from sqlalchemy import text

from app.certificates import rules, signing
from app.certificates.keys import seal
from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib.bulk import BulkLoad, Row, Write
from app.lib.policy import DEFAULT_POLICY

QUAL_COLUMNS = (
    "id", "officer_id", "field", "passed_on", "valid_until", "score", "source", "attempt_id", "status",
    "removed_on", "removed_reason", "created_at",
)  # fmt: skip
CERT_COLUMNS = (
    "id", "number", "kind", "officer_id", "authority_id", "agency_id", "holder_name", "agency_name", "field",
    "area", "authority_name", "valid_from", "valid_until", "issued_on", "status", "status_changed_on",
    "qr_text", "token", "kid", "replaces_id", "version", "created_at", "updated_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "id", "certificate_id", "action", "from_status", "to_status", "ground", "evidence", "cancel_reason",
    "effective_on", "actor_id", "actor_name", "at",
)  # fmt: skip
BAR_COLUMNS = ("id", "officer_id", "certificate_id", "revoked_on", "barred_until", "created_at")
KEY_COLUMNS = ("id", "kid", "public_x", "private_key_enc", "is_current", "created_at", "retired_on")
SEQ_COLUMNS = ("key", "last_value")
CHUNK = 20_000
POOL_FROM = 2 * CHUNK
"""With fewer card holders the cards are signed in this process: starting worker processes would
cost more than it saves."""

# (status, share of cards, ground, evidence, cancel reason)
_CHANGES = [
    (CertificateStatus.SUSPENDED, 0.03, "年度考核不称职，暂扣执法证", "年度考核结果通知书", ""),
    (CertificateStatus.REVOKED, 0.01, "以欺骗手段取得执法证", "调查报告", ""),
    (CertificateStatus.CANCELLED, 0.02, "调离执法岗位", "调动通知", "transferred"),
    (CertificateStatus.LOST, 0.01, "持证人报告证件遗失", "遗失声明", ""),
]


@dataclass
class CertificatesLoaded:
    qualifications: int = 0
    certificates: int = 0
    by_status: dict[str, int] | None = None
    examples: dict[str, str] | None = None
    """status → one certificate number in it, for the report."""
    worker_cpu: float = 0.0
    """CPU seconds the signing workers spent (not part of this process's own time)."""


Signed = list[tuple[str, str]]
"""Per card its QR text and its token."""


@dataclass
class PendingCertificates:
    """Cards drawn and the exam passes written; the QR signatures are being made (``finish``)."""

    write: Write
    loaded: CertificatesLoaded
    cert_rows: list[list[Any]]
    signer: tuple[bytes, str, str]
    """The private key's PEM, its kid and the public base URL."""
    chunks: list[tuple[int, asyncio.Future[tuple[Signed, float]] | list[signing.CardRow], int]] = field(
        default_factory=list
    )
    """(index of its first card, its signatures to come or its cards to sign here, its size)."""
    events: list[Row] = field(default_factory=list)
    bars: list[Row] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)
    pool: ProcessPoolExecutor | None = None

    def sign(self, chunk: list[signing.CardRow]) -> None:
        """Have the next ``chunk`` of drawn cards signed: by a worker, or by ``finish`` without a pool."""
        if not chunk:
            return
        start = self.chunks[-1][0] + self.chunks[-1][2] if self.chunks else 0
        if self.pool is None:
            self.chunks.append((start, chunk, len(chunk)))  # signed by finish(), here
            return
        pem, kid, base_url = self.signer
        submitted: Future[tuple[Signed, float]] = self.pool.submit(_sign_chunk, chunk, pem, kid, base_url)
        self.chunks.append((start, asyncio.wrap_future(submitted), len(chunk)))

    async def finish(self) -> CertificatesLoaded:
        """Write the cards as their signatures come in, then their events, bars and counters."""
        try:
            for start, chunk, _size in self.chunks:
                if isinstance(chunk, list):
                    signed, _cpu = _sign_chunk(chunk, *self.signer)
                else:
                    signed, cpu = await chunk
                    self.loaded.worker_cpu += cpu
                rows = self.cert_rows[start : start + len(signed)]
                for row, (qr_text, token) in zip(rows, signed, strict=True):
                    row[16], row[17] = qr_text, token
                await self.write("certificates", CERT_COLUMNS, [tuple(r) for r in rows])
        finally:
            self.close()
        await self.write("certificate_events", EVENT_COLUMNS, self.events)
        await self.write("certificate_reapplication_bars", BAR_COLUMNS, self.bars)
        await self.write("certificate_number_sequences", SEQ_COLUMNS, list(self.sequences.items()))
        return self.loaded

    def close(self) -> None:
        """Stop the workers (a failed load does not wait for signatures nobody will write)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


def _sign_chunk(rows: list[signing.CardRow], pem: bytes, kid: str, base_url: str) -> tuple[Signed, float]:
    """A worker's part: the QR texts and tokens of a chunk and the CPU seconds they took."""
    started = time.process_time()
    texts = signing.sign_card_rows(rows, pem, kid, base_url)
    signed = [(qr_text, signing.token_of(qr_text)) for qr_text in texts]
    return signed, time.process_time() - started


def _signing_context() -> Any:
    # forkserver, not fork: this process runs threads (the driver's, the generator's), and a fork
    # copies their locks in whatever state they are (Python 3.12 warns). The server imports the
    # main module and the signing code once; each worker is forked from it ready to sign.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "app.certificates.demo"])
    return context


def prepare_signing(officers: int) -> None:
    """Start the signing workers' server now when a load of ``officers`` may sign in workers (its
    card holders are about five in six officers): its imports (~0.7 s) then run beside the
    officers' load instead of ahead of the first signature. Unused, it ends with this process."""
    if officers >= POOL_FROM:
        _signing_context()
        forkserver.ensure_running()


def _signing_pool(holders: int) -> ProcessPoolExecutor | None:
    if holders < POOL_FROM:
        return None
    return ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), mp_context=_signing_context())


async def start_certificates_demo(
    run: BulkLoad, *, officers: Sequence[Row], secret_key: str, base_url: str
) -> PendingCertificates:
    """Draw the exam passes and the cards, write the passes and start signing the cards.

    ``officers``: every officer loaded, in id order, as (id, name, agency_id, field, area, post,
    employment_status, staff_type) (``PeopleLoaded.roster``: not read back from the database)."""
    conn, write, seed, as_of, date_out, now = run
    rng = random.Random(seed + 5)
    loaded = CertificatesLoaded(by_status={}, examples={})
    excluded = {s.value for s in DEFAULT_POLICY.excluded_staff_types}

    agencies = {
        r.id: r
        for r in (
            await conn.execute(
                text("SELECT id, name, path, region_code, is_issuing_authority, authority_name FROM agencies")
            )
        ).all()
    }

    def issuing(agency_id: int) -> Any:
        for part in reversed(agencies[agency_id].path.strip("/").split("/")):
            a = agencies.get(int(part))
            if a is not None and a.is_issuing_authority:
                return a
        return None

    authority_of = {agency_id: issuing(agency_id) for agency_id in agencies}

    # Exam passes (legacy): allowed staff types, in post or retired (a retired holder had one).
    # The loops below run per officer and per card: plain tuples and locals, each date bound once.
    rand = rng.random
    quals: list[Row] = []
    holders: list[Row] = []
    passes: dict[dt.date, tuple[Any, Any]] = {}  # pass date → (it, its end) as bound
    for officer in officers:
        officer_id, _name, _agency, field, _area, _post, employment, staff = officer
        if staff in excluded or employment not in ("active", "retired"):
            continue
        if officer_id > 5 and rand() < 0.05:
            continue  # no valid pass: the apply page names it
        passed = dt.date(as_of.year - 1 - int(rand() * 3), 1 + int(rand() * 12), 10)
        bound = passes.get(passed)
        if bound is None:
            bound = passes[passed] = (date_out(passed), date_out(rules.add_years(passed, 5)))
        quals.append(
            (len(quals) + 1, officer_id, field, *bound, None, "legacy", None, "valid", None, "", now)
        )
        holders.append(officer)
    loaded.qualifications = len(quals)

    # The signing key; chunks of cards go to the signers as they are drawn.
    kid, pem, jwk = signing.generate_key()
    pending = PendingCertificates(write, loaded, [], (pem, kid, base_url), pool=_signing_pool(len(holders)))
    try:
        _draw_cards(
            pending, holders, rand, as_of=as_of, agencies=agencies, authority_of=authority_of, date_out=date_out,
            now=now, kid=kid,
        )  # fmt: skip
        # The passes and the key are written while the first chunks are signed.
        await write("exam_qualifications", QUAL_COLUMNS, quals)
        await write(
            "certificate_signing_keys",
            KEY_COLUMNS,
            [(1, kid, jwk["x"], seal(pem, secret_key), True, now, None)],
        )
    except BaseException:
        pending.close()
        raise
    return pending


def _draw_cards(
    pending: PendingCertificates,
    holders: list[Row],
    rand: Callable[[], float],
    *,
    as_of: dt.date,
    agencies: dict[int, Any],
    authority_of: dict[int, Any],
    date_out: Callable[[dt.date], Any],
    now: Any,
    kid: str,
) -> None:
    """The cards of ``holders`` (about four in five), their events and bars, each chunk handed to
    ``pending.sign`` as soon as it is drawn."""
    loaded = pending.loaded
    cert_rows = pending.cert_rows
    events = pending.events
    bars = pending.bars
    sequences = pending.sequences

    template = DEFAULT_POLICY.certificate_number_template
    years = DEFAULT_POLICY.certificate_valid_years
    numbering: dict[tuple[str, int, str], Callable[[int], str]] = {}
    fields: list[signing.CardRow] = []
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}

    # Per agency: (its id, name, name as signed, its issuing authority's id, region, name).
    card_of: dict[int, tuple[int, str, str, int, str, str]] = {}
    for agency_id, agency in agencies.items():
        authority = authority_of[agency_id]
        if authority is not None:
            card_of[agency_id] = (agency.id, agency.name, agency.name[:80], authority.id, authority.region_code,
                                  authority.authority_name or authority.name)  # fmt: skip
    counters: dict[tuple[str, int], str] = {}  # (region, year) → its sequence's key
    spans: dict[dt.date, tuple[dt.date, dt.date]] = {}  # issue date → (valid from, valid until)

    def issue(o: Row, kind: CertificateKind, issued: dt.date, *, replaces: int | None = None,
              until: dt.date | None = None) -> int:  # fmt: skip
        officer_id, name, agency_id, field, area = o[:5]
        agency, agency_name, signed_agency, authority, region, authority_name = card_of[agency_id]
        year = issued.year
        key = counters.get((region, year))
        if key is None:
            key = counters[region, year] = f"{template}|region={region}|year={year}"
        seq = sequences[key] = sequences.get(key, 0) + 1
        scope = (region, year, kind.code)
        number_of = numbering.get(scope)
        if number_of is None:
            number_of = numbering[scope] = rules.number_formatter(template, *scope)
        number = number_of(seq)
        span = spans.get(issued)
        if span is None:
            span = spans[issued] = rules.validity(issued, years)
        valid_from, valid_until = span
        if until is not None:
            valid_until = until
        cert_id = len(cert_rows) + 1
        on = date_out(issued)
        kind_value = kind.value
        cert_rows.append(
            [cert_id, number, kind_value, officer_id, authority, agency, name, agency_name, field, area,
             authority_name, date_out(valid_from), date_out(valid_until), on, "valid", on, None, None, kid,
             replaces, 1, now, now]
        )  # fmt: skip
        fields.append((number, name, signed_agency, valid_from, valid_until, kind_value))
        events.append(
            (len(events) + 1, cert_id, "reissue" if replaces else "issue", "", "valid",
             "补发" if replaces else "申领经审核批准", "", "", on, None, "demo", now)
        )  # fmt: skip
        return cert_id

    def change(
        cert_id: int, status: CertificateStatus, ground: str, evidence: str, reason: str, on: dt.date
    ) -> None:
        row = cert_rows[cert_id - 1]
        events.append(
            (len(events) + 1, cert_id, _ACTION[status], "valid", status.value, ground, evidence, reason,
             date_out(on), None, "demo", now)
        )  # fmt: skip
        row[14], row[15] = status.value, date_out(on)

    back = [as_of - dt.timedelta(days=30 + d) for d in range(1400)]  # issue dates of recent cards
    for o in holders:
        special = o[0] <= 5
        if not special and rand() > 0.8:
            continue
        kind = CertificateKind.SUPERVISION if o[5] == "supervision" else CertificateKind.ENFORCEMENT
        r = rand()
        if not special and r < 0.02:
            issued = dt.date(2021, 1 + int(rand() * 8), 1 + int(rand() * 28))  # expired by now
        else:
            issued = back[int(rand() * 1400)]
        cert_id = issue(o, kind, issued)
        status = "valid" if issued.year > 2021 else "expired"
        if not special and status == "valid" and o[6] == "active":
            pick = rand()
            for st, share, ground, evidence, reason in _CHANGES:
                if pick < share:
                    on = issued + dt.timedelta(days=1 + int(rand() * max(1, (as_of - issued).days - 1)))
                    change(cert_id, st, ground, evidence, reason, on)
                    status = st.value
                    if st is CertificateStatus.REVOKED:
                        until = rules.reapplication_barred_until(on, DEFAULT_POLICY.revocation_bar_years)
                        bars.append((len(bars) + 1, o[0], cert_id, date_out(on), date_out(until), now))
                    if st is CertificateStatus.LOST:
                        old_until = rules.validity(issued, years).valid_until
                        issue(o, kind, on + dt.timedelta(days=7), replaces=cert_id, until=old_until)
                        counts["valid"] = counts.get("valid", 0) + 1
                    break
                pick -= share
        counts[status] = counts.get(status, 0) + 1
        examples.setdefault(status, cert_rows[cert_id - 1][1])
        if len(fields) >= CHUNK:
            pending.sign(fields[:CHUNK])
            del fields[:CHUNK]
    pending.sign(fields)
    loaded.certificates = len(cert_rows)
    loaded.by_status = counts
    loaded.examples = examples


_ACTION: dict[CertificateStatus, str] = {
    target: action.value
    for (current, action), target in rules.TRANSITIONS.items()
    if current is CertificateStatus.VALID and target is not CertificateStatus.VALID
}
"""The action that takes a valid card to each status the demo gives (暂扣, 吊销, 注销, 挂失): read off
the transition table, so a demo event is always one the service could have recorded."""

TABLES = (
    "exam_qualifications",
    "certificate_signing_keys",
    "certificates",
    "certificate_events",
    "certificate_reapplication_bars",
)
"""Tables whose ids the loader assigned (their sequences are moved past them on PostgreSQL)."""
