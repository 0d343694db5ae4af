"""gunicorn warms the application in its master before forking workers (gunicorn.conf.py)."""

import runpy
from pathlib import Path

from django.conf import settings

from portal.warmup import warm_up


def test_warm_up_compiles_every_template_without_touching_the_database():
    # No django_db mark: any query, or a connection opened before the fork, would fail here.
    templates = sorted((Path(settings.BASE_DIR) / "templates").rglob("*.html"))
    assert warm_up()["templates"] == len(templates) > 50


def test_gunicorn_preloads_and_warms():
    config = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))
    assert config["preload_app"] is True and callable(config["when_ready"])
    assert config["keepalive"] > 30  # longer than any poll interval
