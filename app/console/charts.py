"""Server-side SVG charts for the console: bars, grouped or stacked bars by month, lines.

No JavaScript and nothing fetched: each function returns one `<svg>` element (Markup) that a
template inlines. Values are integers (grams CO2e, households, points); a `Measure` turns them into
axis ticks and labels, grams as g, kg or t CO2e chosen from the chart's largest value. Every text
that comes from data is escaped. Each bar or point carries its value in `data-value`, so a test (or
a reader of the page source) can check the drawing against the numbers.
"""
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 48, 64
LEGEND_ROW = 18
PALETTE = ("#2e7d32", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#c62828", "#9e9d24", "#5d4037")
FONT = ("font-family=\"system-ui, 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', "
        "sans-serif\"")


# ---------------------------------------------------------------- measures and numbers


def group_thousands(n: int) -> str:
    return f"{n:,}"


@dataclass(frozen=True)
class Measure:
    """How the values of a chart read: `divisor` base units per display unit, and the unit's name."""

    divisor: int = 1
    unit: str = ""

    def scaled(self, value: int) -> int:
        """The value in display units, rounded half up (integers only)."""
        return (2 * value + self.divisor) // (2 * self.divisor) if value >= 0 else -self.scaled(-value)

    def format(self, value: int) -> str:
        shown = self.scaled(value)
        if shown == 0 and value > 0:
            text = "<1"
        else:
            text = group_thousands(shown)
        return f"{text} {self.unit}".strip()


COUNT = Measure()


def grams_measure(largest_g: int) -> Measure:
    """t CO2e from 10 t up, kg CO2e from 10 kg up, else g CO2e."""
    if largest_g >= 10_000_000:
        return Measure(1_000_000, "t CO₂e")
    if largest_g >= 10_000:
        return Measure(1_000, "kg CO₂e")
    return Measure(1, "g CO₂e")


def format_grams(grams: int) -> str:
    """Grams CO2e as a person reads them: "850 g CO₂e", "12,346 kg CO₂e", "12.3 t CO₂e"."""
    if abs(grams) >= 10_000_000:
        tenths = (2 * abs(grams) + 100_000) // 200_000
        sign = "-" if grams < 0 else ""
        return f"{sign}{group_thousands(tenths // 10)}.{tenths % 10} t CO₂e"
    return grams_measure(abs(grams)).format(grams)


def nice_ticks(largest: int, divisor: int = 1, count: int = 5) -> list[int]:
    """Ticks from 0 in base units, each a whole 1, 2 or 5 × 10^k display units, the last >= largest."""
    top = max(-(-largest // divisor), 1)  # display units, rounded up
    step = 1
    while True:
        for factor in (1, 2, 5):
            candidate = step * factor
            if candidate * count >= top:
                ticks = [i * candidate * divisor for i in range(-(-top // candidate) + 1)]
                return ticks
        step *= 10


# ---------------------------------------------------------------- drawing


def _svg(title: str, body: list[str], height: int = HEIGHT) -> Markup:
    safe_title = escape(title)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{safe_title}">'
        f"<title>{safe_title}</title>"
        f'<text class="chart-title" x="{WIDTH // 2}" y="22" text-anchor="middle" font-size="18" '
        f'font-weight="bold" {FONT}>{safe_title}</text>'
        + "".join(body) + "</svg>"
    )


def _empty(title: str, message: str) -> Markup:
    return _svg(title, [f'<text class="chart-empty" x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" '
                        f'font-size="14" fill="#666" {FONT}>{escape(message)}</text>'])


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


class _Frame:
    """The plot area: y from 0 to the top tick, axes, grid and tick labels."""

    def __init__(self, largest: int, measure: Measure, axis_label: str, legend_rows: int = 0):
        self.measure = measure
        self.ticks = nice_ticks(largest, measure.divisor)
        self.top_value = self.ticks[-1]
        self.top = TOP + legend_rows * LEGEND_ROW + (8 if legend_rows else 0)  # the legend: under the title
        self.bottom = HEIGHT - BOTTOM
        self.height = self.bottom - self.top
        self.left, self.right = LEFT, WIDTH - RIGHT
        self.axis_label = axis_label

    def y(self, value: int) -> float:
        return self.bottom - self.length(value)

    def length(self, value: int) -> float:
        return value * self.height / self.top_value

    def draw(self) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = _num(self.y(tick))
            parts.append(f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{y}" y2="{y}" '
                         f'stroke="#e0e0e0"/>')
            parts.append(f'<text class="tick" x="{self.left - 6}" y="{y}" dy="4" text-anchor="end" '
                         f'font-size="13" {FONT}>{escape(group_thousands(self.measure.scaled(tick)))}</text>')
        parts.append(f'<line class="axis" x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" '
                     f'stroke="#333"/>')
        parts.append(f'<line class="axis" x1="{self.left}" x2="{self.right}" y1="{self.bottom}" '
                     f'y2="{self.bottom}" stroke="#333"/>')
        label = self.axis_label or self.measure.unit
        if label:
            parts.append(f'<text class="axis-label" x="14" y="{(self.top + self.bottom) // 2}" text-anchor="middle" '
                         f'font-size="13" {FONT} transform="rotate(-90 14 {(self.top + self.bottom) // 2})">'
                         f'{escape(label)}</text>')
        return parts

    def category_label(self, x: float, text: str, slot: float) -> str:
        """A category under its bar; slanted when it is wider than its slot (long community names)."""
        y = self.bottom + 16
        if _text_width(text) <= slot:
            return (f'<text class="category" x="{_num(x)}" y="{y}" text-anchor="middle" '
                    f'font-size="13" {FONT}>{escape(text)}</text>')
        return (f'<text class="category" x="{_num(x)}" y="{y}" text-anchor="end" font-size="12" {FONT} '
                f'transform="rotate(-20 {_num(x)} {y})">{escape(text)}</text>')


def _text_width(text: str) -> int:
    """Roughly how wide a text of font size 13 is: CJK characters count double."""
    return 8 * len(text) + 6 * sum(1 for ch in text if ord(ch) > 0x2e80)


def _legend(names: list[str]) -> list[str]:
    parts, x, y = [], LEFT, TOP + 2
    for index, name in enumerate(names):
        width = 28 + _text_width(name)
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, y = LEFT, y + LEGEND_ROW
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<g class="legend-item"><rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="{y}" font-size="13" {FONT}>{escape(name)}</text></g>')
        x += width
    return parts


def _legend_rows(names: list[str]) -> int:
    rows, x = 1, LEFT
    for name in names:
        width = 28 + _text_width(name)
        if x + width > WIDTH - RIGHT and x > LEFT:
            rows, x = rows + 1, LEFT
        x += width
    return rows


def _measure_for(values: list[int], measure: Measure | str) -> Measure:
    if measure == "grams":
        return grams_measure(max(values, default=0))
    return measure


def bar_chart(title: str, items: list[tuple[str, int]], *, measure: Measure | str = COUNT, axis_label: str = "",
              empty: str = "No data") -> Markup:
    """One bar per (label, value), value printed above it; values must be >= 0."""
    if not items or not any(v for _, v in items):
        return _empty(title, empty)
    measure = _measure_for([v for _, v in items], measure)
    frame = _Frame(max(v for _, v in items), measure, axis_label)
    parts = frame.draw()
    slot = (frame.right - frame.left) / len(items)
    width = min(slot * 0.7, 60)
    for index, (label, value) in enumerate(items):
        x = frame.left + slot * index + (slot - width) / 2
        parts.append(f'<rect class="bar" x="{_num(x)}" y="{_num(frame.y(value))}" width="{_num(width)}" '
                     f'height="{_num(frame.length(value))}" fill="{PALETTE[0]}" data-label="{escape(label)}" '
                     f'data-value="{value}"><title>{escape(label)}: {escape(measure.format(value))}</title></rect>')
        parts.append(f'<text class="value" x="{_num(x + width / 2)}" y="{_num(frame.y(value) - 4)}" '
                     f'text-anchor="middle" font-size="13" {FONT}>{escape(measure.format(value))}</text>')
        parts.append(frame.category_label(x + width / 2, label, slot))
    return _svg(title, parts)


def month_bar_chart(title: str, categories: list[str], series: list[tuple[str, list[int]]], *,
                    stacked: bool = True, measure: Measure | str = COUNT, axis_label: str = "",
                    empty: str = "No data") -> Markup:
    """Bars per category (a month), one colour per series, stacked or side by side; a legend below.

    The total of a stacked column is printed above it.
    """
    if not categories or not series or not any(v for _, values in series for v in values):
        return _empty(title, empty)
    columns = [sum(values[i] for _, values in series) for i in range(len(categories))]
    largest = max(columns) if stacked else max(v for _, values in series for v in values)
    measure = _measure_for([largest], measure)
    names = [name for name, _ in series]
    frame = _Frame(largest, measure, axis_label, legend_rows=_legend_rows(names))
    parts = frame.draw()
    slot = (frame.right - frame.left) / len(categories)
    group = min(slot * 0.75, 40 * (1 if stacked else len(series)))
    for i, category in enumerate(categories):
        x0 = frame.left + slot * i + (slot - group) / 2
        base = 0
        for s, (name, values) in enumerate(series):
            value = values[i]
            if stacked:
                x, width, y = x0, group, frame.y(base + value)
                base += value
            else:
                width = group / len(series)
                x, y = x0 + width * s, frame.y(value)
            if value:
                parts.append(
                    f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" '
                    f'height="{_num(frame.length(value))}" fill="{PALETTE[s % len(PALETTE)]}" '
                    f'data-series="{escape(name)}" data-label="{escape(category)}" data-value="{value}">'
                    f'<title>{escape(category)} · {escape(name)}: {escape(measure.format(value))}</title></rect>')
            if not stacked and value:
                parts.append(f'<text class="value" x="{_num(x + width / 2)}" y="{_num(y - 3)}" '
                             f'text-anchor="middle" font-size="12" {FONT}>{escape(measure.format(value))}</text>')
        if stacked and columns[i]:
            parts.append(f'<text class="value total" x="{_num(x0 + group / 2)}" y="{_num(frame.y(columns[i]) - 4)}" '
                         f'text-anchor="middle" font-size="13" {FONT}>{escape(measure.format(columns[i]))}</text>')
        parts.append(frame.category_label(x0 + group / 2, category, slot))
    parts += _legend(names)
    return _svg(title, parts)


def line_chart(title: str, categories: list[str], series: list[tuple[str, list[int]]], *,
               measure: Measure | str = COUNT, axis_label: str = "", empty: str = "No data") -> Markup:
    """One line per series across the categories, each point marked and its value printed."""
    if not categories or not series or not any(v for _, values in series for v in values):
        return _empty(title, empty)
    largest = max(v for _, values in series for v in values)
    measure = _measure_for([largest], measure)
    names = [name for name, _ in series]
    frame = _Frame(largest, measure, axis_label, legend_rows=_legend_rows(names) if len(series) > 1 else 0)
    parts = frame.draw()
    slot = (frame.right - frame.left) / len(categories)
    xs = [frame.left + slot * i + slot / 2 for i in range(len(categories))]
    for i, category in enumerate(categories):
        parts.append(frame.category_label(xs[i], category, slot))
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        points = " ".join(f"{_num(x)},{_num(frame.y(v))}" for x, v in zip(xs, values))
        parts.append(f'<polyline class="line" points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'data-series="{escape(name)}"/>')
        for x, value, category in zip(xs, values, categories):
            parts.append(f'<circle class="point" cx="{_num(x)}" cy="{_num(frame.y(value))}" r="3.5" fill="{colour}" '
                         f'data-series="{escape(name)}" data-label="{escape(category)}" data-value="{value}">'
                         f'<title>{escape(category)} · {escape(name)}: {escape(measure.format(value))}</title>'
                         f'</circle>')
            parts.append(f'<text class="value" x="{_num(x)}" y="{_num(frame.y(value) - 7)}" text-anchor="middle" '
                         f'font-size="12" {FONT}>{escape(measure.format(value))}</text>')
    if len(series) > 1:
        parts += _legend(names)
    return _svg(title, parts)
