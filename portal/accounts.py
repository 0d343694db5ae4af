"""Logging in and out. django-axes throttles the login (a username from one address is locked
out for AXES_COOLOFF_TIME after AXES_FAILURE_LIMIT failures; an admin unlocks it by deleting
its access attempt); every login, failed login, lockout, logout and password change goes to the
audit log."""

from urllib.parse import urlsplit

from axes.helpers import get_cool_off, get_failure_limit
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.utils import timezone

from portal.formatting import duration
from portal.middleware import request_user
from portal.services.audit import audit_record

User = get_user_model()


class LoginView(auth_views.LoginView):
    """Django's, but a `next` that points back at the login page is dropped: a logged-in user
    asking for /accounts/login/?next=/accounts/login/ goes to Today instead of a loop (which
    Django refuses with an error)."""

    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        url = super().get_redirect_url()
        if url and urlsplit(url).path == resolve_url(settings.LOGIN_URL):
            return ""
        return url


def login_locked_out(request: HttpRequest, response=None, credentials=None) -> HttpResponse:
    """What django-axes answers a locked-out login with (AXES_LOCKOUT_CALLABLE): the login
    page with the reason and when to try again, status 429."""
    cool_off = get_cool_off(request)
    attempt_time = getattr(request, "axes_attempt_time", None) or timezone.now()
    message = "Too many failed logins for this username from your address."
    if cool_off:
        until = timezone.localtime(attempt_time + cool_off)
        message += (
            f" Try again in {duration(cool_off)} (after {until:%H:%M}),"
            " or ask an administrator to unlock it."
        )
    else:
        message += " Ask an administrator to unlock it."
    form = AuthenticationForm(request)
    context = {"form": form, "locked_out": message, "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)


def _username(credentials: dict | None) -> str:
    return str((credentials or {}).get("username") or "")[:150].replace("\x00", "")


@receiver(user_logged_in, dispatch_uid="portal-audit-login")
def _audit_login(sender, request, user, **kwargs):
    audit_record(actor=user, action="auth.login", target=user, summary="Logged in")


@receiver(user_login_failed, dispatch_uid="portal-audit-login-failed")
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    username = _username(credentials)
    locked = request is not None and getattr(request, "axes_locked_out", False)
    user = User.objects.filter(username=username).first() if username else None
    summary = f"Failed login as “{username}”"
    audit_record(
        actor=None,
        action="auth.login.failed",
        target=user,
        summary=summary + (" (locked out)" if locked else ""),
    )


@receiver(user_locked_out, dispatch_uid="portal-audit-lockout")
def _audit_lockout(sender, request, username, ip_address, **kwargs):
    # Sent again for every attempt while locked out (each one restarts the cool-off): those
    # are in the log as failed logins; the lockout is recorded once, when the limit is hit.
    limit = get_failure_limit(request, getattr(request, "axes_credentials", None))
    if getattr(request, "axes_failures_since_start", limit) > limit:
        return
    username = str(username or "")[:150].replace("\x00", "")
    cool_off = get_cool_off(request)
    audit_record(
        actor=None,
        action="auth.lockout",
        target=User.objects.filter(username=username).first() if username else None,
        summary=f"“{username}” locked out"
        + (f" for {duration(cool_off)}" if cool_off else " until an administrator unlocks it"),
    )


@receiver(user_logged_out, dispatch_uid="portal-audit-logout")
def _audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action="auth.logout", target=user, summary="Logged out")


@receiver(post_save, sender=User, dispatch_uid="portal-audit-password-change")
def _audit_password_change(sender, instance, created, update_fields=None, **kwargs):
    # set_password() keeps the new raw password in `_password` until the save that stores its
    # hash has run (AbstractBaseUser.save): a save with it set, of an existing user, is a
    # password change. The silent re-hash at login clears it first, so it is not one.
    if created or getattr(instance, "_password", None) is None:
        return
    # Whoever is logged in (the user, or an admin); none for `manage.py changepassword`.
    actor = request_user.get()
    audit_record(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action="auth.password.change",
        target=instance,
        summary="Password changed",
    )
