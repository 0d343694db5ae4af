from django.apps import AppConfig

from portal.registry import registry


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # ops.hooks imports models: only once the app registry is ready.
        from ops import hooks

        hooks.register(registry)
