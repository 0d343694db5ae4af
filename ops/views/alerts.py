"""The alerts page (firing, acknowledged, silenced, recent), acknowledgement (on the page and
by the signed one-click link of a message), promotion of a warning to an incident, and the
forms of rules, channels, silences, rotations and escalation policies."""

from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from ops.forms.alerts import AlertRuleForm, ChannelForm, PolicyForm, ScheduleForm, SilenceForm
from ops.models import Alert, EscalationPolicy, NotificationChannel, OnCallSchedule
from ops.selectors.alerts import alert_rules_all, alerts_page, oncall_timeline, oncall_user
from ops.services.alerts import (
    alert_ack_by_link,
    alert_ack_link_read,
    alert_acknowledge,
    alert_promote,
    alert_rule_create,
    channel_create,
    silence_create,
)
from ops.services.oncall import policy_create, schedule_create
from portal.htmx import attempt, back_to, wants_fragment

LIST_PAGE = "ops/alerts/alert_list.html"
FORM_PAGE = "ops/alerts/alert_form.html"


@permission_required("ops.view_alert", raise_exception=True)
def alert_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {"lists": alerts_page(now=now), "now": now}
    if wants_fragment(request):
        return render(request, f"{LIST_PAGE}#alert-lists", context)
    context["rules"] = alert_rules_all()
    context["channels"] = NotificationChannel.objects.filter(owner__isnull=True)
    context["my_channels"] = NotificationChannel.objects.filter(owner=request.user)
    return render(request, LIST_PAGE, context)


@require_POST
@permission_required("ops.acknowledge_alert", raise_exception=True)
def alert_ack(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=pk)
    _result, refusal = attempt(lambda: alert_acknowledge(alert=alert, user=request.user))
    if wants_fragment(request):
        alert.refresh_from_db()
        context = {"alert": alert, "refusal": refusal}
        return render(
            request,
            "ops/alerts/_alert_row.html",
            context,
            status=refusal.status if refusal else 200,
        )
    return back_to(request, "ops:alert_list", refusal, done="Alert acknowledged.")


@require_POST
@permission_required("ops.open_incident", raise_exception=True)
def alert_promote_view(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("rule", "service"), pk=pk)
    incident, refusal = attempt(lambda: alert_promote(alert=alert, user=request.user))
    if refusal is None:
        return redirect(incident.get_absolute_url(), permanent=False)
    return back_to(request, "ops:alert_list", refusal)


@login_not_required
@require_http_methods(["GET", "POST"])
def alert_ack_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link in a message. GET shows what it acknowledges and one button (a mail scanner
    that opens links acknowledges nothing); POST acknowledges, once."""
    if request.method == "POST":
        alert, refusal = attempt(lambda: alert_ack_by_link(token=token))
        send = None
    else:
        alert = None
        send, refusal = attempt(lambda: alert_ack_link_read(token=token))
    context = {"alert": alert, "send": send, "refusal": refusal, "token": token}
    return render(
        request,
        "ops/alerts/alert_ack_link.html",
        context,
        status=refusal.status if refusal else 200,
    )


def _form_page(
    request, form, *, title: str, save, done: str, to: str = "ops:alert_list"
) -> HttpResponse:
    """A form's page: errors beside their fields (status 400), nothing saved until all are
    right; then a 303 back to ``to``."""
    if request.method == "POST" and form.is_valid():
        _result, refusal = attempt(lambda: save(form))
        if refusal is None:
            return back_to(request, to, None, done=done)
        if refusal.status == 403:
            return back_to(request, to, refusal)
        form.add_error(None, refusal.message)
    status = 400 if form.errors else 200
    return render(request, FORM_PAGE, {"form": form, "title": title}, status=status)


@require_http_methods(["GET", "POST"])
@permission_required("ops.add_alertrule", raise_exception=True)
def rule_new(request: HttpRequest) -> HttpResponse:
    form = AlertRuleForm(request.POST or None)
    return _form_page(
        request,
        form,
        title="New alert rule",
        save=lambda f: alert_rule_create(user=request.user, rule=f.instance),
        done="Alert rule added.",
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.add_notificationchannel", raise_exception=True)
def channel_new(request: HttpRequest) -> HttpResponse:
    personal = request.GET.get("mine") == "1" or request.POST.get("mine") == "1"
    form = ChannelForm(request.POST or None)
    return _form_page(
        request,
        form,
        title="Your own channel" if personal else "New channel",
        save=lambda f: channel_create(user=request.user, channel=f.instance, personal=personal),
        done="Channel added.",
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.add_silence", raise_exception=True)
def silence_new(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST or None)
    return _form_page(
        request,
        form,
        title="New silence",
        save=lambda f: silence_create(user=request.user, silence=f.instance),
        done="Silence added.",
    )


@permission_required("ops.view_oncallschedule", raise_exception=True)
def oncall(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    schedules = [
        (
            schedule,
            oncall_user(schedule=schedule, at=now),
            oncall_timeline(schedule=schedule, at=now),
        )
        for schedule in OnCallSchedule.objects.all()
    ]
    policies = EscalationPolicy.objects.prefetch_related(
        "steps__schedule", "steps__user", "steps__channel"
    )
    return render(
        request,
        "ops/alerts/oncall.html",
        {"schedules": schedules, "policies": policies, "now": now},
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.add_oncallschedule", raise_exception=True)
def schedule_new(request: HttpRequest) -> HttpResponse:
    form = ScheduleForm(request.POST or None)
    return _form_page(
        request,
        form,
        title="New on-call rotation",
        save=lambda f: schedule_create(
            user=request.user, schedule=f.instance, people=f.cleaned_data["people"]
        ),
        done="Rotation added.",
        to="ops:oncall",
    )


@require_http_methods(["GET", "POST"])
@permission_required("ops.add_escalationpolicy", raise_exception=True)
def policy_new(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST or None)
    return _form_page(
        request,
        form,
        title="New escalation policy",
        save=lambda f: policy_create(
            user=request.user, policy=f.instance, steps=f.cleaned_data["parsed_steps"]
        ),
        done="Escalation policy added.",
        to="ops:oncall",
    )
