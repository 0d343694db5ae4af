"""One place that decides whether a request gets a page or a fragment."""

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string


def wants_fragment(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted


def render_fragments(
    request: HttpRequest, parts: list[tuple[str, dict]], *, status: int = 200
) -> HttpResponse:
    """Concatenate several partials ("page.html#name") into one htmx response: the first is the
    swap target, the others carry hx-swap-oob."""
    html = "".join(render_to_string(name, context, request=request) for name, context in parts)
    return HttpResponse(html, status=status)
