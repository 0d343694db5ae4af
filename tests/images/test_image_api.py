"""POST /api/image/optimize and GET /api/image/health, as the runbooks' curl calls use them;
and the figures the health panel reads."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from images.models import Batch, BatchImage, BatchSource, ImageStatus
from images.selectors import image_stats, image_success_rate
from portal.services.tokens import api_token_create
from tests.conftest import client_for
from tests.images import samples
from tests.images.samples import upload

pytestmark = pytest.mark.django_db
OPTIMIZE = "/api/image/optimize"
HEALTH = "/api/image/health"


@pytest.fixture
def token_client(image_staff, preset) -> Client:
    _token, raw = api_token_create(user=image_staff, name="site build")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", enforce_csrf_checks=True)


def test_optimize_returns_the_best_variant(token_client):
    source = samples.jpeg(320, 240)
    response = token_client.post(OPTIMIZE, {"image": upload("beach.jpg", source)})
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    image = BatchImage.objects.get()
    assert image.status == ImageStatus.DONE and image.batch.source == BatchSource.API
    assert len(body) == image.bytes_after < len(source)
    assert response["Content-Type"] in ("image/jpeg", "image/webp")
    assert response["X-Original-Bytes"] == str(len(source))
    assert image.batch.name == "API: beach.jpg"


def test_optimize_answers_json_with_every_variant(token_client):
    response = token_client.post(
        OPTIMIZE, {"image": upload("beach.jpg", samples.jpeg())}, HTTP_ACCEPT="application/json"
    )
    data = response.json()
    assert response.status_code == 200
    assert (data["width"], data["height"], data["format"]) == (160, 120, "JPEG")
    assert data["savings_percent"] > 0 and data["best"]["bytes"] == data["best_bytes"]
    assert [(v["size"], v["format"]) for v in data["variants"]] == [
        (2048, "jpeg"),
        (2048, "webp"),
        (1024, "jpeg"),
        (1024, "webp"),
        (400, "jpeg"),
        (400, "webp"),
    ]
    url = data["variants"][0]["url"]
    assert url.startswith("http://testserver/images/files/variants/")
    fetched = token_client.get(url.removeprefix("http://testserver"))
    assert len(b"".join(fetched.streaming_content)) == data["variants"][0]["bytes"]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (samples.text(), 400, "not an image in a supported format"),
        (b"", 400, "The file is empty"),
        (samples.bomb_png(), 400, "decompression bomb"),
        (samples.truncated_jpeg(), 422, "truncated or corrupt"),
    ],
    ids=["text", "zero-byte", "bomb", "truncated"],
)
def test_optimize_refuses_bad_images_with_json(token_client, data, status, message):
    response = token_client.post(OPTIMIZE, {"image": upload("x.jpg", data)})
    assert response.status_code == status and message in response.json()["error"]
    if status == 400:
        assert not Batch.objects.exists()
    else:
        assert BatchImage.objects.get().status == ImageStatus.FAILED


def test_optimize_needs_the_image_field_and_a_known_preset(token_client):
    response = token_client.post(OPTIMIZE, {"file": upload("x.jpg", samples.jpeg())})
    assert response.status_code == 400 and "“image”" in response.json()["error"]
    response = token_client.post(
        OPTIMIZE, {"image": upload("x.jpg", samples.jpeg()), "preset": "?"}
    )
    assert response.status_code == 400 and "No such preset" in response.json()["error"]
    assert token_client.get(OPTIMIZE).status_code == 405


def test_optimize_needs_a_token_or_session_and_the_permission(client, operator, preset):
    response = client.post(OPTIMIZE, {"image": upload("x.jpg", samples.jpeg())})
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    _token, raw = api_token_create(user=operator, name="robot")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        OPTIMIZE, {"image": upload("x.jpg", samples.jpeg())}
    )
    assert response.status_code == 403 and "may not upload" in response.json()["error"]
    assert not Batch.objects.exists()


def test_a_session_still_needs_its_csrf_token(image_staff, preset):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(image_staff)
    response = browser.post(OPTIMIZE, {"image": upload("x.jpg", samples.jpeg())})
    assert response.status_code == 403 and response.json()["error"] == "CSRF check failed."
    assert not Batch.objects.exists()


def test_health_answers_json_without_a_worker(token_client, monkeypatch):
    from portal.celery import app

    class NoReplies:
        def active_queues(self):
            return None

    monkeypatch.setattr(app.control, "inspect", lambda timeout: NoReplies())
    monkeypatch.setattr("images.selectors.broker_can_broadcast", lambda: True)
    data = token_client.get(HEALTH).json()
    assert data["workers"] == 0
    assert set(data) >= {"queue_length", "images_queued", "images_working", "last_hour"}
    assert Client().get(HEALTH).status_code == 401


def test_success_rate_and_stats_for_the_health_panel(image_staff, preset):
    from images.services import batch_create, image_claim, image_process

    now = timezone.now()
    assert image_success_rate(since=now - timedelta(hours=1)) is None
    batch = batch_create(
        user=image_staff,
        name="Rates",
        preset=preset,
        files=[upload(f"{n}.jpg", samples.jpeg(seed=n)) for n in range(3)]
        + [upload("t.jpg", samples.truncated_jpeg())],
    )
    for image in batch.images.all():
        image_process(image_id=image.pk, token=image_claim(image_id=image.pk))
    BatchImage.objects.filter(position=0).update(finished_at=now - timedelta(hours=2))
    hour = image_stats(since=now - timedelta(hours=1))
    assert (hour.settled, hour.done, hour.failed) == (3, 2, 1)
    assert hour.success_rate == pytest.approx(2 / 3, abs=1e-4)
    assert hour.seconds_per_image_median > 0 and hour.bytes_after < hour.bytes_before
    assert image_success_rate(since=now - timedelta(hours=3)) == 0.75
    assert client_for(image_staff).get(HEALTH).json()["last_hour"]["failed"] == 1


def test_a_picture_that_only_shrinks_as_a_thumbnail_is_not_answered_with_the_thumbnail(
    token_client,
):
    """A small, heavily compressed JPEG: its full-size variants come out larger and are not
    kept, only the 400 px thumbnail is smaller. The batch says 0 % saved, and the API says
    nothing smaller was made, rather than serving the thumbnail as the optimized picture."""
    source = samples.jpeg(640, 480, quality=30)
    response = token_client.post(
        OPTIMIZE, {"image": upload("small.jpg", source)}, HTTP_ACCEPT="application/json"
    )
    image = BatchImage.objects.get()
    kept = {(v.size, v.kept) for v in image.variants.all()}
    assert (400, True) in kept and not any(keep for size, keep in kept if size > 400)
    assert image.bytes_after == image.bytes == len(source)
    data = response.json()
    assert data["best"] is None and data["best_bytes"] == len(source)
    response = token_client.post(OPTIMIZE, {"image": upload("small.jpg", source)})
    assert response.status_code == 422
    assert response.json()["error"] == "No variant came out smaller than the original."


def test_a_bearer_header_authenticates_by_the_token_alone(image_staff, operator, preset):
    """A session beside a made-up bearer token: the request skips CSRF (the header says it is
    not a browser's), so the session must not be used. Only the token counts."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(image_staff)
    for header in ("Bearer anything", "Bearer opt_" + "x" * 43):
        response = browser.post(
            OPTIMIZE, {"image": upload("x.jpg", samples.jpeg())}, HTTP_AUTHORIZATION=header
        )
        assert response.status_code == 401 and "Invalid or revoked" in response.json()["error"]
    assert not Batch.objects.exists()
    # A real token of someone who may not upload, sent beside image staff's session: refused.
    _token, raw = api_token_create(user=operator, name="robot")
    response = browser.post(
        OPTIMIZE, {"image": upload("x.jpg", samples.jpeg())}, HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 403 and not Batch.objects.exists()
    # On a GET as well; and the session alone, with no header, still works.
    assert browser.get(HEALTH, HTTP_AUTHORIZATION="Bearer nonsense").status_code == 401
    assert browser.get(HEALTH).status_code == 200


def test_health_needs_the_image_permission(image_staff, outsider, operator):
    for user in (outsider, operator):
        assert client_for(user).get(HEALTH).status_code == 403
        _token, raw = api_token_create(user=user, name="probe")
        response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(HEALTH)
        assert response.status_code == 403 and "may not see" in response.json()["error"]
    assert client_for(image_staff).get(HEALTH).status_code == 200
