from datetime import time

import pytest


@pytest.fixture
def make_template_at_nine(settings, make_template):
    """For tests that pass explicit moments: the time zone is UTC and checklists are due at
    09:00 unless they say otherwise."""
    settings.TIME_ZONE = "UTC"

    def make(*args, **kwargs):
        kwargs.setdefault("due_time", time(9, 0))
        return make_template(*args, **kwargs)

    return make
