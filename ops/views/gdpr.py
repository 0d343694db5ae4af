"""Pages of data-subject requests. Anyone who may see requests sees their types, statuses and
deadlines; the subject's identifiers, the identity evidence and the exports are shown to the
DPO and admins only, and each such view is audited."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ops.forms.gdpr import (
    AssignForm,
    BreachForm,
    ExtendForm,
    LegalHoldForm,
    RejectForm,
    RequestReceiveForm,
    VerifyForm,
)
from ops.models import BreachRecord, DataSubjectRequest, GdprJob, Incident
from ops.selectors.checklists import runs_visible
from ops.selectors.gdpr import (
    processing_activities,
    request_jobs,
    request_ledger,
    requests_list,
)
from ops.services import gdpr as services
from ops.services.gdpr_breach import breach_record_update
from ops.services.gdpr_jobs import gdpr_export_open, gdpr_job_start
from portal.errors import ActionRefused
from portal.htmx import attempt, back_to

PAGE = "ops/gdpr/request_detail.html"


def _may_list(request: HttpRequest) -> None:
    if not request.user.has_perm("ops.view_datasubjectrequest"):
        raise PermissionDenied("You may not see data-subject requests.")


def _get(request: HttpRequest, pk: int) -> DataSubjectRequest:
    _may_list(request)
    return get_object_or_404(
        DataSubjectRequest.objects.select_related("assignee", "identity_verified_by"), pk=pk
    )


def request_list(request: HttpRequest) -> HttpResponse:
    _may_list(request)
    closed = request.GET.get("closed") == "1"
    return render(
        request,
        "ops/gdpr/request_list.html",
        {
            "requests": requests_list(include_closed=closed),
            "show_closed": closed,
            "now": timezone.now(),
            "can_add": request.user.has_perm("ops.add_datasubjectrequest"),
        },
    )


def request_new(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("ops.add_datasubjectrequest"):
        raise PermissionDenied("You may not log data-subject requests.")
    form = RequestReceiveForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                dsr = services.gdpr_request_receive(user=request.user, **form.cleaned_data)
            except ActionRefused as refused:
                form.add_refusal(refused)
            else:
                messages.success(request, f"Logged {dsr.reference}, due {dsr.due_at:%Y-%m-%d}.")
                return redirect(dsr)
        status = 400
    return render(request, "ops/gdpr/request_new.html", {"form": form}, status=status)


def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dsr = _get(request, pk)
    sees_subject = services.may_see_subject(request.user)
    if sees_subject:
        services.gdpr_subject_data_viewed(dsr=dsr, user=request.user, what="request page")
    runs = runs_visible(runs=list(dsr.checklist_runs.all()), user=request.user)
    context = {
        "dsr": dsr,
        "now": timezone.now(),
        "sees_subject": sees_subject,
        "can_handle": request.user.has_perm(services.HANDLE),
        "jobs": request_jobs(dsr=dsr),
        "ledger": request_ledger(dsr=dsr),
        "runs": runs,
        "verify_form": VerifyForm(),
        "extend_form": ExtendForm(),
        "reject_form": RejectForm(),
        "hold_form": LegalHoldForm(),
        "assign_form": AssignForm(initial={"assignee": dsr.assignee_id}),
        "is_assignee": dsr.assignee_id == request.user.pk,
    }
    return render(request, PAGE, context)


def request_jobs_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """The jobs' progress, polled while one runs (counts only, no identifiers)."""
    dsr = _get(request, pk)
    context = {
        "dsr": dsr,
        "jobs": request_jobs(dsr=dsr),
        "now": timezone.now(),
        "sees_subject": services.may_see_subject(request.user),
        "can_handle": request.user.has_perm(services.HANDLE),
        "is_assignee": dsr.assignee_id == request.user.pk,
    }
    return render(request, f"{PAGE}#request-jobs", context)


def _act(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    dsr = _get(request, pk)
    _, refusal = attempt(lambda: action(dsr))
    return back_to(request, dsr, refusal, done=done)


@require_POST
def request_identity_pending(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_identity_request(dsr=dsr, user=request.user),
        "Identity checks asked of the requester.",
    )


@require_POST
def request_verify(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_identity_verify(
            dsr=dsr,
            user=request.user,
            method=request.POST.get("method", ""),
            evidence=request.POST.get("evidence", ""),
        ),
        "Identity verified.",
    )


@require_POST
def request_extend(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_extend(
            dsr=dsr,
            user=request.user,
            months=request.POST.get("months", ""),
            reason=request.POST.get("reason", ""),
            communicated=request.POST.get("communicated") == "on",
        ),
        "Deadline extended.",
    )


@require_POST
def request_assign(request: HttpRequest, pk: int) -> HttpResponse:
    form = AssignForm(request.POST)
    if not form.is_valid():
        return back_to(request, _get(request, pk), None)
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_assign(
            dsr=dsr, user=request.user, assignee=form.cleaned_data["assignee"]
        ),
        "Assignee saved.",
    )


@require_POST
def request_advance(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_advance(
            dsr=dsr, user=request.user, status=request.POST.get("status", "")
        ),
        "Status changed.",
    )


@require_POST
def request_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_reject(
            dsr=dsr,
            user=request.user,
            reason=request.POST.get("reason", ""),
            note=request.POST.get("note", ""),
        ),
        "Request rejected.",
    )


@require_POST
def request_hold(request: HttpRequest, pk: int) -> HttpResponse:
    hold = request.POST.get("hold") == "1"
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_legal_hold_set(
            dsr=dsr, user=request.user, hold=hold, reason=request.POST.get("reason", "")
        ),
        "Legal hold set." if hold else "Legal hold lifted.",
    )


@require_POST
def request_job_start(request: HttpRequest, pk: int) -> HttpResponse:
    kind = request.POST.get("kind", "")
    return _act(
        request,
        pk,
        lambda dsr: gdpr_job_start(dsr=dsr, user=request.user, kind=kind),
        "Export started." if kind == "export" else "Erasure started.",
    )


@require_POST
def request_review(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_review(dsr=dsr, user=request.user),
        "Export marked as reviewed for third-party data.",
    )


@require_POST
def request_deliver(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_deliver(
            dsr=dsr, user=request.user, note=request.POST.get("note", "")
        ),
        "Delivery recorded.",
    )


@require_POST
def request_complete(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda dsr: services.gdpr_request_complete(dsr=dsr, user=request.user),
        "Request completed.",
    )


def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(GdprJob.objects.select_related("request"), pk=pk, kind="export")
    _may_list(request)
    handle, refusal = attempt(lambda: gdpr_export_open(job=job, user=request.user))
    if refusal is not None:
        if refusal.status == 403:
            raise PermissionDenied(refusal.message)
        return render(
            request,
            "ops/gdpr/export_gone.html",
            {"dsr": job.request, "message": refusal.message},
            status=refusal.status,
        )
    response = FileResponse(
        handle,
        content_type="application/zip",
        as_attachment=True,
        filename=f"{job.request.reference}-export.zip",
    )
    response["Cache-Control"] = "private, no-store"
    return response


def request_certificate(request: HttpRequest, pk: int) -> HttpResponse:
    dsr = _get(request, pk)
    sees_subject = services.may_see_subject(request.user)
    if sees_subject:
        services.gdpr_subject_data_viewed(dsr=dsr, user=request.user, what="certificate")
    return render(
        request,
        "ops/gdpr/request_certificate.html",
        {
            "dsr": dsr,
            "sees_subject": sees_subject,
            "jobs": request_jobs(dsr=dsr),
            "ledger": request_ledger(dsr=dsr),
            "now": timezone.now(),
        },
    )


def register_print(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("ops.view_processingactivity"):
        raise PermissionDenied("You may not see the register of processing activities.")
    return render(
        request,
        "ops/gdpr/register_print.html",
        {"activities": processing_activities(), "now": timezone.now()},
    )


def breach_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An incident's art. 33/34 notifications and the breach checklist's timing."""
    if not request.user.has_perm("ops.view_incident"):
        raise PermissionDenied("You may not see incidents.")
    incident = get_object_or_404(Incident, pk=pk, personal_data=True)
    record = BreachRecord.objects.filter(incident=incident).first()
    initial = {}
    if record is not None:
        initial = {
            field: getattr(record, field)
            for field in BreachForm.base_fields
            if getattr(record, field) not in (None, "")
        }
    form = BreachForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                breach_record_update(incident=incident, user=request.user, **form.cleaned_data)
            except ActionRefused as refused:
                form.add_refusal(refused)
            else:
                messages.success(request, "Breach notifications recorded.")
                return redirect("ops:gdpr_breach", pk=incident.pk)
        status = 400
    return render(
        request,
        "ops/gdpr/breach_detail.html",
        {
            "incident": incident,
            "record": record,
            "form": form,
            "now": timezone.now(),
            "runs": runs_visible(runs=list(incident.checklist_runs.all()), user=request.user),
            "can_edit": request.user.has_perm("ops.change_breachrecord"),
        },
        status=status,
    )
