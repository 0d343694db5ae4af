"""Request context for code that has no request (the audit log's client address), the login
redirect of htmx requests, query strings no page can read, and the Content-Security-Policy."""

from contextvars import ContextVar
from urllib.parse import urlencode

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequiredMiddleware
from django.http.request import split_domain_port
from django.shortcuts import render, resolve_url
from django_htmx.http import HttpResponseClientRedirect

from portal.params import nul_parameters

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)
# The user of the request being served (lazy, as request.user is), for records made by code
# that is not handed the request: a password change saved by the admin or a view.
request_user: ContextVar = ContextVar("request_user", default=None)


def request_client_address(request) -> str | None:
    """The client's address, trusting X-Forwarded-For only as far as the configured proxies."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = client_address.set(request_client_address(request))
        user_token = request_user.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            request_user.reset(user_token)
            client_address.reset(token)


class HostUrlconfMiddleware:
    """A host with URLs of its own (``settings.HOST_URLCONFS``: the status page's host serves
    the status page only) resolves its requests against them, so anything else there is a
    404; every other host gets ROOT_URLCONF. Before CommonMiddleware, which looks at the
    request's URLs to add a slash."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.HOST_URLCONFS:
            host, _port = split_domain_port(request.get_host())
            urlconf = settings.HOST_URLCONFS.get(host)
            if urlconf:
                request.urlconf = urlconf
        return self.get_response(request)


class LoginRequiredMiddleware(_LoginRequiredMiddleware):
    """Django's, but an htmx request of an expired session moves the whole page to the login
    form instead of swapping it into a table row."""

    def handle_no_permission(self, request, view_func):
        if getattr(request, "htmx", False):
            # Encoded whole: a page's own query string (?a=1&b=2) stays inside `next`.
            query = urlencode({"next": request.htmx.current_url_abs_path or "/"})
            return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?{query}")
        return super().handle_no_permission(request, view_func)


class RefuseNulParametersMiddleware:
    """A NUL character (``%00``) in a query parameter reaches no view: no filter, search or
    page number can hold one, and PostgreSQL refuses it with an error. The answer is a 400
    page that names the parameters, with a link to the same page without its query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        names = nul_parameters(request.GET)
        if names:
            listed = ", ".join(f"“{name}”" for name in names)
            message = (
                f"The address has a NUL character (%00) in {listed}, which no filter accepts. "
                "Remove it and try again."
            )
            context = {"message": message, "back": request.path.replace("\x00", "")}
            return render(request, "400.html", context, status=400)
        return self.get_response(request)


class CSPMiddleware(_CSPMiddleware):
    """django-csp's, except for an empty answer (204, such as "no change" to a poll): a policy
    governs a document, and there is none; building it cost 8 % of such an answer's CPU."""

    def process_response(self, request, response):
        if response.status_code == 204:
            return response
        return super().process_response(request, response)
