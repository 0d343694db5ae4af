"""Small files for the batch tests: good photos and every kind of bad input, made here."""

import io
import zipfile

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image

from tests.images.png import png_by_hand


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def photo(width: int = 160, height: int = 120, seed: int = 1, mode: str = "RGB") -> Image.Image:
    """Grain over a gradient: compresses like a photo, so variants come out smaller."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    pixels = np.clip(base + rng.integers(-40, 41, (height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def jpeg(width: int = 160, height: int = 120, seed: int = 1, **params) -> bytes:
    params.setdefault("quality", 95)
    return _save(photo(width, height, seed), "JPEG", **params)


def png(width: int = 160, height: int = 120, seed: int = 1) -> bytes:
    return _save(photo(width, height, seed), "PNG")


def truncated_jpeg() -> bytes:
    data = jpeg(seed=7)
    return data[: len(data) // 2]


def bomb_png() -> bytes:
    """30000 x 30000 pixels that take about 110 KB on disk."""
    return png_by_hand(30_000, 30_000, 1, 0, (bytes(3750) for _ in range(30_000)))


def png_16_bit() -> bytes:
    rng = np.random.default_rng(16)
    pixels = np.clip(
        np.array([62000, 32768, 3000]) + rng.integers(-3000, 3001, (48, 64, 3)), 0, 65535
    )
    return png_by_hand(64, 48, 16, 2, [row.astype(">u2").tobytes() for row in pixels])


def png_alpha() -> bytes:
    image = photo(120, 90, seed=3, mode="RGBA")
    image.paste((255, 0, 0, 0), (0, 0, 60, 90))
    return _save(image, "PNG")


def cmyk_jpeg() -> bytes:
    return _save(photo(96, 64, seed=4).convert("CMYK"), "JPEG", quality=95)


def animated_gif() -> bytes:
    frames = [photo(80, 60, seed=seed).convert("P") for seed in (5, 6, 7)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def oriented_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return _save(photo(120, 80, seed=orientation), "JPEG", quality=95, exif=exif)


def corrupt_icc_jpeg() -> bytes:
    return _save(photo(96, 64, seed=8), "JPEG", quality=95, icc_profile=b"garbage!" * 20)


def text() -> bytes:
    return b"Dear team, the photos are attached.\n" * 20


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    content_type = {"png": "image/png", "gif": "image/gif"}.get(
        name.rsplit(".", 1)[-1], "image/jpeg"
    )
    return SimpleUploadedFile(name, data, content_type=content_type)
