from django.apps import AppConfig
from django.conf import settings
from PIL import Image

from portal.registry import registry


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Image optimization"

    def ready(self) -> None:
        # images.hooks imports models: only once the app registry is ready.
        from images import hooks

        hooks.register(registry)
        # Pillow refuses images over twice its own limit before our IMAGE_MAX_PIXELS can say
        # why; raise its limit when ours is higher (see images.pipeline).
        ours, pillows = settings.IMAGE_MAX_PIXELS, Image.MAX_IMAGE_PIXELS
        if pillows is not None and ours > 2 * pillows:
            Image.MAX_IMAGE_PIXELS = ours // 2 + 1
