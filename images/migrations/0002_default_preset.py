"""The default preset: 2048, 1024 and 400 px, JPEG and WebP, no AVIF (images.pipeline's)."""

from django.db import migrations

DEFAULT = {
    "name": "Web (default)",
    "description": "JPEG and WebP at 2048, 1024 and 400 px: a full-width photo, a column, a thumbnail.",
    "sizes": "2048, 1024, 400",
    "make_jpeg": True,
    "make_webp": True,
    "make_avif": False,
    "jpeg_quality": 82,
    "webp_quality": 80,
    "webp_method": 4,
    "avif_quality": 60,
    "avif_speed": 6,
    "measure_ssim": False,
    "is_default": True,
    "is_active": True,
}


def create_default_preset(apps, schema_editor):
    Preset = apps.get_model("images", "Preset")
    if not Preset.objects.filter(is_default=True).exists():
        Preset.objects.get_or_create(name=DEFAULT["name"], defaults=DEFAULT)


def remove_default_preset(apps, schema_editor):
    apps.get_model("images", "Preset").objects.filter(
        name=DEFAULT["name"], batches__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("images", "0001_initial")]

    operations = [migrations.RunPython(create_default_preset, remove_default_preset)]
