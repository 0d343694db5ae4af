"""Fixtures of the image tests: the default preset (transactional tests flush it with every
other row) and a media folder of each test's own."""

import importlib

import pytest
from django.apps import apps as django_apps

from images.models import Preset


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def preset(db) -> Preset:
    module = importlib.import_module("images.migrations.0002_default_preset")
    module.create_default_preset(django_apps, None)
    return Preset.objects.get(is_default=True)
