"""The console's SVG charts: bar heights follow the values, labels and legends are there, text is escaped."""
import xml.etree.ElementTree as ET

import pytest

from app.console import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def bars(root) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


def texts(root, css_class=None) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text") if css_class is None or e.get("class") == css_class]


def test_bar_heights_are_proportional_to_the_values_and_bars_stand_on_the_axis():
    items = [("七月", 1_200_000), ("八月", 3_600_000), ("九月", 600_000)]

    root = parse(charts.bar_chart("减排量", items, measure="grams"))

    drawn = bars(root)
    assert [int(b.get("data-value")) for b in drawn] == [1_200_000, 3_600_000, 600_000]
    heights = [float(b.get("height")) for b in drawn]
    assert heights[1] == pytest.approx(3 * heights[0], rel=1e-3)
    assert heights[0] == pytest.approx(2 * heights[2], rel=1e-3)
    bottoms = {round(float(b.get("y")) + float(b.get("height")), 1) for b in drawn}
    assert len(bottoms) == 1
    axis = [e for e in root.iter(f"{SVG}line") if e.get("class") == "axis" and e.get("y1") == e.get("y2")][0]
    assert bottoms == {round(float(axis.get("y1")), 1)}


def test_a_bar_chart_shows_its_title_labels_values_in_kg_and_a_unit_on_the_axis():
    root = parse(charts.bar_chart("Reductions", [("2026-07", 1_200_000), ("2026-08", 3_600_499)], measure="grams"))

    assert root.find(f"{SVG}title").text == "Reductions"
    assert "Reductions" in texts(root, "chart-title")
    assert texts(root, "category") == ["2026-07", "2026-08"]
    assert texts(root, "value") == ["1,200 kg CO₂e", "3,600 kg CO₂e"]
    assert texts(root, "axis-label") == ["kg CO₂e"]
    ticks = [int(t.replace(",", "")) for t in texts(root, "tick")]
    assert ticks[0] == 0 and ticks[-1] >= 3_601 and ticks == sorted(ticks)


def test_the_tallest_bar_reaches_at_most_the_top_tick():
    root = parse(charts.bar_chart("t", [("a", 7), ("b", 3)]))

    top_tick = max(int(t) for t in texts(root, "tick"))
    tallest = max(float(b.get("height")) for b in bars(root))
    grid = sorted(float(e.get("y1")) for e in root.iter(f"{SVG}line") if e.get("class") == "grid")
    assert top_tick >= 7
    assert tallest == pytest.approx((grid[-1] - grid[0]) * 7 / top_tick, rel=1e-3)


def test_stacked_month_columns_add_up_and_carry_a_legend():
    months = ["2026-07", "2026-08"]
    series = [("recycling", [2_000_000, 1_000_000]), ("walking", [1_000_000, 0])]

    root = parse(charts.month_bar_chart("By type", months, series, measure="grams"))

    drawn = bars(root)
    assert [(b.get("data-series"), b.get("data-label"), int(b.get("data-value"))) for b in drawn] == [
        ("recycling", "2026-07", 2_000_000), ("walking", "2026-07", 1_000_000), ("recycling", "2026-08", 1_000_000)]
    heights = [float(b.get("height")) for b in drawn]
    assert heights[0] == pytest.approx(2 * heights[1], rel=1e-3)
    assert heights[0] == pytest.approx(2 * heights[2], rel=1e-3)
    # the walking block sits on top of the recycling block of the same month
    assert float(drawn[1].get("y")) + heights[1] == pytest.approx(float(drawn[0].get("y")), abs=0.02)
    assert texts(root, "value total") == ["3,000 kg CO₂e", "1,000 kg CO₂e"]
    legend = ["".join(g.itertext()) for g in root.iter(f"{SVG}g") if g.get("class") == "legend-item"]
    assert legend == ["recycling", "walking"]


def test_grouped_month_bars_stand_side_by_side_at_their_own_heights():
    root = parse(charts.month_bar_chart("Grouped", ["7月"], [("a", [40]), ("b", [10])], stacked=False))

    a, b = bars(root)
    assert float(a.get("x")) + float(a.get("width")) == pytest.approx(float(b.get("x")), abs=0.02)
    assert float(a.get("height")) == pytest.approx(4 * float(b.get("height")), rel=1e-3)
    assert texts(root, "value") == ["40", "10"]


def test_line_points_rise_with_the_values():
    root = parse(charts.line_chart("Households", ["2026-07", "2026-08", "2026-09"], [("active", [4, 8, 2])]))

    points = [e for e in root.iter(f"{SVG}circle") if e.get("class") == "point"]
    bottom = float([e for e in root.iter(f"{SVG}line") if e.get("class") == "axis"][1].get("y1"))
    rises = [bottom - float(p.get("cy")) for p in points]
    assert [int(p.get("data-value")) for p in points] == [4, 8, 2]
    assert rises[1] == pytest.approx(2 * rises[0], rel=1e-3)
    assert rises[0] == pytest.approx(2 * rises[2], rel=1e-3)
    assert texts(root, "value") == ["4", "8", "2"]
    polyline = root.find(f"{SVG}polyline")
    assert len(polyline.get("points").split()) == 3


@pytest.mark.parametrize("draw", [
    lambda: charts.bar_chart("空图", [], empty="暂无数据"),
    lambda: charts.bar_chart("空图", [("a", 0)], empty="暂无数据"),
    lambda: charts.month_bar_chart("空图", [], [], empty="暂无数据"),
    lambda: charts.month_bar_chart("空图", ["2026-07"], [("a", [0])], empty="暂无数据"),
    lambda: charts.line_chart("空图", ["2026-07"], [], empty="暂无数据"),
])
def test_empty_data_draws_a_titled_chart_that_says_so(draw):
    root = parse(draw())

    assert texts(root, "chart-empty") == ["暂无数据"]
    assert "空图" in texts(root, "chart-title")
    assert bars(root) == []


def test_text_from_data_is_escaped():
    markup = str(charts.month_bar_chart('<script>alert("x")</script>', ["<b>7</b>"],
                                        [("a&b <i>", [5])]))

    root = parse(markup)
    assert "<script>" not in markup and "<b>" not in markup
    assert root.find(f"{SVG}title").text == '<script>alert("x")</script>'
    assert texts(root, "category") == ["<b>7</b>"]
    assert bars(root)[0].get("data-series") == "a&b <i>"


@pytest.mark.parametrize("grams, shown", [
    (0, "0 g CO₂e"), (850, "850 g CO₂e"), (9_999, "9,999 g CO₂e"), (12_345_678, "12.3 t CO₂e"),
    (10_000, "10 kg CO₂e"), (1_234_500, "1,235 kg CO₂e"), (9_999_499, "9,999 kg CO₂e"),
    (10_050_000, "10.1 t CO₂e"), (1_234_567_890_123, "1,234,567.9 t CO₂e"), (-12_345_678, "-12.3 t CO₂e"),
])
def test_grams_read_as_g_kg_or_t_co2e(grams, shown):
    assert charts.format_grams(grams) == shown


def test_a_small_value_in_a_chart_of_large_ones_reads_below_one_unit_not_zero():
    assert charts.grams_measure(50_000_000).format(200_000) == "<1 t CO₂e"
    assert charts.grams_measure(50_000_000).format(0) == "0 t CO₂e"


@pytest.mark.parametrize("largest, divisor, ticks", [
    (7, 1, [0, 2, 4, 6, 8]), (3_600_499, 1_000, [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]),
    (1, 1, [0, 1]), (0, 1, [0, 1]), (100, 1, [0, 20, 40, 60, 80, 100]),
])
def test_ticks_are_round_numbers_covering_the_largest_value(largest, divisor, ticks):
    assert charts.nice_ticks(largest, divisor) == ticks


def test_an_empty_month_has_no_bar_and_no_total_but_keeps_its_label():
    root = parse(charts.month_bar_chart("t", ["2026-07", "2026-08"], [("a", [0, 5])]))

    assert [b.get("data-label") for b in bars(root)] == ["2026-08"]
    assert texts(root, "value total") == ["5"]
    assert texts(root, "category") == ["2026-07", "2026-08"]
