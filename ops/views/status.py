"""The public status page (no login, the same answer for everyone, cacheable for 30 s), its
incident history, Atom and JSON feeds, and the internal page where those who may update an
incident post its public updates.

The public views render without the request (no context processors, no session, no CSRF
token) from the selectors' public records only: nothing internal can reach them."""

import json
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ops.forms.status import OverrideForm, PublicUpdateForm, SubscribeForm
from ops.models import ComponentOverride, Incident
from ops.selectors.status import (
    StatusPage,
    incident_public_updates,
    incident_status_card,
    public_components_for_form,
    public_incident_history,
    public_updates_recent,
    status_page,
    worst,
)
from ops.services.status import (
    component_override_end,
    component_override_set,
    public_update_post,
)
from ops.services.status_cache import status_cache_version
from ops.services.status_subscribers import (
    subscription_cancel,
    subscription_confirm,
    subscription_confirm_read,
    subscription_for_key,
    subscription_request,
)
from portal.errors import ActionRefused
from portal.htmx import attempt, back_to
from portal.middleware import request_client_address

PUBLIC_MAX_AGE = 30
HTML = "text/html; charset=utf-8"
HISTORY_LIMIT = 50


def _public(
    request: HttpRequest, body: str | bytes, content_type: str = "text/html; charset=utf-8"
) -> HttpResponse:
    """The same answer for everyone: rendered without the request, so it does not vary by
    cookie even though the middleware looked at the session (to see who is logged in); a
    CDN may hold it for 30 s."""
    response = HttpResponse(body, content_type=content_type)
    _no_vary_cookie(request)
    response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}"
    return response


def _no_vary_cookie(request: HttpRequest) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        session.accessed = False  # only to leave "Vary: Cookie" off, see _public


def _cached(request: HttpRequest, name: str, make: Callable[[], tuple[str, str]]) -> HttpResponse:
    """A public page from the server's cache when it holds this version of it (for this host:
    the links differ on the status host), else rendered and kept STATUS_CACHE_SECONDS."""
    seconds = settings.STATUS_CACHE_SECONDS
    key = f"status-page:{status_cache_version()}:{name}:{request.scheme}:{request.get_host()}"
    found = cache.get(key) if seconds else None
    if found is None:
        found = make()
        if seconds:
            cache.set(key, found, seconds)
        hit = "miss"
    else:
        hit = "hit"
    response = _public(request, found[0], found[1])
    response["X-Status-Cache"] = hit
    return response


def _page_name() -> str:
    return f"{settings.PORTAL_NAME} status"


@login_not_required
@require_GET
def status_view(request: HttpRequest) -> HttpResponse:
    def make() -> tuple[str, str]:
        page = status_page()
        context = {"page": page, "page_name": _page_name(), "form": SubscribeForm()}
        return render_to_string("ops/status/status.html", context), HTML

    return _cached(request, "page", make)


@login_not_required
@require_GET
def status_history(request: HttpRequest) -> HttpResponse:
    def make() -> tuple[str, str]:
        incidents = public_incident_history(limit=HISTORY_LIMIT)
        context = {"incidents": incidents, "page_name": _page_name(), "now": timezone.now()}
        return render_to_string("ops/status/history.html", context), HTML

    return _cached(request, "history", make)


@login_not_required
@require_GET
def status_atom(request: HttpRequest) -> HttpResponse:
    return _cached(request, "atom", lambda: _atom(request))


def _atom(request: HttpRequest) -> tuple[str, str]:
    history = request.build_absolute_uri(reverse("ops:status_history"))
    feed = Atom1Feed(
        title=_page_name(),
        link=request.build_absolute_uri(reverse("ops:status")),
        description="Incidents and their updates",
        language="en",
        feed_url=request.build_absolute_uri(reverse("ops:status_atom")),
        feed_guid=request.build_absolute_uri(reverse("ops:status")),
    )
    for incident, update in public_updates_recent(limit=HISTORY_LIMIT):
        feed.add_item(
            title=f"{incident.title}: {update.status_label}",
            link=f"{history}#incident-{incident.id}",
            description=update.message,
            unique_id=f"{history}#update-{update.id}",
            pubdate=update.posted_at,
            updateddate=update.posted_at,
        )
    return feed.writeString("utf-8"), "application/atom+xml; charset=utf-8"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def summary_json(page: StatusPage, *, url: str) -> dict:
    """Atlassian Statuspage's /api/v2/summary.json shape, which status aggregators read."""
    groups = {}
    for component in page.components:
        if component.group_id is not None:
            groups.setdefault(component.group_id, (component.group, []))[1].append(component)
    components = [
        {
            "id": f"group-{group_id}",
            "name": name,
            "status": worst(member.state for member in members),
            "description": None,
            "position": position,
            "group": True,
            "group_id": None,
            "components": [str(member.id) for member in members],
            "created_at": None,
            "updated_at": _iso(max(member.updated_at for member in members)),
            "showcase": False,
            "only_show_if_degraded": False,
        }
        for position, (group_id, (name, members)) in enumerate(groups.items())
    ]
    for position, component in enumerate(page.components):
        components.append(
            {
                "id": str(component.id),
                "name": component.name,
                "status": component.state,
                "description": component.description or None,
                "position": position,
                "group": False,
                "group_id": f"group-{component.group_id}" if component.group_id else None,
                "created_at": None,
                "updated_at": _iso(component.updated_at),
                "showcase": True,
                "only_show_if_degraded": False,
                "uptime_90d": round(component.uptime, 3) if component.uptime is not None else None,
            }
        )
    return {
        "page": {
            "id": "status",
            "name": _page_name(),
            "url": url,
            "time_zone": "Etc/UTC",
            "updated_at": _iso(page.now),
        },
        "status": {"indicator": page.indicator, "description": page.description},
        "components": components,
        "incidents": [
            {
                "id": str(incident.id),
                "name": incident.title,
                "status": incident.status,
                "impact": incident.impact,
                "created_at": _iso(incident.started_at),
                "updated_at": _iso(incident.updated_at),
                "started_at": _iso(incident.started_at),
                "resolved_at": _iso(incident.resolved_at),
                "shortlink": f"{url}history/#incident-{incident.id}",
                "components": list(incident.components),
                "incident_updates": [
                    {
                        "id": str(update.id),
                        "incident_id": str(incident.id),
                        "status": update.status,
                        "body": update.message,
                        "created_at": _iso(update.posted_at),
                        "updated_at": _iso(update.posted_at),
                        "display_at": _iso(update.posted_at),
                    }
                    for update in incident.updates
                ],
            }
            for incident in page.current
        ],
        "scheduled_maintenances": [
            {
                "id": window.id,
                "name": window.title,
                "status": "in_progress" if window.in_progress else "scheduled",
                "impact": "maintenance",
                "scheduled_for": _iso(window.starts_at),
                "scheduled_until": _iso(window.ends_at),
                "shortlink": url,
                "components": list(window.components),
                "incident_updates": [
                    {
                        "id": f"{window.id}-announcement",
                        "status": "in_progress" if window.in_progress else "scheduled",
                        "body": window.announcement,
                        "created_at": _iso(window.starts_at),
                        "display_at": _iso(window.starts_at),
                    }
                ]
                if window.announcement
                else [],
            }
            for window in page.maintenance
        ],
    }


@login_not_required
@require_GET
def status_json(request: HttpRequest) -> HttpResponse:
    def make() -> tuple[str, str]:
        page = status_page(with_bars=True)
        body = summary_json(page, url=request.build_absolute_uri(reverse("ops:status")))
        return json.dumps(body, indent=1), "application/json"

    return _cached(request, "json", make)


# Posting public updates (internal)


@require_http_methods(["GET", "POST"])
def public_update(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.has_perm("ops.view_incident"):
        raise PermissionDenied("You may not see incidents.")
    incident = get_object_or_404(Incident.objects.select_related("severity"), pk=pk)
    if not request.user.has_perm("ops.update_incident"):
        raise PermissionDenied("You may not post updates to incidents.")
    updates = incident_public_updates(incident=incident)
    initial = {"status": updates[0].status if updates else "investigating"}
    form = PublicUpdateForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                public_update_post(incident=incident, user=request.user, **form.cleaned_data)
            except ActionRefused as refused:
                form.add_refusal(refused)
                status = refused.status
            else:
                messages.success(request, "Published on the status page.")
                return redirect(reverse("ops:public_update", args=[incident.pk]))
    context = {
        "incident": incident,
        "form": form,
        "updates": updates,
        "current_title": updates[0].title if updates else "",
    }
    return render(request, "ops/status/public_update.html", context, status=status)


def status_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """The status host's 404: its own page (the portal's names pages this host does not
    serve)."""
    context = {
        "title": "Not found",
        "message": "There is nothing at this address on the status page.",
    }
    return _private(request, "ops/status/subscribe_message.html", context, 404)


# Subscribers (public, never cached: each answer is about one request)


def _private(request: HttpRequest, template: str, context: dict, status: int = 200):
    """A public page about one visitor's request: rendered without the request (no session,
    no CSRF token: the forms of these pages are exempt, see status_subscribe) and never
    stored by a cache."""
    body = render_to_string(template, {"page_name": _page_name(), **context})
    response = HttpResponse(body, status=status, content_type=HTML)
    _no_vary_cookie(request)
    response["Cache-Control"] = "no-store"
    return response


# Exempt from CSRF: the public page is cached and the same for everyone, so it cannot carry a
# token. A forged request can only make the portal send a confirmation link to an address,
# which anyone can ask for anyway; nothing is sent to it unless the link is followed.
@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
def status_subscribe(request: HttpRequest) -> HttpResponse:
    components = public_components_for_form()
    form = SubscribeForm(request.POST or None)
    chosen = request.POST.getlist("components") if request.method == "POST" else []
    context = {"form": form, "components": components, "chosen": chosen}
    if request.method == "GET":
        return _private(request, "ops/status/subscribe.html", context)
    form.is_valid()
    try:
        subscription_request(
            email=form.cleaned_data.get("email", ""),
            components=chosen,
            client=request_client_address(request),
        )
    except ActionRefused as refused:
        field = refused.field if refused.field in ("email", "components") else None
        context["error"] = refused.message
        context["error_field"] = field
        return _private(request, "ops/status/subscribe.html", context, refused.status)
    names = [component.name for component in components if component.slug in chosen]
    done = {"email": form.cleaned_data["email"].strip(), "names": names}
    return _private(request, "ops/status/subscribe_sent.html", done)


@csrf_exempt  # the link from the e-mail is the credential; see status_subscribe
@login_not_required
@require_http_methods(["GET", "POST"])
def status_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link confirms with a button (a mail scanner that opens links
    confirms nothing); POST confirms."""
    try:
        if request.method == "POST":
            subscriber = subscription_confirm(token=token)
            names = [component.name for component in subscriber.components.all()]
            context = {"subscriber": subscriber, "names": names}
            return _private(request, "ops/status/subscribe_done.html", context)
        subscriber, payload = subscription_confirm_read(token=token)
    except ActionRefused as refused:
        context = {"title": "This link does not work", "message": refused.message}
        return _private(request, "ops/status/subscribe_message.html", context, refused.status)
    names = []
    if payload is not None:
        names = [c.name for c in public_components_for_form() if c.pk in payload]
    context = {"subscriber": subscriber, "names": names, "all": payload is None}
    return _private(request, "ops/status/subscribe_confirm.html", context)


@csrf_exempt  # mail clients POST "List-Unsubscribe=One-Click" (RFC 8058) with no token
@login_not_required
@require_http_methods(["GET", "POST"])
def status_unsubscribe(request: HttpRequest, key: str) -> HttpResponse:
    """One click: GET shows the button (link scanners open links), POST unsubscribes, as a
    mail client's one-click unsubscribe does."""
    if request.method == "POST":
        if subscription_cancel(key=key):
            context = {
                "title": "You are unsubscribed",
                "message": "Your address has been deleted; nothing more will be sent to it.",
            }
            return _private(request, "ops/status/subscribe_message.html", context)
    elif (subscriber := subscription_for_key(key=key)) is not None:
        return _private(request, "ops/status/unsubscribe.html", {"subscriber": subscriber})
    context = {
        "title": "No subscription has this link",
        "message": "It was already cancelled (nothing more is sent to the address), or the "
        "link is incomplete: copy the whole address from the e-mail.",
    }
    return _private(request, "ops/status/subscribe_message.html", context, 404)


# Overrides from the incident page


def _incident_for_override(request: HttpRequest, pk: int) -> Incident:
    if not request.user.has_perm("ops.view_incident"):
        raise PermissionDenied("You may not see incidents.")
    incident = get_object_or_404(Incident, pk=pk)
    if not request.user.has_perm("ops.publish_statuscomponent"):
        raise PermissionDenied("You may not override component states.")
    return incident


@require_POST
def incident_override_set(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident_for_override(request, pk)
    card = incident_status_card(incident=incident)
    form = OverrideForm(request.POST, components=card.components)
    back = f"{incident.get_absolute_url()}#status-page"
    if not form.is_valid():
        first = next(iter(form.errors.values()))[0]
        messages.error(request, first)
        response = redirect(back)
        response.status_code = 303
        return response
    component = form.components[form.cleaned_data["component"]]
    _override, refusal = attempt(
        lambda: component_override_set(
            component=component,
            incident=incident,
            state=form.cleaned_data["state"],
            reason=form.cleaned_data["reason"],
            user=request.user,
        )
    )
    done = f"{component.name} is shown on the status page as set until the incident is resolved."
    return back_to(request, back, refusal, done=done)


@require_POST
def incident_override_end(request: HttpRequest, pk: int, override_pk: int) -> HttpResponse:
    incident = _incident_for_override(request, pk)
    override = get_object_or_404(
        ComponentOverride.objects.select_related("component", "incident"),
        pk=override_pk,
        incident=incident,
    )
    _ended, refusal = attempt(lambda: component_override_end(override=override, user=request.user))
    done = f"{override.component.name}: its state is derived again."
    return back_to(request, f"{incident.get_absolute_url()}#status-page", refusal, done=done)
