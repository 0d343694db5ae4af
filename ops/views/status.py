"""The public status page (no login, the same answer for everyone, cacheable for 30 s), its
incident history, Atom and JSON feeds, and the internal page where those who may update an
incident post its public updates.

The public views render without the request (no context processors, no session, no CSRF
token) from the selectors' public records only: nothing internal can reach them."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.views.decorators.http import require_GET, require_http_methods

from ops.forms.status import PublicUpdateForm
from ops.models import Incident
from ops.selectors.status import (
    StatusPage,
    incident_public_updates,
    public_incident_history,
    public_updates_recent,
    status_page,
    worst,
)
from ops.services.status import public_update_post
from portal.errors import ActionRefused

PUBLIC_MAX_AGE = 30
HISTORY_LIMIT = 50


def _public(
    request: HttpRequest, body: str | bytes, content_type: str = "text/html; charset=utf-8"
) -> HttpResponse:
    """The same answer for everyone: rendered without the request, so it does not vary by
    cookie even though the middleware looked at the session (to see who is logged in); a
    CDN may hold it for 30 s."""
    response = HttpResponse(body, content_type=content_type)
    session = getattr(request, "session", None)
    if session is not None:
        session.accessed = False  # only to leave "Vary: Cookie" off, see the docstring
    response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}"
    return response


def _page_name() -> str:
    return f"{settings.PORTAL_NAME} status"


@login_not_required
@require_GET
def status_view(request: HttpRequest) -> HttpResponse:
    page = status_page()
    return _public(
        request,
        render_to_string("ops/status/status.html", {"page": page, "page_name": _page_name()}),
    )


@login_not_required
@require_GET
def status_history(request: HttpRequest) -> HttpResponse:
    incidents = public_incident_history(limit=HISTORY_LIMIT)
    return _public(
        request,
        render_to_string(
            "ops/status/history.html",
            {"incidents": incidents, "page_name": _page_name(), "now": timezone.now()},
        ),
    )


@login_not_required
@require_GET
def status_atom(request: HttpRequest) -> HttpResponse:
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
    return _public(request, feed.writeString("utf-8"), "application/atom+xml; charset=utf-8")


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
    page = status_page(with_bars=True)
    body = summary_json(page, url=request.build_absolute_uri(reverse("ops:status")))
    return _public(request, json.dumps(body, indent=1), "application/json")


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
