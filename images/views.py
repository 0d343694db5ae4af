"""Image batch pages and the files behind them (login-checked, never public); the JSON API is
images.api."""

import os
import re
import zipfile
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from images.files import file_response, variant_filename
from images.forms import BatchUploadForm
from images.models import PENDING, Batch, BatchImage, Variant
from images.selectors import (
    batch_images,
    batch_totals,
    batch_variants,
    batches_recent,
    best_variant,
    image_variants,
)
from images.services import (
    batch_create,
    batch_delete,
    batch_retry_failed,
)
from portal.auth import login_or_token_required
from portal.errors import ActionRefused
from portal.formatting import human_bytes
from portal.htmx import attempt, back_to, wants_fragment

LIST_PAGE = "images/batch_list.html"
NEW_PAGE = "images/batch_new.html"
DETAIL_PAGE = "images/batch_detail.html"
BATCHES_PER_PAGE = 25
ZIP_CHUNK = 256 * 1024

view_batches = permission_required("images.view_batch", raise_exception=True)


@require_GET
@view_batches
def batch_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(batches_recent(), BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        LIST_PAGE,
        {"page": page, "can_upload": request.user.has_perm("images.upload_batch")},
    )


def _upload_context(form: BatchUploadForm) -> dict:
    return {
        "form": form,
        "max_files": settings.IMAGE_MAX_FILES_PER_BATCH,
        "max_bytes": settings.IMAGE_MAX_UPLOAD_BYTES,
        "max_bytes_label": human_bytes(settings.IMAGE_MAX_UPLOAD_BYTES),
    }


@require_http_methods(["GET", "POST"])
@permission_required("images.upload_batch", raise_exception=True)
def batch_new(request: HttpRequest) -> HttpResponse:
    """The upload page. Through htmx (the page's script shows the upload's progress) a refused
    upload re-renders the form with its errors, and a batch made moves the browser to it."""
    form = BatchUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_create(
                user=request.user,
                name=form.cleaned_data["name"],
                preset=form.cleaned_data["preset"],
                files=form.cleaned_data["files"],
                keep_usable=True,
            )
        except ActionRefused as refused:
            form.add_error(None, refused.message)
        else:
            count, left_out = batch.images_total, len(batch.refused)
            images = f"“{batch}”: {count} image{pluralize(count)}"
            left = (
                f" {left_out} file{pluralize(left_out)} left out, listed below." if left_out else ""
            )
            if batch_totals(batch=batch).unsent:
                # Saved, but the broker did not answer: the reclaim sends the work later, and
                # the batch page says so while it waits.
                messages.warning(request, f"{images} saved.{left}")
            else:
                messages.success(request, f"{images} queued.{left}")
            if wants_fragment(request):
                return HttpResponseClientRedirect(batch.get_absolute_url())
            return redirect(batch)
    status = 400 if request.method == "POST" else 200
    context = _upload_context(form)
    if wants_fragment(request):
        return render(request, f"{NEW_PAGE}#upload-form", context, status=status)
    return render(request, NEW_PAGE, context, status=status)


def _get_batch_for_user(request: HttpRequest, pk: int) -> Batch:
    if not request.user.has_perm("images.view_batch"):
        raise PermissionDenied("You may not see image batches.")
    return get_object_or_404(Batch.objects.select_related("preset", "created_by"), pk=pk)


def _batch_context(request: HttpRequest, batch: Batch, **extra) -> dict:
    images = batch_images(batch=batch)
    return {
        "batch": batch,
        "totals": batch_totals(batch=batch),
        "images": images,
        # AVIF comes later, as lower-priority work: the page keeps watching until it is in.
        "avif_pending": any(image.avif_status in PENDING for image in images),
        "poll_seconds": settings.IMAGE_POLL_SECONDS,
        "can_upload": request.user.has_perm("images.upload_batch"),
        "can_delete": request.user.has_perm("images.delete_batch"),
        **extra,
    }


def _batch_status(request: HttpRequest, batch: Batch, **extra) -> HttpResponse:
    """The one partial that shows a batch's progress, totals and rows. Polling stops (286)
    once the batch has finished."""
    context = _batch_context(request, batch, **extra)
    response = render(request, f"{DETAIL_PAGE}#batch-status", context)
    if batch.is_finished and not context["avif_pending"]:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    if wants_fragment(request):
        return _batch_status(request, batch)
    return render(request, DETAIL_PAGE, _batch_context(request, batch))


@require_POST
def batch_retry(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    count, refusal = attempt(lambda: batch_retry_failed(batch=batch, user=request.user))
    batch.refresh_from_db()
    notice = "" if refusal else f"{count} failed image{'s' if count != 1 else ''} queued again."
    if not wants_fragment(request):
        return back_to(request, batch, refusal, done=notice)
    if refusal is not None:
        return _batch_status(request, batch, error=refusal.message)
    return _batch_status(request, batch, notice=notice)


@require_http_methods(["GET", "POST"])
def batch_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the batch and its files."""
    batch = _get_batch_for_user(request, pk)
    if not request.user.has_perm("images.delete_batch"):
        raise PermissionDenied("You may not delete image batches.")
    error = ""
    if request.method == "POST":
        try:
            batch_delete(batch=batch, user=request.user)
        except ActionRefused as refused:
            error = refused.message
        else:
            messages.success(request, f"Deleted “{batch}” and its files.")
            return redirect("images:batch_list")
    return render(
        request,
        "images/batch_confirm_delete.html",
        {"batch": batch, "totals": batch_totals(batch=batch), "error": error},
        status=409 if error else 200,
    )


def _get_image_for_user(request: HttpRequest, pk: int, image_pk: int) -> BatchImage:
    batch = _get_batch_for_user(request, pk)
    image = get_object_or_404(BatchImage, pk=image_pk, batch=batch)
    image.batch = batch
    return image


@require_GET
def image_compare(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """The original and one variant side by side (the best one unless another is chosen)."""
    image = _get_image_for_user(request, pk, image_pk)
    variants = image_variants(image=image)
    chosen = best_variant(variants)
    if wanted := request.GET.get("variant", ""):
        chosen = next((v for v in variants if str(v.pk) == wanted and v.kept), None)
        if chosen is None:
            raise Http404("No such variant of this image.")
    return render(
        request,
        "images/image_compare.html",
        {"batch": image.batch, "image": image, "variants": variants, "chosen": chosen},
    )


# --- files: streamed through here, after the login and permission checks -----------------------


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perm("images.view_batch"):
        raise PermissionDenied("You may not see image batches.")


_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
}


@require_GET
@login_or_token_required
def original_file(request: HttpRequest, image_pk: int) -> FileResponse:
    _require_view(request)
    image = get_object_or_404(BatchImage, pk=image_pk)
    return file_response(
        image.original_path,
        _CONTENT_TYPES.get(image.format, "application/octet-stream"),
        image.original_name,
        bool(request.GET.get("download")),
    )


@require_GET
@login_or_token_required
def variant_file(request: HttpRequest, variant_pk: int) -> FileResponse:
    _require_view(request)
    variant = get_object_or_404(Variant.objects.select_related("image"), pk=variant_pk, kept=True)
    return file_response(
        variant.path,
        variant.content_type,
        variant_filename(variant),
        bool(request.GET.get("download")),
    )


class _ZipSink:
    """A write-only file for zipfile: it keeps what was written until the generator takes it.
    Not seekable, so zipfile writes data descriptors and never goes back."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _zip_names(variants: list[Variant]) -> list[str]:
    """folder per image, named after its file; two images of the same name get their place."""
    stems: dict[int, str] = {}
    taken: set[str] = set()
    for variant in variants:
        image = variant.image
        if image.pk not in stems:
            stem = re.sub(r"[^\w.-]+", "_", os.path.splitext(image.original_name)[0]) or "image"
            if stem in taken:
                stem = f"{stem}-{image.position + 1}"
            taken.add(stem)
            stems[image.pk] = stem
    return [f"{stems[v.image.pk]}/{stems[v.image.pk]}-{v.size}.{v.extension}" for v in variants]


def _zip_stream(variants: list[Variant]) -> Iterator[bytes]:
    sink = _ZipSink()
    # Stored, not deflated: JPEG, WebP and AVIF are compressed already.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for variant, name in zip(variants, _zip_names(variants), strict=True):
            info = zipfile.ZipInfo(name, date_time=timezone.localtime().timetuple()[:6])
            with (
                default_storage.open(variant.path, "rb") as source,
                archive.open(info, "w", force_zip64=variant.bytes > 2**31) as entry,
            ):
                while chunk := source.read(ZIP_CHUNK):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


@require_GET
def batch_download(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Every kept variant of the batch in one ZIP, streamed as it is written."""
    batch = _get_batch_for_user(request, pk)
    variants = list(batch_variants(batch=batch))
    if not variants:
        raise Http404("This batch has no variants to download yet.")
    response = StreamingHttpResponse(_zip_stream(variants), content_type="application/zip")
    filename = f"{slugify(batch.name) or 'batch'}-{batch.pk}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
