"""Server-rendered SVG charts for the incident report: no script, no style attribute (the CSP
forbids inline styles); colours come from CSS classes in portal.css (`series-N`)."""

import math
from datetime import date, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 40


def _nice_max(value: float) -> float:
    """A round top for the axis: 1, 2, 5 x 10^n at or above ``value``."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(title: str, description: str, top: float, axis_label, months: list[date]) -> list:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        format_html('<title id="{}">{}</title><desc>{}</desc>', _slug(title), title, description)
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}" stroke="#d9dee7"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                LEFT + plot_w,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                axis_label(value),
            )
        )
    step = plot_w / max(len(months), 1)
    every = max(1, len(months) // 8)
    for position, month in enumerate(months):
        if position % every == 0:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    f"{LEFT + step * (position + 0.5):.1f}",
                    HEIGHT - BOTTOM + 16,
                    month.strftime("%b %y"),
                )
            )
    return parts


def _slug(title: str) -> str:
    return "chart-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def _svg(title: str, parts: list) -> SafeString:
    body = mark_safe("".join(str(part) for part in parts))  # noqa: S308 (parts are escaped)
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}" '
        'xmlns="http://www.w3.org/2000/svg">{}</svg>',
        WIDTH,
        HEIGHT,
        _slug(title),
        body,
    )


def stacked_bars(
    *, title: str, months: list[date], series: list[tuple[str, list[int]]]
) -> SafeString:
    """One bar a month, one colour a series (severity), stacked; a tooltip per segment."""
    totals = [sum(values) for values in zip(*(values for _, values in series), strict=True)]
    # Counts: a top divisible by the four grid steps keeps every tick a whole number.
    top = max(4, math.ceil(max(totals, default=0) / 4) * 4)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months), 1)
    description = "; ".join(
        f"{month:%b %Y}: "
        + ", ".join(f"{name} {values[i]}" for name, values in series if values[i])
        for i, month in enumerate(months)
        if totals[i]
    )
    parts = _frame(title, description or "No incidents.", top, lambda v: f"{v:g}", months)
    for i, month in enumerate(months):
        base = 0
        for number, (name, values) in enumerate(series):
            if not values[i]:
                continue
            height = plot_h * values[i] / top
            y = TOP + plot_h - plot_h * (base + values[i]) / top
            parts.append(
                format_html(
                    '<rect class="series-{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{} {}: {}</title></rect>",
                    number,
                    f"{LEFT + step * i + step * 0.15:.1f}",
                    f"{y:.1f}",
                    f"{step * 0.7:.1f}",
                    f"{height:.1f}",
                    name,
                    f"{month:%b %Y}",
                    values[i],
                )
            )
            base += values[i]
    return _svg(title, parts)


def _minutes_label(value: float) -> str:
    if value >= 120:
        return f"{value / 60:g} h"
    return f"{value:g} min"


def lines(
    *, title: str, months: list[date], series: list[tuple[str, list[timedelta | None]]]
) -> SafeString:
    """A line a series (severity) through its monthly values; gaps where a month has none."""
    minutes = [
        (name, [None if v is None else v.total_seconds() / 60 for v in values])
        for name, values in series
    ]
    top = _nice_max(max((v for _, vs in minutes for v in vs if v is not None), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months), 1)
    description = "; ".join(
        f"{name}: "
        + ", ".join(f"{months[i]:%b %Y} {_minutes_label(round(v))}" for i, v in enumerate(vs) if v)
        for name, vs in minutes
        if any(v is not None for v in vs)
    )
    parts = _frame(title, description or "No data.", top, _minutes_label, months)
    for number, (name, values) in enumerate(minutes):
        points = []
        for i, value in enumerate(values):
            if value is None:
                continue
            x = LEFT + step * (i + 0.5)
            y = TOP + plot_h - plot_h * value / top
            points.append((x, y))
            parts.append(
                format_html(
                    '<circle class="series-{}" cx="{}" cy="{}" r="3"><title>{} {}: {}</title>'
                    "</circle>",
                    number,
                    f"{x:.1f}",
                    f"{y:.1f}",
                    name,
                    f"{months[i]:%b %Y}",
                    _minutes_label(round(value, 1)),
                )
            )
        if len(points) > 1:
            parts.append(
                format_html(
                    '<polyline class="line series-{}" fill="none" stroke-width="2" points="{}"/>',
                    number,
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                )
            )
    return _svg(title, parts)


def legend(names: list[str]) -> SafeString:
    return format_html(
        '<ul class="legend">{}</ul>',
        format_html_join(
            "",
            '<li><span class="swatch series-{}" aria-hidden="true"></span>{}</li>',
            ((number, name) for number, name in enumerate(names)),
        ),
    )
