"""Status page subscribers against a local SMTP server: subscribe, confirm (double opt-in),
be told of public updates and maintenance, unsubscribe in one click; bad input (not an
address, unknown component, a link reused, expired or forged, a burst) changes nothing; a
broker or mail server that is down loses no notice; GDPR access and erasure; the admin."""

import re
import secrets
import uuid
from datetime import timedelta
from email.message import Message

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from ops.models import (
    ComponentGroup,
    MaintenanceWindow,
    MonitoredService,
    SendStatus,
    StatusComponent,
    StatusDelivery,
    StatusNotice,
    StatusSubscriber,
)
from ops.services import gdpr as gdpr_services
from ops.services import status_subscribers
from ops.services.gdpr_jobs import gdpr_job_run, gdpr_job_start, gdpr_scan
from ops.services.maintenance import maintenance_scan
from ops.services.maintenance_notices import maintenance_notices_send
from ops.services.status import public_update_post
from ops.services.status_subscribers import status_subscribers_tick
from portal import roles
from portal.models import AuditEntry
from tests.conftest import client_for
from tests.fakes import closed_port
from tests.local_servers import SMTPServer

pytestmark = pytest.mark.django_db

SUBSCRIBE = "/status/subscribe/"


@pytest.fixture
def smtp(smtp_server, settings):
    settings.STATUS_BASE_URL = "http://portal.test"
    return Inbox(smtp_server)


class Inbox:
    """The local SMTP server's messages, as e-mail messages (with headers)."""

    def __init__(self, server: SMTPServer):
        self.server = server
        self.port = server.port

    @property
    def messages(self) -> list[Message]:
        return [received["message"] for received in self.server.messages]


@pytest.fixture
def visitor():
    """A browser from an address of its own: the rate limit counts per client address in
    the cache, which outlives a test's database (and a run)."""
    return Client(
        REMOTE_ADDR=f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    )


def _service(slug: str) -> MonitoredService:
    return MonitoredService.objects.create(
        name=slug.title(), slug=slug, kind="tcp", target="127.0.0.1:9"
    )


@pytest.fixture
def components(db):
    group = ComponentGroup.objects.create(name="Shop")
    checkout = StatusComponent.objects.create(name="Checkout", slug="checkout", group=group)
    checkout.services.set([_service("payments")])
    images = StatusComponent.objects.create(name="Image delivery", slug="images", group=group)
    images.services.set([_service("cdn")])
    return {"checkout": checkout, "images": images}


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.org"


def _body(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def _unsubscribe_header(message: Message) -> str:
    return " ".join(message["List-Unsubscribe"].split()).strip("<>")


def _link(message: Message, path: str) -> str:
    return re.search(rf"http://portal\.test(/status/{path}[^\s]+)", _body(message)).group(1)


def _subscribe(visitor, smtp, email: str, components=()) -> str:
    """Subscribe and confirm through the pages; the confirmation link's path."""
    response = visitor.post(SUBSCRIBE, {"email": email, "components": list(components)})
    assert response.status_code == 200, response.content.decode()
    before = len(smtp.messages)
    status_subscribers_tick()
    (mail,) = smtp.messages[before:]
    link = _link(mail, "subscribe/confirm/")
    assert visitor.post(link).status_code == 200
    return link


def _incident(make_incident, operator, service="payments"):
    return make_incident(operator, title="db-7 replica lag (internal)", services=[service])


def _publish(incident, user, status="investigating", message="Payments fail.", title="Payments"):
    return public_update_post(
        incident=incident, user=user, status=status, message=message, title=title
    )


# The whole flow


def test_subscribe_confirm_notified_and_unsubscribe_in_one_click(
    visitor, smtp, components, make_incident, operator
):
    email = _unique("anna")
    response = visitor.post(SUBSCRIBE, {"email": f"  {email.upper()} ", "components": ["checkout"]})
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    subscriber = StatusSubscriber.objects.get()
    assert subscriber.email == email and not subscriber.is_confirmed
    assert not subscriber.all_components
    assert list(subscriber.components.all()) == [components["checkout"]]
    # Nothing but the confirmation is sent before the link is followed.
    incident = _incident(make_incident, operator)
    _publish(incident, operator)
    status_subscribers_tick()
    (confirmation,) = smtp.messages
    assert confirmation["to"] == [email] or confirmation["To"] == email
    assert "Confirm your subscription" in confirmation["Subject"]
    assert "Checkout" in _body(confirmation)
    link = _link(confirmation, "subscribe/confirm/")

    page = visitor.get(link)  # a mail scanner opening the link confirms nothing
    assert page.status_code == 200 and "Confirm the subscription" in page.content.decode()
    assert not StatusSubscriber.objects.get().is_confirmed
    done = visitor.post(link)
    assert done.status_code == 200 and "You are subscribed" in done.content.decode()
    assert StatusSubscriber.objects.get().is_confirmed

    _publish(incident, operator, status="identified", message="A card provider fault.", title="")
    status_subscribers_tick()
    notice = smtp.messages[-1]
    assert notice["Subject"] == "[Identified] Payments"
    assert "A card provider fault." in _body(notice)
    assert "db-7" not in _body(notice) and "internal" not in _body(notice)
    unsubscribe = _unsubscribe_header(notice)
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in _body(notice)
    assert len(smtp.messages) == 2  # the update posted before confirming was not sent

    # What a mail client does for one-click unsubscribe (RFC 8058): a POST with no token.
    path = unsubscribe.removeprefix("http://portal.test")
    answer = Client(enforce_csrf_checks=True).post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 200 and "unsubscribed" in answer.content.decode()
    assert not StatusSubscriber.objects.exists()
    assert not StatusDelivery.objects.exists()  # deleted with the address
    assert Client().post(path).status_code == 404  # a second click: a clear answer
    _publish(incident, operator, status="resolved", message="Fixed.", title="")
    status_subscribers_tick()
    assert len(smtp.messages) == 2
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"status.subscribe", "status.subscribe.confirm", "status.unsubscribe"} <= actions
    assert not AuditEntry.objects.filter(object_repr__icontains="example.org").exists()
    assert not AuditEntry.objects.filter(summary__icontains="example.org").exists()


def test_per_component_all_and_the_unsubscribe_page(
    visitor, smtp, components, make_incident, operator
):
    everything = _unique("all")
    images_only = _unique("img")
    _subscribe(visitor, smtp, everything)
    _subscribe(visitor, smtp, images_only, ["images"])
    before = len(smtp.messages)
    _publish(_incident(make_incident, operator), operator)
    status_subscribers_tick()
    assert [m["To"] for m in smtp.messages[before:]] == [everything]
    _publish(_incident(make_incident, operator, "cdn"), operator, title="Images slow")
    status_subscribers_tick()
    assert sorted(m["To"] for m in smtp.messages[before + 1 :]) == sorted([everything, images_only])
    status_subscribers_tick()  # a second run sends nothing twice
    assert len(smtp.messages) == before + 3
    assert (
        StatusNotice.objects.get(key__startswith="update:", subject__contains="Images").recipients
        == 2
    )

    mail = smtp.messages[-1]
    path = _unsubscribe_header(mail).removeprefix("http://portal.test")
    page = Client().get(path)
    assert page.status_code == 200 and "Unsubscribe" in page.content.decode()
    assert StatusSubscriber.objects.count() == 2  # GET (a link scanner) changes nothing


def test_changing_a_confirmed_choice_needs_the_new_link(visitor, smtp, components):
    email = _unique("bea")
    _subscribe(visitor, smtp, email, ["checkout"])
    response = visitor.post(SUBSCRIBE, {"email": email, "components": ["images"]})
    assert response.status_code == 200
    subscriber = StatusSubscriber.objects.get()
    assert [c.slug for c in subscriber.components.all()] == ["checkout"]  # not yet
    status_subscribers_tick()
    link = _link(smtp.messages[-1], "subscribe/confirm/")
    assert visitor.post(link).status_code == 200
    assert [c.slug for c in subscriber.components.all()] == ["images"]


# Maintenance announcements


def test_public_maintenance_is_announced_started_and_ended(visitor, smtp, components):
    email = _unique("carl")
    _subscribe(visitor, smtp, email, ["checkout"])
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        title="Payment provider upgrade",
        starts_at=now + timedelta(hours=2),
        duration=timedelta(hours=1),
        is_public=True,
        announcement="Card payments may be slow.",
    )
    window.services.set([MonitoredService.objects.get(slug="payments")])
    private = MaintenanceWindow.objects.create(
        title="Private thing", starts_at=now + timedelta(hours=2), duration=timedelta(hours=1)
    )
    private.services.set([MonitoredService.objects.get(slug="payments")])
    before = len(smtp.messages)
    _scan(now)
    (scheduled,) = smtp.messages[before:]
    assert scheduled["Subject"] == "[Scheduled maintenance] Payment provider upgrade"
    assert "Card payments may be slow." in _body(scheduled)
    assert scheduled["List-Unsubscribe"]
    later = now + timedelta(hours=2, minutes=1)
    _scan(later)
    _scan(later)  # a second scan tells nobody twice
    assert [m["Subject"] for m in smtp.messages[before:]] == [
        "[Scheduled maintenance] Payment provider upgrade",
        "[Maintenance in progress] Payment provider upgrade",
    ]
    assert not any("Private" in m["Subject"] for m in smtp.messages)


def _scan(now):
    """What beat does every minute (the maintenance scan) and every 15 s (subscribers)."""
    maintenance_scan(now=now)
    maintenance_notices_send(now=now)
    status_subscribers_tick(now=now)


# Rows are the truth


def test_a_broker_outage_and_a_mail_server_outage_lose_nothing(
    visitor, smtp, components, make_incident, operator, monkeypatch, settings
):
    email = _unique("dan")
    _subscribe(visitor, smtp, email)

    def down(*args, **kwargs):
        raise OperationalError("broker down")

    monkeypatch.setattr(status_subscribers.app, "send_task", down)
    incident = _incident(make_incident, operator)
    _publish(incident, operator)  # the nudge fails after the commit; the post does not
    assert StatusNotice.objects.filter(key__startswith="update:").count() == 1

    before = len(smtp.messages)
    now = timezone.now()
    with closed_port() as port:
        settings.EMAIL_PORT = port
        counts = status_subscribers_tick(now=now)
    assert counts["retry"] == 1 and counts["sent"] == 0
    delivery = StatusDelivery.objects.get(kind="notice")
    assert delivery.status == SendStatus.QUEUED and delivery.attempts == 1 and delivery.error
    assert delivery.next_attempt_at == now + timedelta(minutes=1)
    settings.EMAIL_PORT = smtp.port
    assert status_subscribers_tick(now=now)["sent"] == 0  # not due yet
    assert status_subscribers_tick(now=now + timedelta(minutes=1))["sent"] == 1
    assert len(smtp.messages) == before + 1 and smtp.messages[-1]["To"] == email
    delivery.refresh_from_db()
    assert delivery.status == SendStatus.SENT and delivery.attempts == 2


def test_a_delivery_that_keeps_failing_ends_failed_and_a_dead_worker_is_reclaimed(
    visitor, smtp, components, make_incident, operator, settings
):
    _subscribe(visitor, smtp, _unique("eve"))
    _publish(_incident(make_incident, operator), operator)
    now = timezone.now()
    with closed_port() as port:
        settings.EMAIL_PORT = port
        for minutes in (0, 1, 3, 7, 15, 31):
            status_subscribers_tick(now=now + timedelta(minutes=minutes))
    delivery = StatusDelivery.objects.get(kind="notice")
    assert delivery.status == SendStatus.FAILED and delivery.attempts == 6
    StatusDelivery.objects.filter(pk=delivery.pk).update(
        status=SendStatus.SENDING, next_attempt_at=now
    )
    settings.EMAIL_PORT = smtp.port
    assert status_subscribers_tick(now=now + timedelta(minutes=11))["reclaimed"] == 1


# Bad input: a clear answer, nothing changed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address"}, "is not an e-mail address"),
        ({"email": "anna@"}, "is not an e-mail address"),
        ({"email": ""}, "Give the e-mail address"),
        ({"email": "a" * 250 + "@x.org"}, "too long"),
        ({"email": "ok@example.org", "components": ["checkout", "warp-drive"]}, "warp-drive"),
    ],
)
def test_bad_subscriptions_are_refused_and_change_nothing(visitor, smtp, components, data, message):
    response = visitor.post(SUBSCRIBE, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not StatusSubscriber.objects.exists() and not StatusDelivery.objects.exists()


def test_a_burst_from_one_client_or_for_one_address_is_refused(visitor, smtp, components, settings):
    settings.STATUS_SUBSCRIBE_PER_CLIENT = 4
    settings.STATUS_SUBSCRIBE_PER_ADDRESS = 2
    email = _unique("flo")
    for _ in range(2):
        assert visitor.post(SUBSCRIBE, {"email": email}).status_code == 200
    third = visitor.post(SUBSCRIBE, {"email": email})
    assert third.status_code == 429 and "Too many subscription requests" in third.content.decode()
    assert StatusDelivery.objects.count() == 2
    other = _unique("gus")
    assert visitor.post(SUBSCRIBE, {"email": other}).status_code == 200  # the 4th from here
    fifth = visitor.post(SUBSCRIBE, {"email": _unique("hal")})
    assert fifth.status_code == 429 and "from your address" in fifth.content.decode()
    assert StatusSubscriber.objects.count() == 2 and StatusDelivery.objects.count() == 3


def test_confirmation_links_reused_expired_or_forged(visitor, smtp, components, monkeypatch):
    email = _unique("ida")
    link = _subscribe(visitor, smtp, email)
    reused = visitor.post(link)
    assert reused.status_code == 409 and "already used" in reused.content.decode()
    assert visitor.get(link).status_code == 409

    visitor.post(SUBSCRIBE, {"email": _unique("jon")})
    subscriber = StatusSubscriber.objects.get(confirmed_at__isnull=True)
    week_ago = timezone.now().timestamp() - 7 * 24 * 3600
    monkeypatch.setattr(signing.time, "time", lambda: week_ago)
    old = status_subscribers.confirm_token(subscriber=subscriber, payload=None)
    monkeypatch.undo()
    expired = visitor.post(f"/status/subscribe/confirm/{old}/")
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    forged = visitor.post(f"/status/subscribe/confirm/{old[:-3]}abc/")
    assert forged.status_code == 400 and "not valid" in forged.content.decode()
    subscriber.refresh_from_db()
    assert not subscriber.is_confirmed
    assert visitor.get("/status/unsubscribe/nope/").status_code == 404


def test_unconfirmed_addresses_are_deleted_once_their_link_expired(visitor, smtp, components):
    visitor.post(SUBSCRIBE, {"email": _unique("kim")})
    later = timezone.now() + timedelta(hours=49)
    assert status_subscribers_tick(now=later)["pruned"] == 1
    assert not StatusSubscriber.objects.exists()


# Personal data


@pytest.fixture
def dpo(make_user):
    return make_user("dora", roles.DPO, email="dora@example.com")


def test_an_access_request_exports_and_an_erasure_removes_the_subscriber(
    visitor, smtp, components, dpo
):
    email = _unique("lea")
    _subscribe(visitor, smtp, email, ["checkout"])
    _subscribe(visitor, smtp, _unique("max"))

    def verified(kind):
        dsr = gdpr_services.gdpr_request_receive(
            user=dpo, kind=kind, subject_email=email.upper(), assignee=dpo
        )
        gdpr_services.gdpr_identity_verify(dsr=dsr, user=dpo, method="e-mail", evidence="ok")
        return dsr

    access = verified("access")
    assert gdpr_scan(dsr=access) == {"portal/status_subscribers": {"email": 1}}
    job = gdpr_job_start(dsr=access, user=dpo, kind="export")
    assert gdpr_job_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    assert job.result["counts"]["portal/status_subscribers"] == 1

    erasure = verified("erasure")
    job = gdpr_job_start(dsr=erasure, user=dpo, kind="erasure")
    assert gdpr_job_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    assert job.result["counts"]["portal/status_subscribers"] == 1
    assert job.result["hits"] == {}
    assert list(StatusSubscriber.objects.values_list("email", flat=True)) != [email]
    assert StatusSubscriber.objects.count() == 1


def test_managers_see_subscribers_in_the_admin(visitor, smtp, components, manager, operator):
    email = _unique("ned")
    _subscribe(visitor, smtp, email, ["images"])
    page = client_for(manager).get("/admin/ops/statussubscriber/")
    assert page.status_code == 200
    assert email in page.content.decode() and "Image delivery" in page.content.decode()
    assert client_for(manager).get("/admin/ops/statusnotice/").status_code == 200
    assert client_for(operator).get("/admin/ops/statussubscriber/").status_code == 302
