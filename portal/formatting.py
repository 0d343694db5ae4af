"""How the portal writes bytes, durations, seconds and percentages: one module for templates
(through the template filters), services and views. Plain Python with no Django import, so the
image pipeline uses it too."""

from datetime import timedelta

DASH = "—"


def human_bytes(nbytes: int | None) -> str:
    """ "812 B", "4.2 KB", "1.5 MB", "2.0 GB" (binary multiples, as file managers show)."""
    if nbytes is None:
        return DASH
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} B"


def duration(value: timedelta | None) -> str:
    """A short human duration, rounded as people say it: "45 s", "1 min 24 s", "12 min",
    "2 h 5 min", "3 d 4 h"."""
    if value is None:
        return DASH
    seconds = round(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def seconds(value: float | None) -> str:
    """A processing time: "0.42 s", "12 s", "3 min 5 s"."""
    if value is None:
        return DASH
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def percent(ratio: float | None, *, digits: int = 1) -> str:
    """A ratio (0-1) as "85.2%"."""
    if ratio is None:
        return DASH
    return f"{100 * ratio:.{digits}f}%"


def savings(before: int | None, after: int | None) -> str:
    """The share saved going from ``before`` to ``after`` bytes, as "85.2%"."""
    if not before or after is None:
        return DASH
    return percent(1 - after / before)
