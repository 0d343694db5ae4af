"""Batch pages, the upload form, files and the ZIP, for each persona, with their query counts."""

import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from images.models import Batch, ImageStatus, Variant
from images.pipeline import ACCEPTED_FORMATS
from images.services import batch_create, image_claim, image_process
from portal.formatting import human_bytes
from portal.models import AuditEntry
from portal.services.tokens import api_token_create
from tests.conftest import client_for
from tests.images import samples
from tests.images.samples import upload

pytestmark = pytest.mark.django_db


def _process_all(batch: Batch) -> None:
    for image in batch.images.order_by("position"):
        token = image_claim(image_id=image.pk)
        image_process(image_id=image.pk, token=token)


@pytest.fixture
def batch(image_staff, preset) -> Batch:
    return batch_create(
        user=image_staff,
        name="Spring catalogue",
        preset=preset,
        files=[
            upload("beach.jpg", samples.jpeg()),
            upload("broken.jpg", samples.truncated_jpeg()),
            upload("logo.png", samples.png()),
        ],
    )


@pytest.fixture
def finished(batch) -> Batch:
    _process_all(batch)
    batch.refresh_from_db()
    return batch


def test_login_required(client, finished):
    image = finished.images.first()
    for url in [
        reverse("images:batch_list"),
        reverse("images:batch_new"),
        finished.get_absolute_url(),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    # Files take an API token as well as a session: anonymous gets a JSON 401, never the file.
    response = client.get(reverse("images:original_file", args=[image.pk]))
    assert response.status_code == 401 and response.json()["error"]
    assert client.get(f"/media/{image.original_path}").status_code in (302, 404)


@pytest.mark.parametrize("persona", ["operator", "outsider", "manager"])
def test_other_roles_may_not_see_images(request, finished, persona):
    client = client_for(request.getfixturevalue(persona))
    image = finished.images.first()
    variant = Variant.objects.filter(kept=True).first()
    for url in [
        reverse("images:batch_list"),
        reverse("images:batch_new"),
        finished.get_absolute_url(),
        reverse("images:image_compare", args=[finished.pk, image.pk]),
        reverse("images:original_file", args=[image.pk]),
        reverse("images:variant_file", args=[variant.pk]),
        reverse("images:batch_download", args=[finished.pk]),
        reverse("images:batch_delete", args=[finished.pk]),
    ]:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("images:batch_retry", args=[finished.pk])).status_code == 403
    assert 'href="/images/"' not in client.get(reverse("ops:template_list")).content.decode()


def test_nav_link_and_list(image_staff, finished, django_assert_max_num_queries):
    client = client_for(image_staff)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("images:batch_list"))
    html = response.content.decode()
    assert '<a href="/images/" aria-current="page">Images</a>' in html
    assert "Spring catalogue" in html and "2 of 3" in html and "1 failed" in html
    assert "Finished with errors" in html and "Upload a batch" in html


# --- upload form ---------------------------------------------------------------------------------


def test_upload_page_has_labelled_fields_and_its_script(image_staff, preset):
    html = client_for(image_staff).get(reverse("images:batch_new")).content.decode()
    assert '<label for="id_name">Batch name</label>' in html
    assert '<label for="id_files">Images</label>' in html and " multiple " in html
    assert f'<option value="{preset.pk}" selected>Web (default)</option>' in html
    assert 'hx-encoding="multipart/form-data"' in html and "<progress" in html
    assert '<script src="/static/images/upload.js" defer></script>' in html
    assert "<script>" not in html and "style=" not in html and "hx-on" not in html


def test_upload_page_names_every_format_the_pipeline_accepts(image_staff, preset):
    """It said "JPEG or PNG" while GIF, WebP and AVIF were accepted (found uploading a WebP)."""
    html = client_for(image_staff).get(reverse("images:batch_new")).content.decode()
    intro = html[html.index("straight from the camera") :][:200]
    for name in ACCEPTED_FORMATS:
        assert {"WEBP": "WebP"}.get(name, name) in intro


def test_upload_through_htmx_moves_the_browser_to_the_batch(image_staff, preset, htmx):
    files = [upload("a.jpg", samples.jpeg()), upload("b.png", samples.png())]
    response = client_for(image_staff).post(
        reverse("images:batch_new"),
        {"name": "Team photos", "preset": preset.pk, "files": files},
        **htmx,
    )
    batch = Batch.objects.get()
    assert response.status_code == 200 and response["HX-Redirect"] == batch.get_absolute_url()
    assert batch.name == "Team photos" and batch.images_total == 2


def test_upload_without_htmx_redirects(image_staff, preset):
    response = client_for(image_staff).post(
        reverse("images:batch_new"),
        {"name": "Team photos", "preset": preset.pk, "files": [upload("a.jpg", samples.jpeg())]},
    )
    assert (
        response.status_code == 302
        and response["Location"] == Batch.objects.get().get_absolute_url()
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "Choose at least one image."),
        (
            [upload(f"{n}.jpg", samples.jpeg(seed=n)) for n in range(3)],
            "at most 2 images; you chose 3",
        ),
        (
            [upload("notes.jpg", samples.text())],
            "notes.jpg: This is not an image in a supported format",
        ),
        ([upload("big.jpg", samples.jpeg(400, 300))], "big.jpg: the file is"),
    ],
    ids=["no-files", "too-many", "not-an-image", "over-the-limit"],
)
def test_upload_form_errors(image_staff, preset, settings, _media_root, files, message, htmx):
    settings.IMAGE_MAX_FILES_PER_BATCH = 2
    settings.IMAGE_MAX_UPLOAD_BYTES = 20_000
    client = client_for(image_staff)
    data = {"name": "Team photos", "preset": preset.pk, "files": files}
    response = client.post(reverse("images:batch_new"), data, **htmx)
    html = response.content.decode()
    assert response.status_code == 400
    assert html.lstrip().startswith('<form id="upload-form"') and "<!doctype" not in html.lower()
    assert 'role="alert"' in html and message in html
    assert 'value="Team photos"' in html  # what was typed stays
    assert not Batch.objects.exists() and not list(_media_root.rglob("*.*"))
    # Without htmx: the whole page, with the same error.
    for item in files:
        item.seek(0)
    response = client.post(reverse("images:batch_new"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert "<!doctype" in response.content.decode().lower()


def test_upload_form_needs_a_name_and_a_preset(image_staff, preset, htmx):
    response = client_for(image_staff).post(
        reverse("images:batch_new"),
        {"name": "", "preset": 999, "files": [upload("a.jpg", samples.jpeg())]},
        **htmx,
    )
    html = response.content.decode()
    assert response.status_code == 400 and "This field is required." in html
    assert "Select a valid choice" in html and not Batch.objects.exists()


def test_upload_wrong_method(image_staff):
    assert client_for(image_staff).put(reverse("images:batch_new")).status_code == 405


# --- the batch page and its one partial ----------------------------------------------------------


def test_running_batch_page_polls_one_partial(image_staff, batch):
    html = client_for(image_staff).get(batch.get_absolute_url()).content.decode()
    assert f'hx-get="{batch.get_absolute_url()}" hx-trigger="every 2s" hx-swap="outerHTML"' in html
    assert '<progress max="3" value="0"' in html and "0 of 3" in html
    assert html.count('class="image-row is-queued"') == 3
    assert "Download all variants" not in html


def test_partial_shows_progress_and_stops_polling_when_finished(
    image_staff, batch, django_assert_num_queries, htmx
):
    client = client_for(image_staff)
    first = batch.images.get(position=0)
    image_process(image_id=first.pk, token=image_claim(image_id=first.pk))
    response = client.get(batch.get_absolute_url(), **htmx)  # warm the session and permissions
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        html.lstrip().startswith('<section id="batch-status"') and "<!doctype" not in html.lower()
    )
    assert "1 of 3" in html and 'hx-trigger="every 2s"' in html and "Running" in html

    _process_all_remaining(batch)
    with django_assert_num_queries(6):  # the session comes from the cache (portal.sessions)
        response = client.get(batch.get_absolute_url(), **htmx)
    html = response.content.decode()
    assert response.status_code == 286  # htmx stops polling
    assert "hx-trigger" not in html and "3 of 3" in html and "Finished with errors" in html
    assert "The image data is truncated or corrupt" in html
    assert html.count('class="badge ok">Done') == 2
    assert "Retry" not in html  # a corrupt file would fail again: no retry is offered
    assert "Download all variants (ZIP)" in html and "Delete batch" in html
    assert "Saved" in html and "Images/s" in html


def _process_all_remaining(batch):
    for image in batch.images.filter(status=ImageStatus.QUEUED):
        image_process(image_id=image.pk, token=image_claim(image_id=image.pk))


def test_compare_view_shows_original_and_best_variant(
    image_staff, finished, django_assert_max_num_queries
):
    image = finished.images.get(original_name="beach.jpg")
    url = reverse("images:image_compare", args=[finished.pk, image.pk])
    client = client_for(image_staff)
    with django_assert_max_num_queries(8):
        html = client.get(url).content.decode()
    best = min(
        (v for v in image.variants.filter(size=2048, kept=True)), key=lambda variant: variant.bytes
    )
    assert f'src="{reverse("images:original_file", args=[image.pk])}"' in html
    assert f'src="{reverse("images:variant_file", args=[best.pk])}"' in html
    assert 'alt="Original of beach.jpg"' in html
    other = image.variants.get(size=400, format="jpeg")
    html = client.get(f"{url}?variant={other.pk}").content.decode()
    assert (
        f'src="{reverse("images:variant_file", args=[other.pk])}"' in html and "JPEG 400 px" in html
    )
    assert client.get(f"{url}?variant=0").status_code == 404
    other_batch_image = url.replace(f"/batches/{finished.pk}/", f"/batches/{finished.pk + 1}/")
    assert client.get(other_batch_image).status_code == 404


def test_files_are_streamed_after_the_checks(image_staff, finished):
    client = client_for(image_staff)
    image = finished.images.get(original_name="beach.jpg")
    response = client.get(reverse("images:original_file", args=[image.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == samples.jpeg()
    variant = image.variants.get(size=400, format="webp")
    response = client.get(reverse("images:variant_file", args=[variant.pk]) + "?download=1")
    assert response["Content-Type"] == "image/webp"
    assert response["Content-Disposition"] == 'attachment; filename="beach-400.webp"'
    assert len(b"".join(response.streaming_content)) == variant.bytes
    # With an API token instead of a session.
    _token, raw = api_token_create(user=image_staff, name="site build")
    response = client_for_token(raw).get(reverse("images:variant_file", args=[variant.pk]))
    assert response.status_code == 200


def client_for_token(raw):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_zip_of_all_variants_is_streamed(image_staff, finished):
    response = client_for(image_staff).get(reverse("images:batch_download", args=[finished.pk]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="spring-catalogue-{finished.pk}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    kept = Variant.objects.filter(kept=True).select_related("image")
    stems = {v.pk: v.image.original_name.rsplit(".", 1)[0] for v in kept}
    expected = [f"{stems[v.pk]}/{stems[v.pk]}-{v.size}.{v.extension}" for v in kept]
    assert sorted(archive.namelist()) == sorted(expected)
    variant = kept.get(image__original_name="beach.jpg", size=400, format="jpeg")
    with default_storage.open(variant.path) as stored:
        assert archive.read("beach/beach-400.jpg") == stored.read()


def test_retry_through_htmx_restarts_polling(image_staff, finished, sent_tasks, htmx):
    # Its failure was one a retry may fix (the worker ran out of memory).
    finished.images.filter(original_name="broken.jpg").update(
        failure="transient", error="The worker ran out of memory on this image."
    )
    assert (
        "Retry 1 failed image"
        in client_for(image_staff).get(finished.get_absolute_url()).content.decode()
    )
    response = client_for(image_staff).post(
        reverse("images:batch_retry", args=[finished.pk]), **htmx
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="batch-status"')
    assert "1 failed image queued again." in html and 'hx-trigger="every 2s"' in html
    assert finished.images.get(original_name="broken.jpg").status == ImageStatus.QUEUED
    # Asked again while it runs: the refusal is shown in the partial.
    response = client_for(image_staff).post(
        reverse("images:batch_retry", args=[finished.pk]), **htmx
    )
    assert "still being processed" in response.content.decode()


def test_delete_asks_first_then_deletes(image_staff, finished, django_capture_on_commit_callbacks):
    client = client_for(image_staff)
    url = reverse("images:batch_delete", args=[finished.pk])
    html = client.get(url).content.decode()
    assert "Delete “Spring catalogue”?" in html and "cannot be undone" in html
    assert Batch.objects.filter(pk=finished.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("images:batch_list")
    assert not Batch.objects.exists() and not Variant.objects.exists()
    assert AuditEntry.objects.filter(action="images.batch.delete").exists()


def test_delete_of_a_running_batch_is_refused(image_staff, batch):
    response = client_for(image_staff).post(reverse("images:batch_delete", args=[batch.pk]))
    assert response.status_code == 409 and "still being processed" in response.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists()


# Committed for real, so the images' messages are sent as the upload commits and the page says
# "queued" (in a rolled-back test transaction nothing is sent: "saved").
@pytest.mark.django_db(transaction=True)
def test_upload_keeps_the_good_files_and_lists_each_refused_one(image_staff, preset):
    files = [
        upload("beach.jpg", samples.jpeg()),
        upload("notes.jpg", samples.text()),
        upload("logo.png", samples.png()),
    ]
    client = client_for(image_staff)
    response = client.post(
        reverse("images:batch_new"), {"name": "Mixed", "preset": preset.pk, "files": files}
    )
    batch = Batch.objects.get()
    assert response.status_code == 302 and batch.images_total == 2
    assert sorted(batch.images.values_list("original_name", flat=True)) == ["beach.jpg", "logo.png"]
    assert [file["name"] for file in batch.refused] == ["notes.jpg"]
    assert AuditEntry.objects.get(action="images.batch.create").summary.endswith("1 refused")
    html = client.get(batch.get_absolute_url()).content.decode()
    assert "2 images queued. 1 file left out, listed below." in html
    assert "1 file left out of this batch" in html
    assert "<strong>notes.jpg</strong>: This is not an image in a supported format" in html
    # Queued, nothing done yet: "Before" is what was uploaded, not 0 bytes.
    uploaded = sum(batch.images.values_list("bytes", flat=True))
    assert f"<dt>Before</dt><dd>{human_bytes(uploaded)}</dd>" in html
    assert "<dt>After</dt><dd>—</dd>" in html


def test_compare_view_offers_actual_size_a_slider_and_ssim_only_when_measured(
    image_staff, finished
):
    image = finished.images.get(original_name="beach.jpg")
    url = reverse("images:image_compare", args=[finished.pk, image.pk])
    client = client_for(image_staff)
    html = client.get(url).content.decode()
    assert ">Actual size (1:1)</a>" in html and "zoom=1" in html
    assert 'type="range"' in html and "Before / after" in html
    assert '<script src="/static/images/compare.js" defer></script>' in html
    assert ">SSIM</th>" not in html  # the default preset does not measure it
    html = client.get(f"{url}?zoom=1").content.decode()
    assert (
        "is-actual-size" in html and ">Fit to the page</a>" in html and 'type="range"' not in html
    )
    image.variants.filter(kept=True).update(ssim=0.987)
    assert ">SSIM</th>" in client.get(url).content.decode()
