"""The image API, mounted at /api/image/ (the runbooks' curl calls keep working): optimize one
image now, and the image workers' health."""

import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from images.files import file_response, variant_filename
from images.models import BatchSource, ImageStatus, Variant
from images.selectors import best_variant, image_queue_health, image_variants, presets_offered
from images.services import batch_create, image_claim, image_process
from portal.auth import bearer_token, login_or_token_required
from portal.htmx import attempt


def _csrf_unless_token(view):
    """A bearer token is not sent by browsers on their own, so it needs no CSRF token; a
    session still does."""

    @csrf_exempt
    def wrapped(request, *args, **kwargs):
        if not bearer_token(request):
            refused = CsrfViewMiddleware(lambda _request: None).process_view(request, None, (), {})
            if refused is not None:
                return JsonResponse({"error": "CSRF check failed."}, status=403)
        return view(request, *args, **kwargs)

    wrapped.login_required = False
    return wrapped


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _variant_json(request: HttpRequest, variant: Variant, original: int) -> dict:
    return {
        "size": variant.size,
        "format": variant.format,
        "width": variant.width,
        "height": variant.height,
        "bytes": variant.bytes,
        "savings_percent": round(100 * (1 - variant.bytes / original), 1) if original else None,
        "kept": variant.kept,
        "note": variant.note,
        "ssim": variant.ssim,
        "url": request.build_absolute_uri(reverse("images:variant_file", args=[variant.pk]))
        if variant.kept
        else None,
    }


@_csrf_unless_token
@require_POST
@login_or_token_required
def api_optimize(request: HttpRequest) -> HttpResponse:
    """Optimize one image now. Multipart field ``image`` (and optionally ``preset``, a preset's
    name). Answers with the best variant's bytes, or with JSON describing every variant when the
    request sends ``Accept: application/json``."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    upload = request.FILES.get("image")
    if upload is None:
        return _json_error("Send the image as the multipart form field “image”.", 400)
    presets = presets_offered()
    preset = (
        presets.filter(name=request.POST["preset"]).first()
        if request.POST.get("preset")
        else presets.first()
    )
    if preset is None:
        return _json_error("No such preset; leave it out for the default.", 400)
    batch, refusal = attempt(
        lambda: batch_create(
            user=request.user,
            name=f"API: {os.path.basename(upload.name or 'image')}"[:200],
            preset=preset,
            files=[upload],
            source=BatchSource.API,
            enqueue=False,
        )
    )
    if refusal is not None:
        return _json_error(refusal.message, refusal.status)
    image = batch.images.get()
    token = image_claim(image_id=image.pk)
    image = image_process(image_id=image.pk, token=token) if token else image
    batch_url = request.build_absolute_uri(batch.get_absolute_url())
    if image.status != ImageStatus.DONE:
        return JsonResponse({"error": image.error, "batch": batch_url}, status=422)
    variants = image_variants(image=image)
    best = best_variant(variants)
    if wants_json:
        return JsonResponse(
            {
                "batch": batch_url,
                "name": image.original_name,
                "format": image.format,
                "width": image.width,
                "height": image.height,
                "bytes": image.bytes,
                "best_bytes": image.bytes_after,
                "savings_percent": image.savings_percent,
                "seconds": image.seconds,
                "warnings": image.warnings,
                "best": _variant_json(request, best, image.bytes) if best else None,
                "variants": [_variant_json(request, v, image.bytes) for v in variants],
            }
        )
    if best is None:
        return _json_error("No variant came out smaller than the original.", 422)
    best.image = image
    response = file_response(best.path, best.content_type, variant_filename(best), False)
    response["X-Original-Bytes"] = str(image.bytes)
    response["X-Savings-Percent"] = str(image.savings_percent)
    response["Link"] = f'<{batch_url}>; rel="related"'
    return response


@require_GET
@login_or_token_required
def api_health(request: HttpRequest) -> JsonResponse:
    """Workers on the image queue, its length, and the last hour's success rate: for those who
    may see image batches, as every other image page."""
    if not request.user.has_perm("images.view_batch"):
        return _json_error("You may not see image batches.", 403)
    return JsonResponse(image_queue_health())
