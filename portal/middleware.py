"""Request context for code that has no request: the audit log's client address."""

from contextvars import ContextVar

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequiredMiddleware
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


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
        try:
            return self.get_response(request)
        finally:
            client_address.reset(token)


class LoginRequiredMiddleware(_LoginRequiredMiddleware):
    """Django's, but an htmx request of an expired session moves the whole page to the login
    form instead of swapping it into a table row."""

    def handle_no_permission(self, request, view_func):
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(
                f"{resolve_url(settings.LOGIN_URL)}?next={request.htmx.current_url_abs_path or '/'}"
            )
        return super().handle_no_permission(request, view_func)
