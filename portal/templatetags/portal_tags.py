from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portal import formatting
from portal.caching import render_each

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


@register.simple_tag
def include_each(template_name: str, items, name: str) -> SafeString:
    """``{% include_each "ops/health/_tile.html" tiles "tile" %}``: the template once per item
    (as ``name``), each fragment cached until what it shows changes (portal.caching.render_each)."""
    return mark_safe("".join(render_each(template_name, [{name: item} for item in items])))  # noqa: S308
