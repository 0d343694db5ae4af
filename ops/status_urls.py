"""The public status pages' URLs: under /status/ on the portal's host (ops.urls includes
``public_patterns``), and the whole of what the status host serves when STATUS_HOST is set
(settings.HOST_URLCONFS names this module): everything else on that host is a 404."""

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from ops.views import status

public_patterns = [
    path("", status.status_view, name="status"),
    path("history/", status.status_history, name="status_history"),
    path("feed.atom", status.status_atom, name="status_atom"),
    path("api/v2/summary.json", status.status_json, name="status_json"),
    path("subscribe/", status.status_subscribe, name="status_subscribe"),
    path("subscribe/confirm/<str:token>/", status.status_confirm, name="status_confirm"),
    path("unsubscribe/<str:key>/", status.status_unsubscribe, name="status_unsubscribe"),
]

# The status host's own root: the same names in the same namespace, so the templates and
# the links in e-mail are reversed alike on either host.
urlpatterns = [
    path("", include((public_patterns, "ops"))),
    # /status/ bookmarked from the portal's host lands on the page.
    path("status/", login_not_required(RedirectView.as_view(url="/", permanent=False))),
]

handler404 = status.status_not_found
