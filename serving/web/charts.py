"""The page's charts as inline SVG drawn on the server (no JavaScript library, nothing fetched): the reason
waterfall of a score, 24 months of kWh and payments, and the stations' band mix against yuan at risk.

Every chart carries a <title> and <desc> for screen readers and names each mark in its own <title>, so a
pointer shows the exact figure; the same figures are always in a table beside the chart.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

from markupsafe import Markup, escape

from serving.schemas import Lang
from serving.view_schemas import MonthRecord, SummaryRow, TaskScore

RAISES = "#b42318"  # red 700: 6.4:1 on white
LOWERS = "#067647"  # green 700: 5.6:1 on white
NEUTRAL = "#475467"  # gray 600
GRID = "#d0d5dd"
INK = "#101828"
MUTED = "#475467"
# Marks stand on white at 3:1 or more (WCAG non-text contrast); the greys were #98a2b3, 2.6:1.
BAND_COLOURS = {"high": "#b42318", "medium": "#b54708", "low": "#858fa1"}
EXTRA_BAND = "#667085"
DUE = "#858fa1"
PAID = "#1849a9"
FONT = 'font-family="inherit"'


def _width(text: str) -> int:
    """Display width in half-width units: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fit(text: str, units: int) -> str:
    """Cut a label to `units` half-width units, ending in an ellipsis when cut."""
    if _width(text) <= units:
        return text
    out, used = [], 0
    for c in text:
        w = 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used + w > units - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.0f}"


def _svg(chart_id: str, width: int, height: int, title: str, desc: str, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12, fill: str = INK) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" fill="{fill}" {FONT}>'
        f"{escape(text)}</text>"
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str, extra: str = "") -> str:
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.5))}" height="{_num(h)}" fill="{fill}" '
        f"{extra}><title>{escape(title)}</title></rect>"
    )


def compact(value: float, lang: Lang = Lang.EN) -> str:
    """Axis numbers: 1,234 → 1.2k, 3,400,000 → 3.4M; in Chinese by 万 and 亿 (846,812 → 84.7万), as people
    there count money."""
    magnitude = abs(value)
    steps = ((1e8, "亿"), (1e4, "万")) if lang == Lang.ZH else ((1e6, "M"), (1e3, "k"))
    for size, unit in steps:
        if magnitude >= size:
            return f"{value / size:.1f}".removesuffix(".0") + unit
    return f"{value:.0f}"


def signed(value: float) -> str:
    """+1.5, −2.85 (a minus sign, not a hyphen) and a bare 0 (the waterfall's axis read "+0")."""
    text = f"{value:+g}" if value else "0"
    return text.replace("-", "−")


def month_ticks(n: int, every: int = 3) -> list[int]:
    """Which of `n` months get a label: every third and the last, without a regular one right beside the
    last (with 23 months, "26-09" and "26-10" printed over each other)."""
    last = n - 1
    return [i for i in range(n) if i % every == 0 and last - i >= 2] + ([last] if n else [])


def nice_max(value: float) -> float:
    """A round axis end at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values inside [lo, hi]: steps of 1, 2 or 5 times a power of ten, at most `most` of them."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    power = 10 ** math.floor(math.log10(span / most))
    step = next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= most)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def waterfall(
    score: TaskScore,
    chart_id: str,
    title: str,
    desc: str,
    base_label: str,
    other_label: str,
    total_label: str,
) -> Markup:
    """Base value, each reason, the rest, and the total margin as a horizontal waterfall in log-odds."""
    steps: list[tuple[str, float, float, str]] = [(base_label, 0.0, score.base_value, NEUTRAL)]
    level = score.base_value
    for reason in score.reasons:
        colour = RAISES if reason.contribution >= 0 else LOWERS
        steps.append((reason.text, level, level + reason.contribution, colour))
        level += reason.contribution
    colour = RAISES if score.other_contribution >= 0 else LOWERS
    steps.append((other_label, level, level + score.other_contribution, colour))
    steps.append((total_label, 0.0, score.raw_margin, NEUTRAL))

    label_w, plot_w, value_w, row_h, top = 330, 330, 60, 28, 8
    width = label_w + plot_w + value_w
    height = top + row_h * len(steps) + 24
    ends = [0.0] + [v for _, a, b, _ in steps for v in (a, b)]
    lo, hi = min(ends), max(ends)
    pad = (hi - lo) * 0.05 or 0.5
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    parts = [
        f'<line x1="{_num(x(0))}" y1="{top}" x2="{_num(x(0))}" y2="{top + row_h * len(steps)}" '
        f'stroke="{GRID}" stroke-width="1"/>'
    ]
    for i, (name, start, end, colour) in enumerate(steps):
        y = top + i * row_h
        delta = end - start
        # round first so a tiny negative never shows as "-0.00"; a minus sign in the label and its tooltip
        shown = f"{round(end if i in (0, len(steps) - 1) else delta, 2) + 0.0:+.2f}".replace("-", "−")
        parts.append(
            "<g>"
            + _text(label_w - 8, y + row_h / 2 + 4, fit(name, 44), anchor="end")
            + _rect(
                min(x(start), x(end)), y + 5, abs(x(end) - x(start)), row_h - 10, colour, f"{name}: {shown}"
            )
            + _text(width - 4, y + row_h / 2 + 4, shown, anchor="end", fill=MUTED)
            + "</g>"
        )
        if 0 < i < len(steps) - 1:  # the connector shows where the next step starts
            parts.append(
                f'<line x1="{_num(x(end))}" y1="{y + row_h - 5}" x2="{_num(x(end))}" y2="{y + row_h + 5}" '
                f'stroke="{MUTED}" stroke-width="1"/>'
            )
    axis_y = top + row_h * len(steps) + 16
    for v in ticks(lo, hi):
        parts.append(_text(x(v), axis_y, signed(v), anchor="middle", size=11, fill=MUTED))
    return _svg(chart_id, width, height, title, desc, "".join(parts))


def history(
    months: Sequence[MonthRecord],
    chart_id: str,
    title: str,
    desc: str,
    kwh_label: str,
    due_label: str,
    paid_label: str,
    lang: Lang = Lang.EN,
) -> Markup:
    """kWh per month (top), amount due beside amount paid (bottom); months still owing get a red outline."""
    width, left, right, panel_h, gap, top = 720, 56, 12, 120, 46, 22
    n = max(len(months), 1)
    plot_w = width - left - right
    slot = plot_w / n
    kwh_max = nice_max(max((m.kwh or 0.0) for m in months) if months else 0.0)
    yuan_max = nice_max(max(max(m.amount_due or 0.0, m.paid) for m in months) if months else 0.0)
    kwh_top, yuan_top = top, top + panel_h + gap
    height = yuan_top + panel_h + 40

    def axis(y0: float, vmax: float, label: str) -> str:
        out = [_text(left, y0 - 8, label, size=12, fill=MUTED)]
        for frac in (0.0, 0.5, 1.0):
            y = y0 + panel_h * (1 - frac)
            out.append(
                f'<line x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}" stroke="{GRID}"/>'
            )
            out.append(_text(left - 6, y + 4, compact(vmax * frac, lang), anchor="end", size=11, fill=MUTED))
        return "".join(out)

    parts = [axis(kwh_top, kwh_max, kwh_label), axis(yuan_top, yuan_max, f"{due_label} / {paid_label}")]
    labelled = set(month_ticks(len(months)))
    for i, m in enumerate(months):
        x0 = left + i * slot
        month = m.period.strftime("%Y-%m")
        kwh = m.kwh or 0.0
        h = panel_h * kwh / kwh_max
        parts.append(
            _rect(x0 + slot * 0.15, kwh_top + panel_h - h, slot * 0.7, h, PAID, f"{month}: {kwh:,.0f} kWh")
        )
        due = m.amount_due or 0.0
        h_due = panel_h * due / yuan_max
        h_paid = panel_h * m.paid / yuan_max
        owing = (m.outstanding or 0.0) > 0
        outline = f'stroke="{RAISES}" stroke-width="2"' if owing else ""
        parts.append(
            _rect(
                x0 + slot * 0.1,
                yuan_top + panel_h - h_due,
                slot * 0.4,
                h_due,
                DUE,
                f"{month}: {due_label} {due:,.2f}",
                outline,
            )
        )
        parts.append(
            _rect(
                x0 + slot * 0.5,
                yuan_top + panel_h - h_paid,
                slot * 0.4,
                h_paid,
                PAID,
                f"{month}: {paid_label} {m.paid:,.2f}",
            )
        )
        if i in labelled:
            parts.append(
                _text(x0 + slot / 2, yuan_top + panel_h + 16, m.period.strftime("%y-%m"), "middle", 11, MUTED)
            )
    legend_y = height - 8
    parts.append(f'<rect x="{left}" y="{legend_y - 9}" width="10" height="10" fill="{DUE}"/>')
    parts.append(_text(left + 14, legend_y, due_label, size=11, fill=MUTED))
    parts.append(f'<rect x="{left + 120}" y="{legend_y - 9}" width="10" height="10" fill="{PAID}"/>')
    parts.append(_text(left + 134, legend_y, paid_label, size=11, fill=MUTED))
    return _svg(chart_id, width, height, title, desc, "".join(parts))


def overview(
    rows: Sequence[SummaryRow],
    bands: Sequence[str],
    band_words: dict[str, str],
    chart_id: str,
    title: str,
    desc: str,
    mix_label: str,
    ev_label: str,
    group_label: str,
    lang: Lang = Lang.EN,
) -> Markup:
    """Per group: the band mix as a 100% bar, and expected yuan at risk with last month's value as a tick."""
    label_w, mix_w, gap, ev_w, value_w, row_h, top = 150, 240, 24, 230, 80, 24, 26
    width = label_w + mix_w + gap + ev_w + value_w
    height = top + row_h * max(len(rows), 1) + 8
    ev_max = nice_max(
        max(
            [r.current.expected_value for r in rows] + [r.previous.expected_value for r in rows if r.previous]
        )
        if rows
        else 0.0
    )
    mix_x, ev_x = label_w, label_w + mix_w + gap
    parts = [
        _text(mix_x, 14, mix_label, size=12, fill=MUTED),
        _text(ev_x, 14, ev_label, size=12, fill=MUTED),
    ]
    for i, row in enumerate(rows):
        y = top + i * row_h
        name = group_label.format(unit=row.supply_unit or "—", station=row.station or "")
        # 22 half-width units: at 12 px a full-width character is 12 px wide, and 24 cut "东湖县…" at the edge
        parts.append(_text(label_w - 8, y + row_h / 2 + 4, fit(name, 22), anchor="end"))
        total = max(row.current.customers, 1)
        x = float(mix_x)
        for band in bands:
            count = row.current.bands.get(band, 0)
            w = mix_w * count / total
            colour = BAND_COLOURS.get(band, EXTRA_BAND)
            word = band_words.get(band, band)
            parts.append(
                _rect(x, y + 4, w, row_h - 8, colour, f"{name} · {word}: {count:,} ({count / total:.0%})")
            )
            x += w
        ev = row.current.expected_value
        parts.append(_rect(ev_x, y + 4, ev_w * ev / ev_max, row_h - 8, PAID, f"{name}: ¥{ev:,.0f}"))
        if row.previous is not None:
            px = ev_x + ev_w * row.previous.expected_value / ev_max
            parts.append(
                f'<line x1="{_num(px)}" y1="{y + 1}" x2="{_num(px)}" y2="{y + row_h - 1}" stroke="{INK}" '
                f'stroke-width="2"><title>{escape(name)}: ¥{row.previous.expected_value:,.0f}</title></line>'
            )
        parts.append(_text(width - 4, y + row_h / 2 + 4, f"¥{compact(ev, lang)}", anchor="end", fill=MUTED))
    return _svg(chart_id, width, height, title, desc, "".join(parts))
