from functools import partial

from django.conf import settings
from django.urls import reverse

from portal.registry import registry


def portal(request):
    return {"portal_name": settings.PORTAL_NAME}


def navigation(request):
    """The main navigation's links this user may follow, each with its URL and whether the
    page shown is one of its pages: a callable, so that only a page that shows the
    navigation (not an htmx fragment) works it out."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_links": partial(_links_for, request, user)}


def _links_for(request, user) -> list[dict]:
    match = request.resolver_match
    view_name = match.view_name if match else ""
    return [
        {"label": link.label, "url": reverse(link.url_name), "current": link.is_current(view_name)}
        for link in registry.nav_links
        if link.shown_to(user)
    ]
