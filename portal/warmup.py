"""What a web process would otherwise do on its first requests, done before it takes any:
import every view (the URL resolver imports them as it fills its reverse map) and compile the
project's templates into the cached loader.

gunicorn runs it in the master after loading the application (``preload_app``), so every worker
forked from it, including those started again after ``max_requests``, answers its first request
as fast as its hundredth. It opens no database or cache connection: a connection made before
the fork would be shared by the workers.
"""

import logging
import time
from pathlib import Path

from django.conf import settings
from django.template import TemplateSyntaxError, engines
from django.urls import reverse

logger = logging.getLogger(__name__)


def warm_up() -> dict[str, float]:
    """Fill the URL resolver and compile the templates under ``settings.BASE_DIR/templates``;
    returns how many templates were compiled and the seconds taken."""
    started = time.perf_counter()
    # The first reverse() fills the resolver's maps, importing every view on the way.
    reverse("today")
    root = Path(settings.BASE_DIR) / "templates"
    engine = engines["django"]
    compiled = 0
    for path in sorted(root.rglob("*.html")):
        name = path.relative_to(root).as_posix()
        try:
            engine.get_template(name)
        except TemplateSyntaxError:
            # A broken template fails the request that renders it, with its error, as before.
            logger.exception("template %s does not compile", name)
            continue
        compiled += 1
    return {"templates": compiled, "seconds": round(time.perf_counter() - started, 3)}
