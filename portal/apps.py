from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # Registering on import: the system checks, the login audit's signal receivers, and
        # the Celery app, so that shared tasks sent from web processes use its configuration.
        # (Not in portal/__init__.py: the image pipeline imports portal.formatting and must
        # stay free of Django and Celery.)
        from portal import accounts, celery, checks  # noqa: F401
