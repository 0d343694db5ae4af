from django import template
from django.utils import timezone

from portal import formatting

register = template.Library()

register.filter("duration", formatting.duration)
register.filter("human_bytes", formatting.human_bytes)
register.filter("seconds", formatting.seconds)
register.filter("percent", formatting.percent)
register.filter("savings", formatting.savings)


@register.filter
def get_item(mapping: dict, key: str):
    """``mapping|get_item:"24h"``: a dict value whose key is not a valid attribute name."""
    return mapping.get(key) if mapping else None


@register.filter
def ago(moment) -> str:
    """ "8 s ago", "3 min ago": finer than timesince, for things checked every few seconds."""
    if moment is None:
        return "never"
    return f"{formatting.duration(timezone.now() - moment)} ago"


@register.filter
def any_ssim(variants) -> bool:
    """Whether any image variant had its SSIM measured (the column is shown only then)."""
    return any(variant.ssim is not None for variant in variants)
