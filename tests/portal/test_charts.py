"""Chart axes: ticks at round values in one unit, labels that fit, a value on every point."""

import itertools
import math
import re
from datetime import date, timedelta

import pytest

from ops import charts
from portal.charts import duration_axis, nice_ticks, tick_label


@pytest.mark.parametrize(
    ("top_minutes", "unit", "ticks"),
    [
        (0.4 * 60, "min", [0, 5, 10, 15, 20, 25]),  # 0-0.4 h: minutes, not ".33333 h"
        (37, "min", [0, 10, 20, 30, 40]),  # 0-37 min: not "37.5 min"
        (3 * 1440, "d", [0, 1, 2, 3]),  # 0-3 days
        (0.5, "s", [0, 10, 20, 30]),
        (47 * 60, "h", [0, 10, 20, 30, 40, 50]),
    ],
    ids=["0-0.4h", "0-37min", "0-3d", "0-30s", "0-47h"],
)
def test_duration_axis_on_awkward_ranges(top_minutes, unit, ticks):
    got_unit, per, got = duration_axis(top_minutes)
    assert got_unit == unit and got == ticks
    assert got[-1] * per >= top_minutes  # the top tick covers the highest value


@pytest.mark.parametrize(
    "top", [0.4, 0.33333, 1, 3, 7, 37, 99, 1234, 0.0001, 86_399, 1e6, 0, -5, float("nan")]
)
def test_ticks_step_by_one_two_or_five_times_a_power_of_ten(top):
    ticks = nice_ticks(top)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and 2 <= len(ticks) <= 6 and ticks[0] == 0
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in {1, 2, 5}
    if top > 0 and not math.isnan(top):
        assert ticks[-1] >= top and ticks[-2] < top
    assert all(len(tick_label(t)) <= 10 for t in ticks)  # never "0.30000000000000004"


def test_report_chart_labels_fit_and_every_point_has_its_value():
    months = [date(2026, m, 1) for m in range(1, 13)]
    values = [timedelta(minutes=20), None, timedelta(minutes=37.5)] + [None] * 9
    svg = str(
        charts.lines(title="Median time to acknowledge", months=months, series=[("P1", values)])
    )
    labels = re.findall(
        r'<text class="axis" x="([\d.]+)" y="[\d.]+" text-anchor="end">([^<]+)<', svg
    )
    assert [label for _x, label in labels] == ["0", "10", "20", "30", "40"]
    assert ">min</text>" in svg  # the unit, once per axis
    left = float(labels[0][0])
    assert all(len(label) * charts.CHAR <= left for _x, label in labels)  # nothing clipped
    assert svg.count("<circle") == 2 and "<title>P1 Jan 2026: 20 min</title>" in svg
    assert "<title>P1 Mar 2026: 38 min</title>" in svg
    # The table fallback has the same numbers.
    assert "Median time to acknowledge as a table" in svg and '<td class="num">20 min</td>' in svg


def test_count_axis_never_shows_a_fraction_of_an_incident():
    months = [date(2026, 1, 1), date(2026, 2, 1)]
    svg = str(charts.stacked_bars(title="Incidents", months=months, series=[("P0", [1, 0])]))
    labels = re.findall(r'text-anchor="end">([^<]+)<', svg)
    assert labels == ["0", "1"]


def test_chart_text_is_escaped():
    """Severity codes and titles are the admin's text: markup in them shows as text in the
    charts, their tables and the legend, and never becomes an element."""
    months = [date(2026, 1, 1), date(2026, 2, 1)]
    name, title = '<b>P1</b> & "x"', "Time <to> acknowledge"
    html = "".join(
        str(chart)
        for chart in (
            charts.lines(title=title, months=months, series=[(name, [timedelta(minutes=5)] * 2)]),
            charts.stacked_bars(title=title, months=months, series=[(name, [1, 2])]),
            charts.legend([name]),
        )
    )
    assert "<b>" not in html and "<to>" not in html
    assert "&lt;b&gt;P1&lt;/b&gt; &amp; &quot;x&quot;" in html
    assert "<title>&lt;b&gt;P1&lt;/b&gt; &amp; &quot;x&quot; Feb 2026: 2</title>" in html
    assert 'aria-label="Time &lt;to&gt; acknowledge as a table"' in html
