from datetime import time

import pytest

from tests.local_servers import SMTPServer, serving


@pytest.fixture
def smtp_server(settings):
    """A local SMTP server the portal's mail goes to (Django's SMTP backend, no fakes)."""
    server = SMTPServer()
    stop = serving(server)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_TIMEOUT = 5
    yield server
    stop()


@pytest.fixture
def make_template_at_nine(settings, make_template):
    """For tests that pass explicit moments: the time zone is UTC and checklists are due at
    09:00 unless they say otherwise."""
    settings.TIME_ZONE = "UTC"

    def make(*args, **kwargs):
        kwargs.setdefault("due_time", time(9, 0))
        return make_template(*args, **kwargs)

    return make
