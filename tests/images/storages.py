"""A storage that fills up: what the image services meet when a disk is full."""

from django.core.files.storage import FileSystemStorage


class FullDiskStorage(FileSystemStorage):
    """A file-system storage (MEDIA_ROOT) whose ``fail_on_save``-th save raises "disk full"."""

    def __init__(self, *, fail_on_save: int, **kwargs):
        super().__init__(**kwargs)
        self.fail_on_save = fail_on_save
        self.saves = 0

    def _save(self, name, content):
        self.saves += 1
        if self.saves == self.fail_on_save:
            raise OSError(28, "No space left on device")
        return super()._save(name, content)
