"""Server-rendered SVG charts for the incident report: no script, no style attribute (the CSP
forbids inline styles); colours come from CSS classes in portal.css (`series-N`).

Each axis has one unit and ticks at round values (portal.charts.nice_ticks); the left margin
fits the longest tick label, so labels are never clipped; every bar and point has a <title>
(its value on hover) and each chart comes with a table of the same numbers.

The markup is built with f-strings: the numbers are ours, and the only text that can hold
markup (titles, severity codes, units) goes through ``escape``. ``format_html`` on every
element cost more than the database's figures (it escapes each number again)."""

from datetime import date, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from portal.charts import duration_axis, nice_ticks, tick_label

WIDTH, HEIGHT = 640, 260
RIGHT, TOP, BOTTOM = 12, 40, 40
FONT = 13  # user units; portal.css enlarges it on narrow screens, where the chart shrinks
CHAR = 0.62 * FONT  # an average character's width, to size the left margin


def _left(labels: list[str]) -> float:
    return 16 + CHAR * max((len(label) for label in labels), default=1)


def _frame(
    title: str,
    description: str,
    ticks: list[float],
    unit: str,
    months: list[date],
    left: float,
) -> list[str]:
    plot_w, plot_h = WIDTH - left - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<title id="{escape(_slug(title))}">{escape(title)}</title>'
        f"<desc>{escape(description)}</desc>",
        f'<text class="axis unit" x="4" y="{TOP - 18}">{escape(unit)}</text>',
    ]
    top = ticks[-1]
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text class="axis" x="{left - 6:.1f}" y="{y + FONT / 3:.1f}" '
            f'text-anchor="end">{escape(tick_label(tick))}</text>'
        )
    step = plot_w / max(len(months), 1)
    every = max(1, len(months) // 8)
    for position, month in enumerate(months):
        if position % every == 0:
            # Every other label is left out on narrow screens (class "minor"), where the
            # larger font would make neighbours touch.
            minor = " minor" if (position // every) % 2 == 1 else ""
            parts.append(
                f'<text class="axis{minor}" x="{left + step * (position + 0.5):.1f}" '
                f'y="{HEIGHT - BOTTOM + 20}" text-anchor="middle">{month:%b %y}</text>'
            )
    return parts


def _slug(title: str) -> str:
    return "chart-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def _svg(title: str, parts: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 (every part is escaped where it is built)
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(_slug(title))}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )


def count_ticks(top: int) -> list[float]:
    """Round ticks for counts, never a fraction of an incident."""
    ticks = nice_ticks(max(top, 1))
    if ticks[1] < 1:
        return [float(i) for i in range(int(ticks[-1] + 0.999) + 1)]
    return ticks


def stacked_bars(
    *, title: str, months: list[date], series: list[tuple[str, list[int]]]
) -> SafeString:
    """One bar a month, one colour a series (severity), stacked; a tooltip per segment."""
    totals = [sum(values) for values in zip(*(values for _, values in series), strict=True)]
    ticks = count_ticks(max(totals, default=0))
    top = ticks[-1]
    left = _left([tick_label(t) for t in ticks])
    plot_w, plot_h = WIDTH - left - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months), 1)
    description = "; ".join(
        f"{month:%b %Y}: "
        + ", ".join(f"{name} {values[i]}" for name, values in series if values[i])
        for i, month in enumerate(months)
        if totals[i]
    )
    parts = _frame(title, description or "No incidents.", ticks, "incidents", months, left)
    for i, month in enumerate(months):
        base = 0
        for number, (name, values) in enumerate(series):
            if not values[i]:
                continue
            height = plot_h * values[i] / top
            y = TOP + plot_h - plot_h * (base + values[i]) / top
            parts.append(
                f'<rect class="series-{number}" x="{left + step * i + step * 0.15:.1f}" '
                f'y="{y:.1f}" width="{step * 0.7:.1f}" height="{height:.1f}">'
                f"<title>{escape(name)} {month:%b %Y}: {values[i]}</title></rect>"
            )
            base += values[i]
    return _svg(title, parts)


def _duration_label(minutes: float) -> str:
    """A point's value for its tooltip and table: 42 s, 37 min, 2 h 5 min, 3 d 4 h."""
    seconds = round(minutes * 60)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, rest = divmod(round(seconds / 3600), 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


def _minutes(series: list[tuple[str, list[timedelta | None]]]):
    return [
        (name, [None if v is None else v.total_seconds() / 60 for v in values])
        for name, values in series
    ]


def lines(
    *, title: str, months: list[date], series: list[tuple[str, list[timedelta | None]]]
) -> SafeString:
    """A line a series (severity) through its monthly values; gaps where a month has none."""
    minutes = _minutes(series)
    highest = max((v for _, vs in minutes for v in vs if v is not None), default=0)
    unit, per, ticks = duration_axis(highest)
    top = ticks[-1] * per
    left = _left([tick_label(t) for t in ticks])
    plot_w, plot_h = WIDTH - left - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months), 1)
    description = "; ".join(
        f"{name}: "
        + ", ".join(
            f"{months[i]:%b %Y} {_duration_label(v)}" for i, v in enumerate(vs) if v is not None
        )
        for name, vs in minutes
        if any(v is not None for v in vs)
    )
    parts = _frame(title, description or "No data.", ticks, unit, months, left)
    for number, (name, values) in enumerate(minutes):
        points = []
        for i, value in enumerate(values):
            if value is None:
                continue
            x = left + step * (i + 0.5)
            y = TOP + plot_h - plot_h * value / top
            points.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="series-{number}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                f"<title>{escape(name)} {months[i]:%b %Y}: {_duration_label(value)}</title>"
                "</circle>"
            )
        if len(points) > 1:
            parts.append(
                f'<polyline class="line series-{number}" fill="none" stroke-width="2" '
                f'points="{" ".join(points)}"/>'
            )
    return _svg(title, parts) + lines_table(title=title, months=months, series=series)


def lines_table(
    *, title: str, months: list[date], series: list[tuple[str, list[timedelta | None]]]
) -> SafeString:
    """The numbers of a `lines` chart as a table (for screen readers and exact values)."""
    head = "".join(f'<th scope="col">{m:%b %y}</th>' for m in months)
    rows = "".join(
        f'<tr><th scope="row">{escape(name)}</th>'
        + "".join(
            f'<td class="num">{"—" if v is None else _duration_label(v)}</td>' for v in values
        )
        + "</tr>"
        for name, values in _minutes(series)
    )
    return mark_safe(  # noqa: S308 (the title and names are escaped)
        '<details class="chart-table"><summary>'
        f"{escape(title)} as a table</summary>"
        '<div class="table-wrap" tabindex="0" role="region" '
        f'aria-label="{escape(title)} as a table">'
        '<table class="report"><thead><tr><th scope="col">Severity</th>'
        f"{head}</tr></thead><tbody>{rows}</tbody></table></div></details>"
    )


def legend(names: list[str]) -> SafeString:
    items = "".join(
        f'<li><span class="swatch series-{number}" aria-hidden="true"></span>{escape(name)}</li>'
        for number, name in enumerate(names)
    )
    return mark_safe(f'<ul class="legend">{items}</ul>')  # noqa: S308 (names are escaped)
