"""Data-subject requests: receipt and deadlines, identity first, the one extension, the DPO
rule for every role (and the audit of each view of subject data), the request's checklist,
Today and the deadline notices."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse

from ops.models import ChecklistRun, DataSubjectRequest
from ops.models.checklists import Cadence
from ops.services import gdpr as services
from ops.services.gdpr_jobs import gdpr_job_start
from portal import roles
from portal.errors import ActionRefused
from portal.models import AuditEntry
from tests.conftest import client_for

T0 = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
EMAIL = "Anna.Subject@example.org"


@pytest.fixture
def dpo(make_user):
    return make_user("dora", roles.DPO, email="dora@example.com")


@pytest.fixture
def admin_user(make_user):
    return make_user("adam", roles.ADMIN, is_staff=True)


@pytest.fixture
def checklist(make_template):
    return make_template(
        "GDPR data-subject request",
        items=["Verify the requester's identity", "Export the data"],
        cadence=Cadence.ON_DEMAND,
    )


def receive(user, **extra):
    values = {"kind": "access", "subject_email": EMAIL, "received_at": T0, "now": T0}
    values.update(extra)
    return services.gdpr_request_receive(user=user, **values)


def test_due_one_month_after_receipt_clamped_to_the_month(dpo):
    dsr = receive(dpo)
    assert dsr.due_at == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    assert dsr.status == "received" and dsr.reference == f"DSR-{dsr.pk}"
    assert dsr.days_left(T0) == 28
    assert dsr.deadline_state(T0) == "ok"
    assert dsr.deadline_state(T0 + timedelta(days=22)) == "due-soon"
    late = T0 + timedelta(days=28, hours=1)
    assert dsr.deadline_state(late) == "overdue" and dsr.days_overdue(late) == 1


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"kind": "deletion"}, "kind", "Unknown request type"),
        ({"subject_email": "not-an-address"}, "subject_email", "not an e-mail address"),
        ({"due_at": T0 - timedelta(days=1)}, "due_at", "before the request was received"),
        ({"due_at": T0 + timedelta(days=40)}, "due_at", "needs a recorded extension"),
        ({"received_at": T0 + timedelta(days=1)}, "received_at", "in the future"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_logged(dpo, extra, field, words):
    with pytest.raises(ActionRefused) as refused:
        receive(dpo, **extra)
    assert refused.value.field == field and words in refused.value.message
    assert not DataSubjectRequest.objects.exists()


def test_extension_once_by_at_most_two_months_with_a_communicated_reason(dpo):
    dsr = receive(dpo)
    for months, reason, told, words in [
        (3, "complex", True, "1 or 2 months at most"),
        ("x", "complex", True, "Extend by 1 or 2 months"),
        (2, "", True, "reason for the extension is required"),
        (2, "complex", False, "communicated"),
    ]:
        with pytest.raises(ActionRefused, match=words):
            services.gdpr_request_extend(
                dsr=dsr, user=dpo, months=months, reason=reason, communicated=told, now=T0
            )
    dsr.refresh_from_db()
    assert dsr.extended_at is None and dsr.due_at == datetime(2026, 2, 28, 10, tzinfo=UTC)
    services.gdpr_request_extend(
        dsr=dsr, user=dpo, months=2, reason="Many systems", communicated=True, now=T0
    )
    dsr.refresh_from_db()
    assert dsr.due_at == datetime(2026, 4, 28, 10, tzinfo=UTC)
    with pytest.raises(ActionRefused, match="extended once only"):
        services.gdpr_request_extend(
            dsr=dsr, user=dpo, months=1, reason="again", communicated=True, now=T0
        )


def test_identity_comes_first(dpo):
    dsr = receive(dpo, kind="erasure")
    for action in (
        lambda: gdpr_job_start(dsr=dsr, user=dpo, kind="export"),
        lambda: gdpr_job_start(dsr=dsr, user=dpo, kind="erasure"),
        lambda: services.gdpr_request_advance(dsr=dsr, user=dpo, status="in-progress"),
        lambda: services.gdpr_request_complete(dsr=dsr, user=dpo),
    ):
        with pytest.raises(ActionRefused, match="identity is not verified"):
            action()
    assert not dsr.jobs.exists()
    with pytest.raises(ActionRefused, match="method is required"):
        services.gdpr_identity_verify(dsr=dsr, user=dpo, method="", evidence="x")
    with pytest.raises(ActionRefused, match="evidence"):
        services.gdpr_identity_verify(dsr=dsr, user=dpo, method="link", evidence=" ")
    services.gdpr_identity_request(dsr=dsr, user=dpo)
    services.gdpr_identity_verify(
        dsr=dsr, user=dpo, method="Link to the account's address", evidence="Clicked 10:02"
    )
    dsr.refresh_from_db()
    assert dsr.status == "verified" and dsr.identity_verified_by == dpo


def test_legal_hold_refuses_erasure(dpo):
    dsr = receive(dpo, kind="erasure")
    services.gdpr_identity_verify(dsr=dsr, user=dpo, method="link", evidence="ok")
    with pytest.raises(ActionRefused, match="reason for the legal hold is required"):
        services.gdpr_legal_hold_set(dsr=dsr, user=dpo, hold=True, reason="")
    services.gdpr_legal_hold_set(dsr=dsr, user=dpo, hold=True, reason="Litigation 2026-14")
    with pytest.raises(ActionRefused, match=r"legal hold \(Litigation 2026-14\)"):
        gdpr_job_start(dsr=dsr, user=dpo, kind="erasure")
    assert not dsr.jobs.exists()


def test_rejection_needs_a_known_reason_and_closes_the_request(dpo, checklist):
    dsr = receive(dpo)
    with pytest.raises(ActionRefused, match="not a known reason"):
        services.gdpr_request_reject(dsr=dsr, user=dpo, reason="bored")
    services.gdpr_request_reject(dsr=dsr, user=dpo, reason="identity", note="No answer")
    dsr.refresh_from_db()
    assert dsr.status == "rejected" and dsr.is_closed
    assert dsr.checklist_runs.get().status == "cancelled"
    with pytest.raises(ActionRefused, match="can no longer change"):
        services.gdpr_identity_verify(dsr=dsr, user=dpo, method="x", evidence="y")


def test_the_request_owns_its_checklist_seen_by_dpo_and_admin_only(
    dpo, admin_user, operator, manager, checklist
):
    dsr = receive(dpo)
    run = ChecklistRun.objects.get(dsr=dsr)
    assert run.label == dsr.reference
    url = reverse("ops:run_detail", args=[run.pk])
    assert client_for(dpo).get(url).status_code == 200
    assert client_for(admin_user).get(url).status_code == 200
    for user in (operator, manager):
        assert client_for(user).get(url).status_code in (403, 404)
        assert (
            reverse("ops:run_detail", args=[run.pk])
            not in client_for(user)
            .get(reverse("ops:template_detail", args=[checklist.slug]))
            .content.decode()
        )


def test_dpo_rule_for_every_role(dpo, admin_user, operator, manager, image_staff, outsider):
    dsr = receive(dpo, subject_keys="cust-4711")
    url = dsr.get_absolute_url()
    for user in (dpo, admin_user):
        page = client_for(user).get(url).content.decode()
        assert EMAIL in page and "cust-4711" in page
    for user in (operator, manager):
        response = client_for(user).get(url)
        page = response.content.decode()
        assert response.status_code == 200 and "due 2026-02-28" in page
        assert EMAIL not in page and "cust-4711" not in page
        listing = client_for(user).get(reverse("ops:gdpr_list")).content.decode()
        assert dsr.reference in listing and EMAIL not in listing
    for user in (image_staff, outsider):
        assert client_for(user).get(url).status_code == 403
    views = AuditEntry.objects.filter(action="gdpr.subject.view", object_id=str(dsr.pk))
    assert sorted(views.values_list("actor_name", flat=True)) == ["adam", "dora"]


def test_only_handlers_act(dpo, manager):
    dsr = receive(dpo)
    response = client_for(manager).post(
        reverse("ops:gdpr_verify", args=[dsr.pk]), {"method": "x", "evidence": "y"}
    )
    assert response.status_code == 403
    dsr.refresh_from_db()
    assert not dsr.is_verified


def test_receive_form_shows_errors_beside_fields(dpo):
    response = client_for(dpo).post(
        reverse("ops:gdpr_new"),
        {
            "kind": "access",
            "subject_email": EMAIL,
            "received_at": "2026-01-31T10:00",
            "due_at": "2026-01-30T10:00",
            "channel": "email",
        },
    )
    assert response.status_code == 400
    assert "before the request was received" in response.content.decode()
    assert not DataSubjectRequest.objects.exists()


def test_deadline_notices_once_each_without_identifiers(dpo):
    soon = receive(dpo, received_at=T0, now=T0)
    services.gdpr_request_assign(dsr=soon, user=dpo, assignee=dpo)
    now = soon.due_at - timedelta(days=3)
    assert services.gdpr_deadline_notifications_send(now=now) == [soon.pk]
    assert services.gdpr_deadline_notifications_send(now=now) == []
    later = soon.due_at + timedelta(hours=2)
    assert services.gdpr_deadline_notifications_send(now=later) == [soon.pk]
    assert services.gdpr_deadline_notifications_send(now=later) == []
    assert [message.to for message in mail.outbox] == [["dora@example.com"]] * 2
    assert "due soon" in mail.outbox[0].subject and "overdue" in mail.outbox[1].subject
    assert EMAIL not in mail.outbox[0].body


def test_today_block_for_those_who_see_requests(dpo, operator, image_staff):
    dsr = receive(dpo, received_at=None, now=None, kind="access")
    DataSubjectRequest.objects.filter(pk=dsr.pk).update(due_at=dsr.received_at + timedelta(days=2))
    page = client_for(operator).get(reverse("today")).content.decode()
    assert "Data-subject requests due" in page and dsr.reference in page and "Due soon" in page
    assert EMAIL not in page
    assert (
        "Data-subject requests due"
        not in client_for(image_staff).get(reverse("today")).content.decode()
    )


def test_dpo_role_exists(db, make_user):
    make_user("x")
    group = Group.objects.get(name=roles.DPO)
    assert group.permissions.filter(codename="view_subject_data").exists()
    assert (
        not Group.objects.get(name=roles.OPERATOR)
        .permissions.filter(codename="view_subject_data")
        .exists()
    )
