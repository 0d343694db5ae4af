"""Data-subject requests: receipt, identity verification, deadlines and their one extension,
assignment, review, delivery, completion or rejection. Every change is audited; every view
of a subject's identifiers or exported data is audited too (gdpr_subject_data_viewed)."""

import json
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.core.validators import EmailValidator, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ops.models import ChecklistRun, ChecklistTemplate, DataSubjectRequest
from ops.models.checklists import RunStatus
from ops.models.gdpr import (
    DUE_SOON,
    MAX_EXTENSION_MONTHS,
    Channel,
    RejectionReason,
    RequestKind,
    RequestStatus,
    add_months,
)
from ops.services.checklists import checklist_run_cancel, checklist_run_start
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

CHECKLIST_NAME = "GDPR data-subject request"
MAX_TEXT = 500
MAX_KEYS = 20
HANDLE = "ops.handle_datasubjectrequest"
SUBJECT_DATA = "ops.view_subject_data"


def may_see_subject(user) -> bool:
    return bool(user and user.is_active and user.has_perm(SUBJECT_DATA))


def _locked(dsr: DataSubjectRequest) -> DataSubjectRequest:
    return DataSubjectRequest.objects.select_for_update().get(pk=dsr.pk)


def _text(value: str | None, label: str, field: str, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ActionRefused(f"{label} is required.", field=field)
    if len(value) > MAX_TEXT:
        raise ActionRefused(
            f"{label} is too long ({len(value)} characters; at most {MAX_TEXT}).", field=field
        )
    return value


def _refuse_if_closed(dsr: DataSubjectRequest) -> None:
    if dsr.is_closed:
        raise ActionRefused(
            f"{dsr.reference} is {dsr.get_status_display().lower()}: it can no longer change.",
            status=409,
        )


def _keys(value) -> list[str]:
    if isinstance(value, str):
        value = [part for line in value.splitlines() for part in line.split(",")]
    keys = [str(part).strip() for part in value or [] if str(part).strip()]
    if len(keys) > MAX_KEYS:
        raise ActionRefused(f"At most {MAX_KEYS} other identifiers.", field="subject_keys")
    for key in keys:
        if len(key) > 200:
            raise ActionRefused(
                "An identifier is longer than 200 characters.", field="subject_keys"
            )
    return keys


def _checklist_template() -> ChecklistTemplate | None:
    return (
        ChecklistTemplate.objects.filter(name__iexact=CHECKLIST_NAME, is_active=True)
        .order_by("id")
        .first()
    )


def _set(dsr: DataSubjectRequest, user, action: str, changes: dict, summary: str = "") -> None:
    before = {field: _plain(getattr(dsr, field)) for field in changes}
    for field, value in changes.items():
        setattr(dsr, field, value)
    dsr.save(update_fields=list(changes))
    audit_record(
        actor=user,
        action=f"gdpr.request.{action}",
        target=dsr,
        summary=summary,
        before=before,
        after={field: _plain(value) for field, value in changes.items()},
    )


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "pk"):
        return value.pk
    return value


@transaction.atomic
def gdpr_request_receive(
    *,
    user,
    kind: str,
    subject_email: str,
    received_at: datetime | None = None,
    due_at: datetime | None = None,
    subject_keys: str | list = "",
    subject_name: str = "",
    channel: str = Channel.EMAIL,
    details: str = "",
    assignee=None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Log a request: due one month after receipt (art. 12(3)), or earlier when a due date is
    given; its "GDPR data-subject request" checklist starts as a run owned by it."""
    require_perm(user, "ops.add_datasubjectrequest", "You may not log data-subject requests.")
    now = now or timezone.now()
    if kind not in RequestKind.values:
        raise ActionRefused(
            f"Unknown request type “{kind}”; one of: {', '.join(RequestKind.values)}.",
            field="kind",
        )
    if channel not in Channel.values:
        raise ActionRefused(f"Unknown channel “{channel}”.", field="channel")
    email = (subject_email or "").strip()
    try:
        EmailValidator()(email)
    except ValidationError:
        raise ActionRefused(f"“{email}” is not an e-mail address.", field="subject_email") from None
    received_at = received_at or now
    if received_at > now + timedelta(minutes=5):
        raise ActionRefused("The request cannot be received in the future.", field="received_at")
    legal_due = add_months(received_at, 1)
    if due_at is None:
        due_at = legal_due
    elif due_at < received_at:
        raise ActionRefused("The due date is before the request was received.", field="due_at")
    elif due_at > legal_due:
        raise ActionRefused(
            f"The answer is due within one month of receipt (by {legal_due:%Y-%m-%d %H:%M}); "
            "a later date needs a recorded extension.",
            field="due_at",
        )
    if assignee is not None and not assignee.has_perm(HANDLE):
        raise ActionRefused(
            f"{assignee.get_username()} may not handle data-subject requests.", field="assignee"
        )
    dsr = DataSubjectRequest.objects.create(
        kind=kind,
        subject_email=email,
        subject_keys=_keys(subject_keys),
        subject_name=_text(subject_name, "The name", "subject_name"),
        channel=channel,
        details=(details or "").strip()[:5000],
        received_at=received_at,
        due_at=due_at,
        original_due_at=due_at,
        assignee=assignee,
        created_by=user,
        created_at=now,
    )
    template = _checklist_template()
    if template is not None:
        run = checklist_run_start(template=template, user=user, label=dsr.reference)
        ChecklistRun.objects.filter(pk=run.pk).update(dsr=dsr)
    audit_record(
        actor=user,
        action="gdpr.request.receive",
        target=dsr,
        summary=f"{dsr.get_kind_display()} due {due_at:%Y-%m-%d}",
        after={"kind": kind, "channel": channel, "due_at": due_at.isoformat()},
    )
    return dsr


@transaction.atomic
def gdpr_request_assign(*, dsr: DataSubjectRequest, user, assignee) -> DataSubjectRequest:
    require_perm(user, HANDLE, "You may not assign data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    if assignee is not None and not assignee.has_perm(HANDLE):
        raise ActionRefused(
            f"{assignee.get_username()} may not handle data-subject requests.", field="assignee"
        )
    _set(dsr, user, "assign", {"assignee": assignee})
    return dsr


@transaction.atomic
def gdpr_identity_request(*, dsr: DataSubjectRequest, user) -> DataSubjectRequest:
    """Identity checks were asked of the requester: received → identity pending."""
    require_perm(user, HANDLE, "You may not handle data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    if dsr.status != RequestStatus.RECEIVED:
        raise ActionRefused(
            f"Identity checks are asked for a received request; this one is "
            f"{dsr.get_status_display().lower()}.",
            status=409,
        )
    _set(dsr, user, "identity-pending", {"status": RequestStatus.IDENTITY_PENDING})
    return dsr


@transaction.atomic
def gdpr_identity_verify(
    *, dsr: DataSubjectRequest, user, method: str, evidence: str, now: datetime | None = None
) -> DataSubjectRequest:
    """The required step before anything is exported, rectified or erased."""
    require_perm(user, HANDLE, "You may not verify identities.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    method = _text(method, "The verification method", "method", required=True)
    evidence = (evidence or "").strip()
    if not evidence:
        raise ActionRefused("Note the evidence that was checked.", field="evidence")
    if len(evidence) > 2000:
        raise ActionRefused("The evidence note is too long (at most 2000).", field="evidence")
    if dsr.is_verified:
        raise ActionRefused(f"{dsr.reference}'s identity is already verified.", status=409)
    now = now or timezone.now()
    _set(
        dsr,
        user,
        "verify",
        {
            "status": RequestStatus.VERIFIED,
            "identity_method": method,
            "identity_evidence": evidence,
            "identity_verified_at": now,
            "identity_verified_by": user,
        },
        summary=f"Identity verified by {method}",
    )
    return dsr


def refuse_unless_verified(dsr: DataSubjectRequest, action: str) -> None:
    if not dsr.is_verified:
        raise ActionRefused(
            f"{dsr.reference}: the requester's identity is not verified; nothing is {action} "
            "before it is.",
            status=409,
        )


@transaction.atomic
def gdpr_request_extend(
    *,
    dsr: DataSubjectRequest,
    user,
    months: int | str,
    reason: str,
    communicated: bool,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Art. 12(3): once, by up to two further months, with a reason told to the subject."""
    require_perm(user, HANDLE, "You may not extend data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    try:
        months = int(months)
    except (TypeError, ValueError):
        raise ActionRefused("Extend by 1 or 2 months.", field="months") from None
    if dsr.extended_at is not None:
        raise ActionRefused(
            f"{dsr.reference} was already extended on {dsr.extended_at:%Y-%m-%d}; a request is "
            "extended once only.",
            status=409,
        )
    if months < 1 or months > MAX_EXTENSION_MONTHS:
        raise ActionRefused(
            f"An extension is by 1 or 2 months at most (asked: {months}).", field="months"
        )
    reason = _text(reason, "The reason for the extension", "reason", required=True)
    if not communicated:
        raise ActionRefused(
            "The reason must be communicated to the subject: confirm that it was.",
            field="communicated",
        )
    now = now or timezone.now()
    _set(
        dsr,
        user,
        "extend",
        {
            "due_at": add_months(dsr.original_due_at, months),
            "extension_reason": reason,
            "extended_at": now,
            "extended_by": user,
            "extension_communicated_at": now,
        },
        summary=f"Extended by {months} month{'s' if months > 1 else ''}: {reason}",
    )
    return dsr


NEXT = {
    RequestStatus.VERIFIED: RequestStatus.IN_PROGRESS,
    RequestStatus.IN_PROGRESS: RequestStatus.AWAITING_REVIEW,
}


@transaction.atomic
def gdpr_request_advance(*, dsr: DataSubjectRequest, user, status: str) -> DataSubjectRequest:
    """verified → in progress → awaiting review."""
    require_perm(user, HANDLE, "You may not handle data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    if status not in (RequestStatus.IN_PROGRESS, RequestStatus.AWAITING_REVIEW):
        raise ActionRefused(f"Unknown next status “{status}”.")
    refuse_unless_verified(dsr, "worked on")
    if NEXT.get(dsr.status) != status:
        raise ActionRefused(
            f"{dsr.reference} is {dsr.get_status_display().lower()}: it cannot move to "
            f"{RequestStatus(status).label.lower()}.",
            status=409,
        )
    _set(dsr, user, "status", {"status": status})
    return dsr


@transaction.atomic
def gdpr_request_review(
    *, dsr: DataSubjectRequest, user, now: datetime | None = None
) -> DataSubjectRequest:
    """A reviewer confirms that the export was checked for data about other people."""
    require_perm(user, HANDLE, "You may not review exports.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    refuse_unless_verified(dsr, "reviewed")
    if not dsr.jobs.filter(kind="export", status="done").exists():
        raise ActionRefused("There is no finished export to review yet.", status=409)
    _set(dsr, user, "review", {"reviewed_at": now or timezone.now(), "reviewed_by": user})
    return dsr


@transaction.atomic
def gdpr_request_deliver(
    *, dsr: DataSubjectRequest, user, note: str = "", now: datetime | None = None
) -> DataSubjectRequest:
    require_perm(user, HANDLE, "You may not record deliveries.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    if dsr.reviewed_at is None:
        raise ActionRefused(
            "The export is not reviewed for third-party data yet: review it before delivery.",
            status=409,
        )
    note = _text(note, "The delivery note", "note")
    _set(
        dsr,
        user,
        "deliver",
        {"delivered_at": now or timezone.now(), "delivered_by": user, "delivery_note": note},
    )
    return dsr


@transaction.atomic
def gdpr_request_complete(
    *, dsr: DataSubjectRequest, user, now: datetime | None = None
) -> DataSubjectRequest:
    require_perm(user, HANDLE, "You may not complete data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    refuse_unless_verified(dsr, "completed")
    if dsr.kind in (RequestKind.ACCESS, RequestKind.PORTABILITY) and dsr.delivered_at is None:
        raise ActionRefused("The export has not been delivered yet.", status=409)
    if dsr.kind == RequestKind.ERASURE and dsr.erasure_verified_at is None:
        raise ActionRefused("The erasure is not verified yet (no scan with zero hits).", status=409)
    _set(
        dsr,
        user,
        "complete",
        {
            "status": RequestStatus.COMPLETED,
            "completed_at": now or timezone.now(),
            "completed_by": user,
        },
    )
    return dsr


@transaction.atomic
def gdpr_request_reject(
    *, dsr: DataSubjectRequest, user, reason: str, note: str = "", now: datetime | None = None
) -> DataSubjectRequest:
    require_perm(user, HANDLE, "You may not reject data-subject requests.")
    dsr = _locked(dsr)
    _refuse_if_closed(dsr)
    if reason not in RejectionReason.values:
        raise ActionRefused(
            f"Choose why the request is rejected (“{reason}” is not a known reason).",
            field="reason",
        )
    note = _text(note, "The note", "note")
    _set(
        dsr,
        user,
        "reject",
        {
            "status": RequestStatus.REJECTED,
            "rejection_reason": reason,
            "rejection_note": note,
            "completed_at": now or timezone.now(),
            "completed_by": user,
        },
        summary=RejectionReason(reason).label,
    )
    for run in dsr.checklist_runs.filter(status=RunStatus.OPEN):
        checklist_run_cancel(
            run=run, user=user, reason=f"{dsr.reference} rejected", owner="dsr", now=now
        )
    return dsr


@transaction.atomic
def gdpr_legal_hold_set(
    *, dsr: DataSubjectRequest, user, hold: bool, reason: str = ""
) -> DataSubjectRequest:
    require_perm(user, HANDLE, "You may not set legal holds.")
    dsr = _locked(dsr)
    reason = _text(reason, "The reason for the legal hold", "reason", required=hold)
    _set(
        dsr,
        user,
        "legal-hold" if hold else "legal-hold-lift",
        {"legal_hold": bool(hold), "legal_hold_reason": reason if hold else ""},
    )
    return dsr


def gdpr_subject_data_viewed(*, dsr: DataSubjectRequest, user, what: str) -> None:
    """Every view of a subject's identifiers or exported data leaves an audit entry; a user
    without the DPO permission is refused (and sees counts and deadlines only elsewhere)."""
    if not may_see_subject(user):
        raise PermissionDenied("Only the DPO and admins see a subject's data.")
    audit_record(actor=user, action="gdpr.subject.view", target=dsr, summary=what[:500])


def gdpr_deadline_notifications_send(*, now: datetime | None = None) -> list[int]:
    """Tell the assignee (or every DPO when there is none) once when a request comes within
    seven days of its deadline, and once when it is overdue. The stamp is taken by a
    conditional update first, so two schedulers never send the same notice."""
    now = now or timezone.now()
    sent = []
    open_requests = DataSubjectRequest.objects.exclude(
        status__in=[RequestStatus.COMPLETED, RequestStatus.REJECTED]
    )
    notices = [
        ("notified_overdue_at", Q(due_at__lt=now), "is overdue"),
        ("notified_due_soon_at", Q(due_at__gte=now, due_at__lte=now + DUE_SOON), "is due soon"),
    ]
    for stamp, when, words in notices:
        for dsr in open_requests.filter(when, **{f"{stamp}__isnull": True}):
            if not DataSubjectRequest.objects.filter(
                pk=dsr.pk, **{f"{stamp}__isnull": True}
            ).update(**{stamp: now}):
                continue
            if dsr.assignee and dsr.assignee.email:
                recipients = [dsr.assignee.email]
            else:
                recipients = list(
                    get_user_model()
                    .objects.filter(is_active=True, groups__name="DPO")
                    .exclude(email="")
                    .values_list("email", flat=True)
                )
            subject = (
                f"{dsr.reference} {words}: due {timezone.localtime(dsr.due_at):%Y-%m-%d %H:%M}"
            )
            # No identifiers in the mail: the link leads to the audited page.
            body = json.dumps(
                {"request": dsr.reference, "kind": dsr.kind, "due_at": dsr.due_at.isoformat()}
            )
            if recipients:
                send_mail(subject, body, None, recipients, fail_silently=True)
            audit_record(actor=None, action="gdpr.request.notify", target=dsr, summary=subject)
            sent.append(dsr.pk)
    return sent
