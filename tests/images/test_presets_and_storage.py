"""Presets as admin-editable rows, and where media are stored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from images import pipeline
from images.models import Preset
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_default_preset_maps_onto_the_pipeline(preset, settings):
    assert preset.to_pipeline() == pipeline.Preset(
        name="Web (default)",
        sizes=(2048, 1024, 400),
        formats=("jpeg", "webp"),
        avif=False,
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_bytes=settings.IMAGE_MAX_UPLOAD_BYTES,
    )


@pytest.mark.parametrize(
    ("sizes", "error"),
    [
        ("", "at least one size"),
        ("2048, big", "whole numbers"),
        ("8", "between 16 and"),
        ("1,2,3,4,5,6,7,8,9", "At most 8"),
    ],
)
def test_preset_sizes_are_validated(sizes, error):
    with pytest.raises(ValidationError, match=error):
        Preset(name="x", sizes=sizes).clean()


def test_preset_needs_jpeg_or_webp_and_normalizes_sizes():
    preset = Preset(name="x", sizes="400 1200,800", make_jpeg=False, make_webp=False)
    with pytest.raises(ValidationError, match="Choose JPEG or WebP"):
        preset.clean()
    preset.make_webp = True
    preset.clean()
    assert preset.sizes == "1200, 800, 400"
    assert preset.to_pipeline().formats == ("webp",)


@pytest.mark.django_db
def test_admin_edits_presets_and_the_audit_log_says_so(make_user, preset):
    from portal import roles
    from portal.models import AuditEntry

    admin = make_user("ada", roles.ADMIN, is_staff=True)
    client = client_for(admin)
    url = reverse("admin:images_preset_change", args=[preset.pk])
    assert client.get(url).status_code == 200
    data = {
        "name": "Web (default)", "description": "", "is_default": "on", "is_active": "on",
        "sizes": "1600, 800", "make_jpeg": "on", "make_webp": "on", "jpeg_quality": 80,
        "webp_quality": 78, "webp_method": 4,
        "webp_method_smaller": 2, "avif_quality": 60, "avif_speed": 6,
    }  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 302
    preset.refresh_from_db()
    assert preset.to_pipeline().sizes == (1600, 800) and preset.jpeg_quality == 80
    assert AuditEntry.objects.filter(action="admin.preset.change", actor=admin).exists()


def _settings_in_subprocess(env: dict) -> dict:
    code = (
        "import django, json; django.setup();"
        "from django.conf import settings;"
        "from django.core.files.storage import storages; s = storages['default'];"
        "print(json.dumps({'backend': type(s).__module__ + '.' + type(s).__name__,"
        "'bucket': getattr(s, 'bucket_name', None), 'endpoint': getattr(s, 'endpoint_url', None),"
        "'acl': getattr(s, 'default_acl', None), 'key': getattr(s, 'secret_key', None)}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_S3_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "portal.settings", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_media_on_the_file_system_by_default():
    assert _settings_in_subprocess({})["backend"] == (
        "django.core.files.storage.filesystem.FileSystemStorage"
    )


def test_media_in_an_s3_compatible_bucket_when_configured(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    found = _settings_in_subprocess(
        {
            "MEDIA_S3_BUCKET": "ops-media",
            "MEDIA_S3_ENDPOINT_URL": "https://ams3.digitaloceanspaces.com",
            "MEDIA_S3_ACCESS_KEY_ID": "DO00EXAMPLE",
            "MEDIA_S3_SECRET_ACCESS_KEY_FILE": str(secret),
        }
    )
    assert found == {
        "backend": "storages.backends.s3.S3Storage",
        "bucket": "ops-media",
        "endpoint": "https://ams3.digitaloceanspaces.com",
        "acl": "private",
        "key": "s3cr3t",
    }
