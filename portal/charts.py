"""Numbers to SVG coordinates for the small server-rendered charts (no JavaScript, no styles:
templates draw them with SVG attributes and CSS classes)."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Plot:
    points: str  # "x,y x,y ..." for a <polyline>
    markers: list[tuple[float, float, str]]  # (x, y, css class) for points worth a dot
    low: float
    high: float


def plot(
    series: Sequence[tuple[float, float | None, str]],
    *,
    width: float,
    height: float,
    x_range: tuple[float, float],
    pad: float = 2.0,
) -> Plot:
    """``series`` of (x, y, state): y None (no latency, e.g. a refused connection) gets a
    marker at the bottom; points whose state is not "ok" get a marker in that state's class."""
    values = [y for _x, y, _state in series if y is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
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
    return Plot(points=" ".join(points), markers=markers, low=low, high=high)
