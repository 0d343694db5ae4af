from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_shared_secret_key(app_configs, **kwargs):
    """A generated key lives on one machine; several machines must share SECRET_KEY."""
    if settings.DATABASE_URL and not settings.SECRET_KEY_FROM_ENV:
        return [
            checks.Warning(
                "SECRET_KEY is not set: each machine generates its own under var/, so sessions "
                "and CSRF tokens from one machine fail on another.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to the same value on every machine.",
                id="portal.W001",
            )
        ]
    return []
