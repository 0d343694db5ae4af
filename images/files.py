"""Stored image files served through the portal (after the login and permission checks of
the page or API that serves them)."""

import os

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404

from images.models import Variant

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
}


def file_response(path: str, content_type: str, filename: str, download: bool) -> FileResponse:
    try:
        handle = default_storage.open(path, "rb")
    except FileNotFoundError:
        raise Http404("The file is missing from the storage.") from None
    response = FileResponse(
        handle, content_type=content_type, as_attachment=download, filename=filename
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


def variant_filename(variant: Variant) -> str:
    stem = os.path.splitext(variant.image.original_name)[0] or "image"
    return f"{stem}-{variant.size}.{variant.extension}"
