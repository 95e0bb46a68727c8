"""Server-rendered SVG charts of report tables: no script, no charting library, nothing from a CDN.

A report table carries its own chart hint (``ReportChart``: ``x`` against the ``y`` columns, one
series per value of ``series``), so one small drawer serves every report without knowing any by
name. The chart only *draws* the cells the report answered: it computes positions and an axis
scale, never a figure a person reads as a number (no totals, no averages). The numbers themselves
are in the table beside every chart, which is what a screen reader is pointed to: the SVG is one
``role="img"`` named by its ``<title>`` and described by its ``<desc>``; each bar or point also has
a ``<title>`` (a tooltip) with its exact value.

Colours are CSS classes (``s0``..``s7`` in ``app.css``) rather than inline styles, which the pages'
Content-Security-Policy forbids; presentation attributes such as ``x`` and ``height`` are not styles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

from chartvault.schemas.reports import Cell, ReportColumn, ReportTable

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 36
PALETTE_SIZE = 8  # colour classes s0..s7; more series than that reuse colours (the legend tells them apart)
MIN_LABEL_GAP = 84  # px between x labels: a YYYY-MM-DD date is about 70 px wide
CHAR_WIDTH = 7  # px of an average character of a 12 px label
MAX_BAR = 56  # px: two categories are still drawn as bars, not as walls
NUMERIC_KINDS = frozenset({"count", "hours", "days"})


@dataclass(frozen=True, slots=True)
class Series:
    """One colour of a chart: a y column, or one value of the series column (with its y column)."""

    label: str
    css: str


@dataclass(frozen=True, slots=True)
class ChartData:
    """A table's chart as what is drawn: categories along x, series, and the value of each pair."""

    kind: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    values: dict[tuple[int, int], float]  # (x index, series index) -> value; absent when the cell is null
    stacked: bool
    whole_numbers: bool
    y_label: str
    x_label: str

    def is_empty(self) -> bool:
        """Nothing to see: no categories, or every value null or zero (the table still shows them)."""
        return not self.x_labels or not any(self.values.values())


def _text(value: Cell) -> str:
    return "—" if value is None or value == "" else str(value)


def _number(value: Cell) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _index(seen: dict[str, int], item: str) -> int:
    """Position of ``item`` in first-seen order (a category or series gets the next one when new)."""
    return seen.setdefault(item, len(seen))


def chart_data(table: ReportTable) -> ChartData | None:
    """What to draw for ``table`` (None when the report gives no chart hint for it)."""
    hint = table.chart
    if hint is None:
        return None
    columns = {c.name: (i, c) for i, c in enumerate(table.columns)}
    x_at, x_col = columns[hint.x]
    ys = [columns[name] for name in hint.y]
    series_at = columns[hint.series][0] if hint.series else None
    x_seen: dict[str, int] = {}
    key_seen: dict[str, int] = {}
    values: dict[tuple[int, int], float] = {}
    for row in table.rows:
        xi = _index(x_seen, _text(row[x_at]))
        for y_at, y_col in ys:
            key = y_col.label
            if series_at is not None:
                key = _text(row[series_at]) if len(ys) == 1 else f"{_text(row[series_at])} · {y_col.label}"
            si = _index(key_seen, key)
            number = _number(row[y_at])
            if number is not None:
                values[(xi, si)] = number
    keys = list(key_seen)
    if series_at is not None:  # a station or type keeps its colour whichever period it first shows in
        keys, values = _sorted_series(keys, values)
    y_cols = [c for _, c in ys]
    return ChartData(
        kind=hint.kind,
        x_labels=tuple(x_seen),
        series=tuple(Series(k, f"s{i % PALETTE_SIZE}") for i, k in enumerate(keys)),
        values=values,
        stacked=series_at is not None and hint.kind == "bar",
        whole_numbers=all(c.kind == "count" for c in y_cols),
        y_label=y_cols[0].label if len(y_cols) == 1 else _kind_label(y_cols),
        x_label=x_col.label,
    )


def _sorted_series(
    keys: list[str], values: dict[tuple[int, int], float]
) -> tuple[list[str], dict[tuple[int, int], float]]:
    """Series in name order (a blank one last), the values re-indexed to match."""
    order = sorted(range(len(keys)), key=lambda i: (keys[i] == "—", keys[i]))
    new_index = {old: new for new, old in enumerate(order)}
    return [keys[i] for i in order], {(xi, new_index[si]): v for (xi, si), v in values.items()}


def _kind_label(columns: Sequence[ReportColumn]) -> str:
    kinds = {c.kind for c in columns}
    return {"hours": "Hours", "days": "Days"}.get(kinds.pop(), "Count") if len(kinds) == 1 else "Value"


def axis(top_value: float, whole_numbers: bool) -> tuple[float, list[float]]:
    """A round axis top at or above ``top_value`` and its ticks (at most about five, from 0).

    Steps are 1, 2 or 5 times a power of ten (whole steps for counts), so the gridlines sit on
    numbers a person can read off.
    """
    if top_value <= 0:
        return 1.0, [0.0, 1.0]
    rough = top_value / 4
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    if whole_numbers:
        step = max(1.0, float(math.ceil(step)))
    top = step * math.ceil(top_value / step)
    count = round(top / step)
    return top, [step * i for i in range(count + 1)]


def _tick(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.1f}"


def _value(value: float, whole_numbers: bool) -> str:
    return f"{int(value):,}" if whole_numbers and value == int(value) else f"{value:,}"


def _short(label: str, chars: int) -> str:
    """A category label cut to the room its band has (the table beside the chart has it whole)."""
    return label if len(label) <= chars else label[: chars - 1] + "…"


def _top_value(data: ChartData) -> float:
    if not data.values:
        return 0.0
    if not data.stacked:
        return max(data.values.values())
    sums: dict[int, float] = {}
    for (xi, _), v in data.values.items():
        sums[xi] = sums.get(xi, 0.0) + max(v, 0.0)
    return max(sums.values())


@dataclass(frozen=True, slots=True)
class _Frame:
    """The plot area and its scale: category bands along x, values up y."""

    top: float
    bands: int

    @property
    def width(self) -> float:
        return WIDTH - LEFT - RIGHT

    @property
    def height(self) -> float:
        return HEIGHT - TOP - BOTTOM

    @property
    def band(self) -> float:
        return self.width / max(self.bands, 1)

    def y(self, value: float) -> float:
        return TOP + self.height * (1 - max(value, 0.0) / self.top)

    def centre(self, xi: int) -> float:
        return LEFT + self.band * (xi + 0.5)


def _f(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _grid(frame: _Frame, ticks: list[float], data: ChartData) -> list[str]:
    parts = ['<g class="grid" aria-hidden="true">']
    for t in ticks:
        y = _f(frame.y(t))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y}" class="tick" text-anchor="end">{_tick(t)}</text>')
    parts.append(f'<text x="{LEFT}" y="{TOP - 10}" class="axis-label">{escape(data.y_label)}</text>')
    every = max(1, math.ceil(len(data.x_labels) * MIN_LABEL_GAP / frame.width))
    chars = max(6, int(frame.band * every / CHAR_WIDTH) - 1)
    base = HEIGHT - BOTTOM + 16
    for xi, label in enumerate(data.x_labels):
        if xi % every == 0:
            x = _f(frame.centre(xi))
            text = escape(_short(label, chars))
            parts.append(f'<text x="{x}" y="{base}" class="tick" text-anchor="middle">{text}</text>')
    parts.append("</g>")
    return parts


def _mark_title(data: ChartData, xi: int, si: int, value: float) -> str:
    what = f"{data.x_labels[xi]} · {data.series[si].label}: {_value(value, data.whole_numbers)}"
    return f"<title>{escape(what)}</title>"


def _bars(frame: _Frame, data: ChartData) -> list[str]:
    """One ``rect.bar`` per value: side by side per category, or stacked when there is a series column."""
    parts = ['<g class="bars">']
    per = 1 if data.stacked else max(len(data.series), 1)
    width = min(frame.band * 0.8 / per, MAX_BAR)
    bases: dict[int, float] = {}
    for (xi, si), value in sorted(data.values.items()):
        start = frame.centre(xi) - width * per / 2
        base = bases.get(xi, 0.0) if data.stacked else 0.0
        x = start if data.stacked else start + width * si
        y_top, y_base = frame.y(base + value), frame.y(base)
        if data.stacked:
            bases[xi] = base + max(value, 0.0)
        css = data.series[si].css
        parts.append(
            f'<rect class="bar {css}" x="{_f(x)}" y="{_f(y_top)}" width="{_f(max(width - 1, 1))}" '
            f'height="{_f(y_base - y_top)}" data-x="{xi}" data-series="{si}" '
            f"data-value={quoteattr(repr(value))}>{_mark_title(data, xi, si, value)}</rect>"
        )
    parts.append("</g>")
    return parts


def _lines(frame: _Frame, data: ChartData) -> list[str]:
    """A line per series, broken where a period has no value, and a ``circle.point`` per value."""
    parts = ['<g class="lines">']
    for si, series in enumerate(data.series):
        run: list[str] = []
        runs: list[list[str]] = [run]
        for xi in range(len(data.x_labels)):
            value = data.values.get((xi, si))
            if value is None:
                run = []
                runs.append(run)
                continue
            run.append(f"{_f(frame.centre(xi))},{_f(frame.y(value))}")
        for points in runs:
            if len(points) > 1:
                parts.append(f'<polyline class="line {series.css}" points="{" ".join(points)}"/>')
        for xi in range(len(data.x_labels)):
            value = data.values.get((xi, si))
            if value is not None:
                parts.append(
                    f'<circle class="point {series.css}" cx="{_f(frame.centre(xi))}" '
                    f'cy="{_f(frame.y(value))}" r="4" data-x="{xi}" data-series="{si}" '
                    f"data-value={quoteattr(repr(value))}>{_mark_title(data, xi, si, value)}</circle>"
                )
    parts.append("</g>")
    return parts


def describe(data: ChartData) -> str:
    """The chart in one sentence, for ``<desc>``: what is drawn against what, and where the numbers are."""
    drawn = "Stacked bar chart" if data.stacked else ("Line chart" if data.kind == "line" else "Bar chart")
    names = ", ".join(s.label for s in data.series)
    return (
        f"{drawn} of {names} by {data.x_label.lower()}, {len(data.x_labels)} "
        f"{'category' if len(data.x_labels) == 1 else 'categories'}. The numbers are in the table below."
    )


def render_svg(data: ChartData, chart_id: str, title: str) -> Markup:
    """The chart as an inline SVG element (escaped throughout: labels are people's text)."""
    top, ticks = axis(_top_value(data), data.whole_numbers)
    frame = _Frame(top, len(data.x_labels))
    marks = _lines(frame, data) if data.kind == "line" else _bars(frame, data)
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title" aria-describedby="{ident}-desc" id="{ident}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(describe(data))}</desc>',
        *_grid(frame, ticks, data),
        *marks,
        f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(frame.y(0))}" '
        f'y2="{_f(frame.y(0))}" aria-hidden="true"/>',
        "</svg>",
    ]
    return Markup("\n".join(parts))  # built above from escaped text and numbers only
