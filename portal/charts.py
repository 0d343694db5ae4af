"""Numbers to SVG coordinates for the small server-rendered charts (no JavaScript, no styles:
templates draw them with SVG attributes and CSS classes)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# (name, minutes in one): the unit of a duration axis is the largest whose ticks stay readable.
DURATION_UNITS = [("s", 1 / 60), ("min", 1), ("h", 60), ("d", 1440)]


def nice_ticks(top: float, *, most: int = 6) -> list[float]:
    """Ticks from 0 to at least ``top`` at a round step (1, 2 or 5 x 10^n), at most ``most``
    of them (0 included): 0-0.4 gives 0, 0.1, ..., 0.4; 0-37 gives 0, 10, 20, 30, 40."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    exponent = math.floor(math.log10(top / (most - 1)))
    for power in (exponent, exponent + 1):
        for mantissa in (1, 2, 5):
            step = mantissa * 10**power
            count = math.ceil(top / step - 1e-9)
            if count + 1 <= most:
                decimals = max(0, -power)
                return [round(i * step, decimals) for i in range(count + 1)]
    return [0.0, top]  # not reached: 10^(exponent+1) always fits


def tick_label(value: float) -> str:
    """A tick as people write it: 0.1, 2, 1000 (no 0.30000000000000004, no trailing .0)."""
    return f"{value:,.10g}".replace(",", "\u202f")


def duration_axis(top_minutes: float, *, most: int = 6) -> tuple[str, float, list[float]]:
    """One unit for a whole axis of durations given in minutes: (unit, minutes per unit,
    ticks in that unit). 0-0.4 h is drawn in minutes, 0-37 min in minutes, 0-3 days in days."""
    unit, per = "min", 1.0
    if not top_minutes > 0:
        return unit, per, nice_ticks(0)
    for name, minutes in DURATION_UNITS:
        if top_minutes >= 2 * minutes or name == "s":
            unit, per = name, minutes
    return unit, per, nice_ticks(top_minutes / per, most=most)


@dataclass
class Plot:
    points: str  # "x,y x,y ..." for a <polyline>
    markers: list[tuple[float, float, str]]  # (x, y, css class) for points worth a dot
    low: float
    high: float
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (y, label) with axis=True


def plot(
    series: Sequence[tuple[float, float | None, str]],
    *,
    width: float,
    height: float,
    x_range: tuple[float, float],
    pad: float = 2.0,
    axis: bool = False,
) -> Plot:
    """``series`` of (x, y, state): y None (no latency, e.g. a refused connection) gets a
    marker at the bottom; points whose state is not "ok" get a marker in that state's class.
    Without ``axis`` (a sparkline) y spans the values; with it, 0 to a round top, with ticks."""
    values = [y for _x, y, _state in series if y is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    ticks: list[float] = []
    if axis:
        ticks = nice_ticks(high, most=5)
        low, high = 0.0, ticks[-1]
    if high - low < 1e-9:
        high = low + 1.0
    x0, x1 = x_range
    span = (x1 - x0) or 1.0

    def to_x(x: float) -> float:
        return round(pad + (x - x0) / span * (width - 2 * pad), 1)

    def to_y(y: float) -> float:
        return round(height - pad - (y - low) / (high - low) * (height - 2 * pad), 1)

    points, markers = [], []
    for x, y, state in series:
        if y is None:
            markers.append((to_x(x), height - pad, state))
            continue
        points.append(f"{to_x(x)},{to_y(y)}")
        if state != "ok":
            markers.append((to_x(x), to_y(y), state))
    return Plot(
        points=" ".join(points),
        markers=markers,
        low=low,
        high=high,
        ticks=[(to_y(tick), tick_label(tick)) for tick in ticks],
    )
