"""Authentication for the JSON APIs: a session, or `Authorization: Bearer <API token>`."""

from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse

from portal.services.tokens import api_token_user


def bearer_token(request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def login_or_token_required(view):
    """Let a logged-in user or a valid API token through; anything else gets a JSON 401.

    A request that sends a bearer token is authenticated by that token alone, never by the
    session cookie beside it: such requests skip the CSRF check (browsers do not send the
    header on their own), so a session must not ride along with a made-up token."""

    @login_not_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        raw = bearer_token(request)
        if raw or not request.user.is_authenticated:
            user = api_token_user(raw) if raw else None
            if user is None:
                message = "Invalid or revoked API token." if raw else "Log in or send an API token."
                response = JsonResponse({"error": message}, status=401)
                response["WWW-Authenticate"] = 'Bearer realm="ops-portal"'
                return response
            request.user = user
        return view(request, *args, **kwargs)

    return wrapped
