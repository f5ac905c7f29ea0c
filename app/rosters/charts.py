"""Server-rendered SVG charts: no script, no CDN, no inline style (the CSP forbids both).

Presentation attributes (fill, stroke) are not styles, so the charts draw under ``style-src 'self'``;
the colours that matter come from classes in app.css.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

LABEL_W = 220
BAR_W = 360
ROW_H = 26
PAD = 8


def _fmt(v: float) -> str:
    return f"{v:g}"


def bar_chart(
    rows: Sequence[tuple[str, float | None, str | None]], *, title: str, target: float | None = None
) -> Markup:
    """Horizontal bars, one per (label, percent, link); a dashed line marks ``target``.

    Shares scale to 100 %; a chart with a target (a small ratio such as 5 %) scales to its own
    largest value so the line stays readable. A row without a value (nothing to divide) shows “—”.
    """
    values = [v for _, v, _ in rows if v is not None]
    top = 100.0 if target is None else (max([*values, target]) * 1.25 or 1.0)
    width = LABEL_W + BAR_W + 70
    height = PAD * 2 + ROW_H * max(1, len(rows)) + 18
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    if not rows:
        out.append(f'<text x="{PAD}" y="{PAD + 16}" class="chart-empty">暂无数据</text>')
    for i, (label, value, href) in enumerate(rows):
        y = PAD + i * ROW_H
        text = str(label) if len(label) <= 14 else label[:13] + "…"
        bar = 0.0 if value is None else max(0.0, min(1.0, value / top)) * BAR_W
        shown = "—" if value is None else f"{_fmt(value)}%"
        below = target is not None and value is not None and value < target
        cls = "chart-bar warn" if below else "chart-bar"
        out.append(f'<a href="{escape(href)}">' if href else "<g>")
        out.append(
            f'<text x="{LABEL_W - 6}" y="{y + 17}" text-anchor="end" class="chart-label">{escape(text)}</text>'
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{BAR_W}" height="{ROW_H - 8}" class="chart-track" fill="#eef1f5"/>'
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{bar:.1f}" height="{ROW_H - 8}" class="{cls}" '
            f'fill="{"#d9822b" if below else "#2f6fb3"}"/>'
            f'<text x="{LABEL_W + BAR_W + 6}" y="{y + 17}" class="chart-value">{escape(shown)}</text>'
        )
        out.append("</a>" if href else "</g>")
    axis_y = PAD + ROW_H * max(1, len(rows))
    if target is not None:
        x = LABEL_W + target / top * BAR_W
        out.append(
            f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{axis_y}" stroke="#c0392b" '
            f'stroke-dasharray="4 3" class="chart-target"/>'
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" class="chart-axis">{_fmt(target)}%</text>'
        )
    else:
        for tick in (0, 50, 100):
            x = LABEL_W + tick / 100 * BAR_W
            out.append(
                f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" class="chart-axis">{tick}%</text>'
            )
    out.append("</svg>")
    # Every interpolated text went through escape() above.
    return Markup("".join(out))  # noqa: S704
