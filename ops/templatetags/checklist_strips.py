"""The strip of a checklist's latest runs, which the history table shows on every row: up to
30 links per checklist, so hundreds per page. Written here in one pass (each day's label
formatted once, the run URL reversed once) rather than as a template loop, which cost Today
most of its rendering time."""

from functools import lru_cache

from django import template
from django.urls import reverse
from django.utils import dateformat, timezone, translation
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

_PLACEHOLDER = 2**62  # a run id no table will reach, replaced by each cell's own


@lru_cache(maxsize=1024)
def _day_labels(day, language: str | None) -> tuple[str, str]:
    """ "Mon 30 Nov" and "30 Nov" in ``language`` (the names are translated)."""
    return dateformat.format(day, "D j M"), dateformat.format(day, "j M")


@register.simple_tag
def run_strip(cells: list[dict]) -> SafeString:
    """``{% run_strip history.strip %}``: one link per run, oldest first, coloured by state,
    with its day as the tooltip and as text for screen readers."""
    url = reverse("ops:run_detail", args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")
    language = translation.get_language()
    rows = []
    for cell in cells:
        day = timezone.localtime(cell["created_at"]).date()
        long_label, short_label = _day_labels(day, language)
        rows.append((url.format(cell["pk"]), cell["state"], long_label, short_label))
    cells_html = format_html_join(
        "",
        '<a href="{0}" class="cell {1}" title="{2}: {1}">'
        '<span class="visually-hidden">{3} {1}</span></a>',
        rows,
    )
    return format_html(
        '<span class="strip" aria-label="Latest runs, oldest first">{}</span>', cells_html
    )
