"""Subscribers of the status page: e-mail with double opt-in, per component or all of them,
one-click unsubscribe, told about public incident updates and maintenance announcements.

Rows are the truth, as for alert sends (ops.services.alerts): a notice is a row written in the
transaction of what it tells; a task makes one delivery row per subscriber from it; each
delivery is claimed by a conditional update before it is sent, retried with the alerts'
backoff, and recorded. The task is nudged after the commit, and beat runs it every 15 s, so a
broker that is down delays notices and loses none.

E-mail addresses are personal data: they are kept in the subscriber row only (never in the
audit log, whose entries name the subscriber's id), deleted on unsubscribing, exported and
erased by a data-subject request (ops.hooks registers them with the GDPR jobs)."""

import logging
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from ops.models import (
    DeliveryKind,
    SendStatus,
    StatusComponent,
    StatusDelivery,
    StatusNotice,
    StatusSubscriber,
)
from ops.models.maintenance import WindowNotice
from ops.services.alerts import SEND_BACKOFF_MINUTES
from portal.celery import app
from portal.errors import ActionRefused
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

CONFIRM_SALT = "ops.status.subscribe.confirm"
TICK_TASK = "ops.status_subscribers_tick"
DELIVERY_BATCH = 200
# A delivery left "sending" this long belongs to a worker that died while sending.
SENDING_STALE = timedelta(minutes=10)
# Maintenance notices older than this are not announced to subscribers any more.
MAINTENANCE_LOOKBACK = timedelta(days=1)
MAX_EMAIL = 254
RATE_WINDOW = 3600


def page_name() -> str:
    return f"{settings.PORTAL_NAME} status"


def status_link(name: str, *args) -> str:
    """An absolute link to a public status page: on the status host when one is configured
    (its own URLs), else under /status/ on the portal's address."""
    urlconf = settings.HOST_URLCONFS.get(settings.STATUS_HOST) if settings.STATUS_HOST else None
    path = reverse(name, args=args, urlconf=urlconf)
    return f"{settings.STATUS_BASE_URL.rstrip('/')}{path}"


def _nudge() -> None:
    """Ask a worker to deliver now; a broker that is down loses nothing (beat's tick finds
    the rows)."""
    try:
        app.send_task(TICK_TASK)
    except OperationalError:
        logger.warning("The broker did not take %s; beat's next tick delivers", TICK_TASK)


# Rate limit


def _over_limit(key: str, limit: int) -> bool:
    """Counts one more request in the current hour's window; True once over ``limit``."""
    window = int(time.time()) // RATE_WINDOW
    full = f"status-subscribe:{key}:{window}"
    cache.add(full, 0, timeout=RATE_WINDOW + 60)
    try:
        count = cache.incr(full)
    except ValueError:  # expired between add and incr
        cache.set(full, 1, timeout=RATE_WINDOW + 60)
        count = 1
    return count > limit


BURST = (
    "Too many subscription requests {what} in the last hour: nothing was changed. Try again later."
)


# Subscribing


def _email_cleaned(email: str) -> str:
    email = (email or "").strip()
    if not email:
        raise ActionRefused("Give the e-mail address to send updates to.", field="email")
    if len(email) > MAX_EMAIL:
        raise ActionRefused(
            f"The address is too long ({len(email)} characters; at most {MAX_EMAIL}).",
            field="email",
        )
    try:
        validate_email(email)
    except ValidationError:
        raise ActionRefused(
            f"“{email}” is not an e-mail address (it should look like name@example.com).",
            field="email",
        ) from None
    return email.lower()


def _components_named(slugs: Iterable[str]) -> list[StatusComponent]:
    slugs = [slug.strip() for slug in slugs if slug and slug.strip()]
    if not slugs:
        return []
    found = {
        component.slug: component
        for component in StatusComponent.objects.filter(slug__in=slugs, is_public=True)
    }
    unknown = [slug for slug in dict.fromkeys(slugs) if slug not in found]
    if unknown:
        listed = ", ".join(f"“{slug}”" for slug in unknown)
        raise ActionRefused(
            f"No component on the status page is called {listed}: choose among those listed.",
            field="components",
        )
    return [found[slug] for slug in dict.fromkeys(slugs)]


def subscription_request(
    *, email: str, components: Iterable[str] = (), client: str | None, now: datetime | None = None
) -> StatusSubscriber:
    """Ask for e-mail about ``components`` (slugs; none: all of them). Sends a link to
    confirm: nothing is sent to the address until it is followed (double opt-in). An address
    already subscribed gets a link that changes its choice, so nobody changes another's
    subscription. The same answer whether or not the address was known.

    A burst of requests from one client address, or for one e-mail address, is refused (the
    portal's cache counts them per hour) before anything is written."""
    now = now or timezone.now()
    if client and _over_limit(f"client:{client}", settings.STATUS_SUBSCRIBE_PER_CLIENT):
        raise ActionRefused(BURST.format(what="from your address"), status=429)
    email = _email_cleaned(email)
    chosen = _components_named(components)
    if _over_limit(
        f"address:{signing.Signer(salt=CONFIRM_SALT).signature(email)}",
        (settings.STATUS_SUBSCRIBE_PER_ADDRESS),
    ):
        raise ActionRefused(BURST.format(what="for this e-mail address"), status=429)
    with transaction.atomic():
        subscriber = StatusSubscriber.objects.select_for_update().filter(email=email).first()
        if subscriber is None:
            try:
                with transaction.atomic():
                    subscriber = StatusSubscriber.objects.create(
                        email=email,
                        all_components=not chosen,
                        key=secrets.token_urlsafe(32),
                        confirm_nonce=secrets.token_hex(8),
                        created_at=now,
                    )
            except IntegrityError:  # the same address at the same moment: one row
                subscriber = StatusSubscriber.objects.select_for_update().get(email=email)
            else:
                subscriber.components.set(chosen)
        StatusDelivery.objects.create(
            subscriber=subscriber,
            kind=DeliveryKind.CONFIRM,
            payload=[component.pk for component in chosen] if chosen else None,
            next_attempt_at=now,
            created_at=now,
        )
        audit_record(
            actor=None,
            action="status.subscribe",
            target=subscriber,
            summary="confirmation link requested for "
            + (", ".join(component.name for component in chosen) or "all components"),
        )
        transaction.on_commit(_nudge)
    return subscriber


def confirm_token(*, subscriber: StatusSubscriber, payload: list[int] | None) -> str:
    return signing.dumps(
        {"s": subscriber.pk, "n": subscriber.confirm_nonce, "c": payload},
        salt=CONFIRM_SALT,
        compress=True,
    )


def _confirm_data(token: str) -> dict:
    try:
        return signing.loads(token, salt=CONFIRM_SALT, max_age=settings.STATUS_CONFIRM_HOURS * 3600)
    except signing.SignatureExpired:
        raise ActionRefused(
            f"This confirmation link has expired (links work for {settings.STATUS_CONFIRM_HOURS} "
            "hours): subscribe again to get a new one.",
            status=410,
        ) from None
    except signing.BadSignature:
        raise ActionRefused(
            "This link is not valid: copy the whole address from the e-mail.", status=400
        ) from None


def _waiting(subscriber: StatusSubscriber | None, data: dict) -> StatusSubscriber:
    if subscriber is None:
        raise ActionRefused(
            "No subscription waits for this link any more: subscribe again.", status=404
        )
    if subscriber.confirm_nonce != data.get("n"):
        raise ActionRefused("This confirmation link was already used.", status=409)
    return subscriber


def subscription_confirm_read(*, token: str) -> tuple[StatusSubscriber, list[int] | None]:
    """The subscriber a confirmation link was made for and the components it asks for (None:
    all), or a refusal that says why (expired, used, not valid)."""
    data = _confirm_data(token)
    subscriber = _waiting(StatusSubscriber.objects.filter(pk=data.get("s")).first(), data)
    return subscriber, data.get("c")


@transaction.atomic
def subscription_confirm(*, token: str, now: datetime | None = None) -> StatusSubscriber:
    """Follow a confirmation link (once): the subscription starts, or its choice of
    components changes. Every earlier link of the subscriber stops working."""
    now = now or timezone.now()
    data = _confirm_data(token)
    subscriber = _waiting(
        StatusSubscriber.objects.select_for_update().filter(pk=data.get("s")).first(), data
    )
    payload = data.get("c")
    chosen: list[StatusComponent] = []
    if payload is not None:
        chosen = list(StatusComponent.objects.filter(pk__in=payload, is_public=True))
        if not chosen:
            raise ActionRefused(
                "The components you chose are no longer on the status page: subscribe again.",
                status=409,
            )
    first = subscriber.confirmed_at is None
    subscriber.all_components = payload is None
    subscriber.confirm_nonce = secrets.token_hex(8)
    subscriber.confirmed_at = subscriber.confirmed_at or now
    subscriber.save(update_fields=["all_components", "confirm_nonce", "confirmed_at"])
    subscriber.components.set(chosen)
    audit_record(
        actor=None,
        action="status.subscribe.confirm" if first else "status.subscribe.change",
        target=subscriber,
        summary=", ".join(component.name for component in chosen) or "all components",
    )
    return subscriber


def subscription_for_key(*, key: str) -> StatusSubscriber | None:
    if not key or len(key) > 64:
        return None
    return StatusSubscriber.objects.filter(key=key).first()


@transaction.atomic
def subscription_cancel(*, key: str) -> bool:
    """One click from any message: the subscriber and its address are deleted. False when no
    subscription has this key (already cancelled, or a mistyped link)."""
    subscriber = subscription_for_key(key=key)
    if subscriber is None:
        return False
    audit_record(actor=None, action="status.unsubscribe", target=subscriber)
    subscriber.delete()
    return True


SUBJECT_COLUMNS = ("email", "components", "confirmed_at", "created_at")


def subscribers_of(*, email: str) -> list[tuple]:
    """A data subject's subscriber rows (access request), in SUBJECT_COLUMNS."""
    found = StatusSubscriber.objects.filter(email__iexact=(email or "").strip()).prefetch_related(
        "components"
    )
    return [
        (
            subscriber.email,
            "all"
            if subscriber.all_components
            else ", ".join(component.name for component in subscriber.components.all()),
            subscriber.confirmed_at,
            subscriber.created_at,
        )
        for subscriber in found
    ]


def subscribers_count(*, email: str) -> int:
    return StatusSubscriber.objects.filter(email__iexact=(email or "").strip()).count()


def subscribers_erase(*, email: str) -> int:
    """A data-subject request's erasure: the subscriber rows with this address (and their
    deliveries) are deleted."""
    found = StatusSubscriber.objects.filter(email__iexact=(email or "").strip())
    count = found.count()
    for subscriber in found:
        audit_record(actor=None, action="status.subscriber.erase", target=subscriber)
    found.delete()
    return count


def subscribers_prune(*, now: datetime | None = None) -> int:
    """Addresses never confirmed are deleted once their last link has expired."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.STATUS_CONFIRM_HOURS)
    recent = StatusDelivery.objects.filter(
        subscriber=OuterRef("pk"), kind=DeliveryKind.CONFIRM, created_at__gte=cutoff
    )
    stale = StatusSubscriber.objects.filter(confirmed_at__isnull=True, created_at__lt=cutoff)
    ids = list(stale.filter(~Exists(recent)).values_list("pk", flat=True))
    StatusSubscriber.objects.filter(pk__in=ids).delete()
    return len(ids)


# Notices


def status_notice_queue(
    *,
    key: str,
    subject: str,
    body: str,
    components: Iterable[StatusComponent],
    now: datetime | None = None,
) -> StatusNotice | None:
    """Record one notice for subscribers (once per key), inside the caller's transaction; its
    deliveries are made after the commit. None when this key was already told."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            notice = StatusNotice.objects.create(
                key=key, subject=subject[:250], body=body, created_at=now
            )
    except IntegrityError:
        return None
    notice.components.set(list(components))
    transaction.on_commit(_nudge)
    return notice


def _audience(notice: StatusNotice):
    """Confirmed before the notice was written, subscribed to all or to one it names."""
    return StatusSubscriber.objects.filter(confirmed_at__lte=notice.created_at).filter(
        Q(all_components=True) | Q(components__in=notice.components.all())
    )


def status_notices_fan_out(*, now: datetime | None = None) -> int:
    """One delivery per subscriber for each notice that has none yet; a second run makes no
    second delivery (unique per notice and subscriber)."""
    now = now or timezone.now()
    made = 0
    for notice in StatusNotice.objects.filter(fanned_out_at__isnull=True).order_by("pk"):
        with transaction.atomic():
            if not StatusNotice.objects.filter(pk=notice.pk, fanned_out_at__isnull=True).update(
                fanned_out_at=now
            ):
                continue  # another worker has it
            ids = list(_audience(notice).values_list("pk", flat=True).distinct())
            StatusDelivery.objects.bulk_create(
                [
                    StatusDelivery(
                        subscriber_id=pk, notice=notice, next_attempt_at=now, created_at=now
                    )
                    for pk in ids
                ],
                batch_size=1000,
                ignore_conflicts=True,
            )
            StatusNotice.objects.filter(pk=notice.pk).update(recipients=len(ids))
            made += len(ids)
    return made


def _what(subscriber: StatusSubscriber, names: list[str] | None = None) -> str:
    if subscriber.all_components:
        return "every component"
    names = names if names is not None else [c.name for c in subscriber.components.all()]
    return ", ".join(names) or "the components you chose"


def delivery_message(delivery: StatusDelivery) -> EmailMessage:
    subscriber = delivery.subscriber
    if delivery.kind == DeliveryKind.CONFIRM:
        names = None
        if delivery.payload is not None:
            names = list(
                StatusComponent.objects.filter(pk__in=delivery.payload).values_list(
                    "name", flat=True
                )
            )
        link = status_link(
            "ops:status_confirm", confirm_token(subscriber=subscriber, payload=delivery.payload)
        )
        what = "every component" if delivery.payload is None else ", ".join(names or [])
        subject = f"Confirm your subscription to {page_name()}"
        body = (
            f"Someone, we hope you, asked for e-mail about {what} on {page_name()}.\n\n"
            f"To confirm, open this link within {settings.STATUS_CONFIRM_HOURS} hours:\n"
            f"{link}\n\n"
            "If it was not you, ignore this message: nothing is sent to this address "
            "unless the link is followed.\n"
        )
        return EmailMessage(
            subject, body, None, [subscriber.email], headers={"Auto-Submitted": "auto-generated"}
        )
    notice = delivery.notice
    unsubscribe = status_link("ops:status_unsubscribe", subscriber.key)
    body = (
        f"{notice.body}\n\n"
        f"-- \nYou receive this because you subscribed to {page_name()} "
        f"({_what(subscriber)}): {status_link('ops:status')}\n"
        f"Unsubscribe with one click: {unsubscribe}\n"
    )
    return EmailMessage(
        notice.subject,
        body,
        None,
        [subscriber.email],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )


def status_deliveries_deliver(*, now: datetime | None = None) -> dict[str, int]:
    """Send due deliveries: each claimed (queued → sending) by a conditional update, then
    sent over one SMTP connection; a failure is recorded and retried after 1, 2, 4, 8, 16
    minutes (the alerts' backoff), then left failed. Never raises for one bad delivery."""
    now = now or timezone.now()
    due = list(
        StatusDelivery.objects.filter(status=SendStatus.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:DELIVERY_BATCH]
    )
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if not due:
        return counts
    connection = get_connection(fail_silently=False)
    try:
        for pk in due:
            if not StatusDelivery.objects.filter(pk=pk, status=SendStatus.QUEUED).update(
                status=SendStatus.SENDING, next_attempt_at=now
            ):
                continue
            delivery = (
                StatusDelivery.objects.select_related("subscriber", "notice").filter(pk=pk).first()
            )
            if delivery is None:
                continue  # unsubscribed meanwhile
            try:
                message = delivery_message(delivery)
                message.connection = connection
                message.send()
                error = ""
            except Exception as problem:  # recorded; the worker goes on
                logger.warning("Status delivery %s failed: %s", pk, problem)
                error = f"{type(problem).__name__}: {problem}"[:500]
                connection.close()  # a broken connection is opened anew for the next one
            attempts = delivery.attempts + 1
            if not error:
                fields = {"status": SendStatus.SENT, "sent_at": now, "error": ""}
                counts["sent"] += 1
            elif attempts <= len(SEND_BACKOFF_MINUTES):
                fields = {
                    "status": SendStatus.QUEUED,
                    "error": error,
                    "next_attempt_at": now + timedelta(minutes=SEND_BACKOFF_MINUTES[attempts - 1]),
                }
                counts["retry"] += 1
            else:
                fields = {"status": SendStatus.FAILED, "error": error}
                counts["failed"] += 1
            StatusDelivery.objects.filter(pk=pk).update(attempts=attempts, **fields)
    finally:
        connection.close()
    return counts


def status_deliveries_reclaim(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return StatusDelivery.objects.filter(
        status=SendStatus.SENDING, next_attempt_at__lt=now - SENDING_STALE
    ).update(status=SendStatus.QUEUED)


# Maintenance announcements


PHASES = ("scheduled", "start", "end")


def _phase(kind: str) -> str | None:
    if kind.startswith("before:"):
        return "scheduled"
    return kind if kind in ("start", "end") else None


def _maintenance_text(occurrence, phase: str) -> tuple[str, str]:
    window = occurrence.window
    when = (
        f"{occurrence.starts_at.astimezone(UTC):%a %d %b %Y %H:%M} to "
        f"{occurrence.ends_at.astimezone(UTC):%a %d %b %Y %H:%M} UTC"
    )
    head = {
        "scheduled": f"[Scheduled maintenance] {window.title}",
        "start": f"[Maintenance in progress] {window.title}",
        "end": f"[Maintenance completed] {window.title}",
    }[phase]
    lead = {
        "scheduled": f"Maintenance is scheduled for {when}.",
        "start": f"Maintenance has started; it is planned for {when}.",
        "end": "The maintenance has ended.",
    }[phase]
    body = f"{window.title}\n\n{lead}\n\n{window.announcement}".rstrip() + "\n"
    return head, body


def status_maintenance_notices_queue(*, now: datetime | None = None) -> int:
    """Public maintenance windows' announcements (the maintenance scan's notices) become
    subscribers' notices: scheduled (the first announcement ahead), started, ended, each once
    per occurrence; a phase that a later one overtook (the scan was late) is not sent."""
    now = now or timezone.now()
    notices = (
        WindowNotice.objects.filter(
            created_at__gte=now - MAINTENANCE_LOOKBACK,
            occurrence__window__is_public=True,
            occurrence__window__is_cancelled=False,
        )
        .select_related("occurrence__window")
        .prefetch_related("occurrence__window__services")
        .order_by("created_at", "id")
    )
    by_occurrence: dict[int, tuple] = {}
    for notice in notices:
        phase = _phase(notice.kind)
        if phase is None:
            continue
        occurrence = notice.occurrence
        latest = by_occurrence.get(occurrence.pk, (occurrence, None))[1]
        if latest is None or PHASES.index(phase) > PHASES.index(latest):
            by_occurrence[occurrence.pk] = (occurrence, phase)
    if not by_occurrence:
        return 0
    told = set(
        StatusNotice.objects.filter(
            key__in=[f"maintenance:{pk}:{phase}" for pk in by_occurrence for phase in PHASES]
        ).values_list("key", flat=True)
    )
    queued = 0
    for pk, (occurrence, phase) in by_occurrence.items():
        later = PHASES[PHASES.index(phase) :]
        if any(f"maintenance:{pk}:{done}" in told for done in later):
            continue
        subject, body = _maintenance_text(occurrence, phase)
        components = StatusComponent.objects.filter(
            is_public=True, services__in=occurrence.window.services.all()
        ).distinct()
        with transaction.atomic():
            if status_notice_queue(
                key=f"maintenance:{pk}:{phase}",
                subject=subject,
                body=body,
                components=components,
                now=now,
            ):
                queued += 1
    return queued


def status_subscribers_tick(*, now: datetime | None = None) -> dict[str, int]:
    """What beat runs every 15 s (and a nudge after each notice or request): announcements
    of maintenance, fan-out, reclaim, delivery, pruning."""
    now = now or timezone.now()
    return {
        "maintenance": status_maintenance_notices_queue(now=now),
        "fanned_out": status_notices_fan_out(now=now),
        "reclaimed": status_deliveries_reclaim(now=now),
        **status_deliveries_deliver(now=now),
        "pruned": subscribers_prune(now=now),
    }
