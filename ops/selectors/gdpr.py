"""Reads of data-subject requests: lists with their deadlines (no identifiers needed), the
ones Today shows, what the certificate prints."""

from datetime import datetime

from django.db.models import QuerySet

from ops.models import DataSubjectRequest, ErasureLedgerEntry, GdprJob, ProcessingActivity
from ops.models.gdpr import DUE_SOON, RequestStatus

CLOSED = [RequestStatus.COMPLETED, RequestStatus.REJECTED]


def requests_list(*, include_closed: bool = False) -> QuerySet[DataSubjectRequest]:
    requests = DataSubjectRequest.objects.select_related("assignee")
    if not include_closed:
        requests = requests.exclude(status__in=CLOSED)
    return requests.order_by("due_at", "pk")


def requests_needing_attention(*, now: datetime) -> list[DataSubjectRequest]:
    """Open requests overdue or due within seven days, soonest first."""
    return list(
        DataSubjectRequest.objects.exclude(status__in=CLOSED)
        .filter(due_at__lte=now + DUE_SOON)
        .select_related("assignee")
        .order_by("due_at", "pk")
    )


def request_jobs(*, dsr: DataSubjectRequest) -> list[GdprJob]:
    return list(dsr.jobs.order_by("-created_at", "-pk"))


def request_ledger(*, dsr: DataSubjectRequest) -> list[ErasureLedgerEntry]:
    return list(dsr.ledger_entries.order_by("erased_at", "pk"))


def processing_activities() -> list[ProcessingActivity]:
    return list(ProcessingActivity.objects.order_by("name"))
