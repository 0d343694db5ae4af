"""Reads of the portal's own tables: the audit log, filtered, and where its entries point."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta

from django.apps import apps
from django.db.models import Q, QuerySet
from django.utils import timezone

from portal.models import AuditEntry
from portal.params import parse_day


def audit_entries_filtered(*, params: Mapping[str, str]) -> tuple[QuerySet, list[str]]:
    """Entries newest first, filtered by person, action (prefix), kind of object, text and
    local days, and the problems with the filters (a bad date is named and ignored)."""
    errors: list[str] = []
    entries = AuditEntry.objects.order_by("-created_at", "-id")
    if actor := params.get("actor", "").strip():
        entries = entries.filter(actor_name__iexact=actor)
    if action := params.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if object_type := params.get("object_type", "").strip():
        entries = entries.filter(object_type=object_type)
    if query := params.get("q", "").strip():
        entries = entries.filter(Q(object_repr__icontains=query) | Q(summary__icontains=query))
    zone = timezone.get_current_timezone()
    if since := parse_day(params.get("since", ""), "From", errors):
        entries = entries.filter(created_at__gte=datetime.combine(since, time(), tzinfo=zone))
    if until := parse_day(params.get("until", ""), "To", errors):
        end = datetime.combine(until + timedelta(days=1), time(), tzinfo=zone)
        entries = entries.filter(created_at__lt=end)
    return entries, errors


def audit_object_urls(*, entries: Iterable[AuditEntry]) -> dict[int, str]:
    """Entry id -> the page of the object it is about, for objects that still exist and have
    a page: one query per kind of object among the entries, whatever their number."""
    wanted: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        if entry.object_type and entry.object_id:
            wanted[entry.object_type][entry.object_id].append(entry.pk)
    urls: dict[int, str] = {}
    for label, by_id in wanted.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue  # a model that no longer exists
        if not hasattr(model, "get_absolute_url"):
            continue
        ids = [value for value in by_id if value.isdigit()]
        for pk, obj in model._default_manager.in_bulk(ids).items():
            for entry_id in by_id[str(pk)]:
                urls[entry_id] = obj.get_absolute_url()
    return urls
