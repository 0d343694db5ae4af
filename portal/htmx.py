"""One place that decides whether a request gets a page or a fragment, and how a service's
refusal becomes a response."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string

from portal.errors import ActionRefused

T = TypeVar("T")


def wants_fragment(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted


def render_fragments(
    request: HttpRequest, parts: list[tuple[str, dict]], *, status: int = 200
) -> HttpResponse:
    """Concatenate several partials ("page.html#name") into one htmx response: the first is the
    swap target, the others carry hx-swap-oob."""
    html = "".join(render_to_string(name, context, request=request) for name, context in parts)
    return HttpResponse(html, status=status)


@dataclass(frozen=True)
class Refusal:
    """Why a service refused an action, and the status that says so."""

    message: str
    status: int


def attempt(action: Callable[[], T]) -> tuple[T | None, Refusal | None]:
    """Run a service call from a view: its result, or the refusal (ActionRefused with its own
    status, PermissionDenied as 403) to show beside the form or in the fragment."""
    try:
        return action(), None
    except PermissionDenied as denied:
        return None, Refusal(str(denied) or "You may not do this.", 403)
    except ActionRefused as refused:
        return None, Refusal(refused.message, refused.status)


def back_to(request: HttpRequest, to, refusal: Refusal | None, *, done: str = "") -> HttpResponse:
    """A plain (non-htmx) form's answer: the refusal or the success as a message, then a 303
    back to the page. A forbidden action stays a 403."""
    if refusal is not None and refusal.status == 403:
        raise PermissionDenied(refusal.message)
    if refusal is not None:
        messages.error(request, refusal.message)
    elif done:
        messages.success(request, done)
    response = redirect(to)
    response.status_code = 303
    return response
