from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A short human duration: "45 s", "12 min", "2 h 5 min", "3 d 4 h"."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def get_item(mapping: dict, key: str):
    """``mapping|get_item:"24h"``: a dict value whose key is not a valid attribute name."""
    return mapping.get(key) if mapping else None


@register.filter
def ago(moment) -> str:
    """ "8 s ago", "3 min ago": finer than timesince, for things checked every few seconds."""
    if moment is None:
        return "never"
    from django.utils import timezone

    return f"{duration(timezone.now() - moment)} ago"
