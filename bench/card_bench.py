"""Card rendering throughput: PDFs (and PNG previews) per second for a batch, off the event loop, in parallel.

Each card is what ``app certificates card`` makes: the QR image of a signed payload (made once per
card, as at issuance) and the two-page 85.6 x 54 mm PDF with the CJK font embedded. The batch runs in
a process pool of ``--workers`` processes (rendering is pure CPU; threads would share one GIL).

    .venv/bin/python bench/card_bench.py --cards 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from concurrent.futures import ProcessPoolExecutor

from app.certificates import card, qr, signing
from app.certificates.rules import CertificateKind

NAMES = ["李明", "王芳", "欧阳建国", "张三", "陈晓燕", "赵思源"]


def _one(i: int, pem: bytes, kid: str, fmt: str) -> int:
    fields = signing.CardFields(
        number=f"3201002026{i:06d}",
        name=NAMES[i % len(NAMES)],
        agency="宁海市市场监督管理局",
        valid_from=dt.date(2026, 9, 1),
        valid_until=dt.date(2031, 8, 31),
        kind=CertificateKind.ENFORCEMENT,
    )
    text = signing.sign_payload(fields, pem, kid, "https://zfz.example.gov.cn")
    png = qr.qr_png(text)
    data = card.CardData(
        kind=fields.kind,
        number=fields.number,
        name=fields.name,
        agency=fields.agency,
        field="市场监管",
        area="宁海市",
        valid_from=fields.valid_from,
        valid_until=fields.valid_until,
        issuing_authority="宁海市司法局",
    )
    out = card.render_card_pdf(data, None, png) if fmt == "pdf" else card.render_card_png(data, None, png)
    return len(out)


def _batch(n: int, workers: int, fmt: str) -> tuple[float, int]:
    kid, pem, _jwk = signing.generate_key()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(_one, range(1, n + 1), [pem] * n, [kid] * n, [fmt] * n, chunksize=20))
    return time.perf_counter() - started, sum(sizes) // n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"card rendering, {args.cards} cards, {args.workers} worker processes", flush=True)
    for fmt in ("pdf", "png"):
        seconds, size = _batch(args.cards, args.workers, fmt)
        print(
            f"  {fmt.upper()}: {seconds:.1f} s = {args.cards / seconds:.1f} cards/s "
            f"(QR + {fmt.upper()} each, ~{size // 1024} KB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
