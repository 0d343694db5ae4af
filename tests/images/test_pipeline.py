"""The image pipeline, as an uploader would notice it: sizes, colours, corners, metadata, refusals.

Every image is made here with Pillow (and numpy for a natural-looking texture), small ones.
Plain pytest, no Django in this module. The suite's tests/conftest.py imports Django, so to run
this file alone without it: ``python -m pytest tests/images/test_pipeline.py -p no:django
--noconftest`` (under the project's usual ``pytest`` it runs as it is, too).
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageDraw, ImageFile, JpegImagePlugin

from images import pipeline
from images.pipeline import ImageRejected, Preset, optimize, optimize_avif, probe
from tests.images.png import png_by_hand

FAST = Preset()  # no SSIM: the default

# --- making test images ---------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _natural(width: int, height: int, seed: int = 1) -> Image.Image:
    """A photo-like image: a 1/f^1.6 texture (as in natural scenes) with a few hard edges."""
    return _natural_cached(width, height, seed).copy()


@functools.cache
def _natural_cached(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.rfftfreq(width)[None, :], np.fft.fftfreq(height)[:, None])
    f[0, 0] = 1
    planes = []
    for _ in range(3):
        spectrum = f**-1.6 * np.exp(2j * np.pi * rng.random(f.shape))
        spectrum[0, 0] = 0
        planes.append(np.fft.irfft2(spectrum, s=(height, width)))
    lum, p1, p2 = planes
    rgb = np.stack([lum + 0.3 * p1, lum + 0.3 * p2, lum - 0.2 * p1], axis=-1)
    rgb = (rgb - rgb.mean()) / rgb.std() * 45 + 128
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.1, height * 0.2, width * 0.35, height * 0.6), fill=(200, 60, 40))
    draw.rectangle((width * 0.6, height * 0.5, width * 0.9, height * 0.8), fill=(30, 70, 150))
    draw.line((0, height - 1, width - 1, 0), fill=(240, 240, 220), width=3)
    return image


def _noisy(size: tuple[int, int], colour: tuple[int, ...], amplitude: int = 24) -> Image.Image:
    """A flat colour with grain, so that it does not compress to nothing (the outputs must not
    be larger than the source, or they are not kept); colours are checked as region means."""
    rng = np.random.default_rng(len(colour) * 1000 + sum(colour))
    shape = (size[1], size[0], len(colour))
    grain = rng.integers(-amplitude, amplitude + 1, shape)
    plane = np.clip(np.array(colour) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(plane, mode={3: "RGB", 4: "CMYK"}[len(colour)])


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """A minimal ICC v2 profile: header, tag table, tag data (4-byte aligned)."""
    desc = b"test profile"
    tags = {
        b"desc": b"desc\0\0\0\0"
        + struct.pack(">I", len(desc) + 1)
        + desc
        + b"\0"
        + bytes(4 + 4 + 2 + 1 + 67),
        b"wtpt": _xyz(0.9642, 1.0, 0.8249),
        **tags,
    }
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags.items():
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + bytes((2, 0x10, 0, 0))
        + device_class
        + space
        + pcs
        + bytes(12)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8 + 4)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + bytes(4 + 16 + 28)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# sRGB's primaries adapted to D50, the ICC connection space.
_SRGB_RED, _SRGB_GREEN, _SRGB_BLUE = (
    (0.4360747, 0.2225045, 0.0139322),
    (0.3850649, 0.7168786, 0.0971045),
    (0.1430804, 0.0606169, 0.7141733),
)


def _swapped_rgb_icc() -> bytes:
    """An RGB profile whose red and blue primaries are sRGB's blue and red."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233)  # gamma 2.2
    return _icc(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"rXYZ": _xyz(*_SRGB_BLUE),
            b"gXYZ": _xyz(*_SRGB_GREEN),
            b"bXYZ": _xyz(*_SRGB_RED),
            b"rTRC": curve,
            b"gTRC": curve,
            b"bTRC": curve,
        },
    )


def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = [
        sum(p[i] * c for p, c in zip((_SRGB_RED, _SRGB_GREEN, _SRGB_BLUE), linear, strict=True))
        for i in range(3)
    ]
    f = [
        (v / w) ** (1 / 3) if v / w > 0.008856 else 7.787 * v / w + 16 / 116
        for v, w in zip(xyz, (0.9642, 1.0, 0.8249), strict=True)
    ]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _odd_cmyk_icc() -> bytes:
    """A CMYK profile that prints cyan ink as yellow (and yellow as cyan): proves it is used."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = ((1 - y) * (1 - k), (1 - m) * (1 - k), (1 - c) * (1 - k))
                    lightness, a, b = _lab(rgb)
                    clut += bytes((round(lightness * 255 / 100), round(a) + 128, round(b) + 128))
    identity = b"".join(_s15(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    ramp = bytes(range(256))
    lut = b"mft1\0\0\0\0" + bytes((4, 3, 2, 0)) + identity + ramp * 4 + clut + ramp * 3
    return _icc(b"prtr", b"CMYK", b"Lab ", {b"A2B0": lut})


def _pixel(data: bytes, xy: tuple[int, int], radius: int = 3) -> tuple[int, ...]:
    """The mean colour around xy in an encoded image."""
    x, y = xy
    with Image.open(io.BytesIO(data)) as image:
        region = np.asarray(image.crop((x - radius, y - radius, x + radius + 1, y + radius + 1)))
    flat = region.reshape(region.shape[0] * region.shape[1], -1)  # L has no channel axis
    return tuple(round(v) for v in flat.mean(axis=0))


def _near(actual, expected, tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def _variant(result, size: int, fmt: str):
    return next(v for v in result.variants if v.size == size and v.format == fmt)


@pytest.fixture(scope="module")
def natural_jpeg() -> bytes:
    return _save(_natural(640, 480), "JPEG", quality=92)


# --- refusals ---------------------------------------------------------------------------------


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"Dear team, the photos are attached.\n" * 20, "not an image"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "not an image"),
        (_zip(), "not an image"),
    ],
    ids=["zero-byte", "text", "pdf", "zip"],
)
def test_not_an_image_is_refused_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason) as refused:
        optimize(data)
    assert isinstance(refused.value, ValueError)
    assert reason in refused.value.reason


def test_truncated_jpeg_fails_clearly(natural_jpeg):
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        optimize(natural_jpeg[: len(natural_jpeg) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_over_the_byte_limit_is_refused_before_reading(natural_jpeg, monkeypatch):
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("opened"))
    assert len(natural_jpeg) > 50_000
    with pytest.raises(ImageRejected, match=r"KB; the limit is 48\.8 KB\.$"):
        optimize(natural_jpeg, Preset(max_bytes=50_000))


def test_decompression_bomb_png_is_refused_from_its_header(monkeypatch):
    # 30000 x 30000 one-bit pixels: about 110 KB on disk, 900 MB once decoded.
    bomb = png_by_hand(30_000, 30_000, 1, 0, (bytes(3750) for _ in range(30_000)))
    assert len(bomb) < 200_000
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageRejected, match="decompression bomb"):
        optimize(bomb)
    with pytest.raises(ImageRejected, match="decompression bomb"):
        probe(bomb)


def test_our_pixel_limit_applies_below_pillows(monkeypatch):
    # 11000 x 11000 = 121 MP: over our default 120 MP, under Pillow's own error threshold.
    forged = png_by_hand(11_000, 11_000, 1, 0, [b""])
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageRejected, match=r"\(121 megapixels\); the limit is 120 megapixels"):
        optimize(forged)
    small = _save(Image.new("RGB", (640, 480)), "PNG")
    with pytest.raises(ImageRejected, match=r"limit is 0\.1 megapixels"):
        probe(small, Preset(max_pixels=100_000))


# --- sizes, cascade, one decode ----------------------------------------------------------------


def test_small_image_is_never_enlarged(natural_jpeg):
    result = optimize(natural_jpeg, FAST)
    assert (result.width, result.height) == (640, 480)
    assert [(v.size, v.format) for v in result.variants] == [
        (2048, "jpeg"),
        (2048, "webp"),
        (1024, "jpeg"),
        (1024, "webp"),
        (400, "jpeg"),
        (400, "webp"),
    ]
    for variant in result.variants:
        assert variant.width <= 640 and variant.height <= 480
        assert variant.ssim is None  # not measured unless the preset asks
    assert (_variant(result, 2048, "jpeg").width, _variant(result, 1024, "webp").height) == (
        640,
        480,
    )
    assert "same pixels as the 2048 px variant" in _variant(result, 1024, "jpeg").note
    assert (_variant(result, 400, "webp").width, _variant(result, 400, "webp").height) == (400, 300)


def test_cascade_decodes_once_and_resizes_each_variant_from_the_previous(monkeypatch):
    source = _save(_natural(1600, 1200), "JPEG", quality=90)
    opened, resized = [], []
    real_open, real_resize = Image.open, Image.Image.resize

    def counting_open(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    def recording_resize(self, size, *args, **kwargs):
        resized.append((self.size, tuple(size)))
        return real_resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    monkeypatch.setattr(Image.Image, "resize", recording_resize)
    result = optimize(source, Preset(sizes=(600, 300, 120), measure_ssim=False))
    assert len(opened) == 1
    # DCT scaling gave 800 x 600 (1/2), the smallest that still covers 600 px.
    assert (result.decoded_width, result.decoded_height) == (800, 600)
    # The first resize in its two passes (horizontal, then vertical: see _resize_releasing).
    assert resized == [
        ((800, 600), (600, 600)),
        ((600, 600), (600, 450)),
        ((600, 450), (300, 225)),
        ((300, 225), (120, 90)),
    ]


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_large_images_are_resized_in_one_pass_as_pillow_does(mode):
    source = _natural(600, 450).resize((2400, 1800), Image.Resampling.BICUBIC).convert(mode)
    if mode == "RGBA":
        source.putalpha(Image.linear_gradient("L").resize(source.size))
    for size in [(1024, 768), (400, 300)]:  # the second one reduce()s 2x first
        expected = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        resized = pipeline._resize(source, size)
        assert resized.mode == mode and resized.tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_first_resize_frees_the_source_between_passes_with_the_same_pixels(mode):
    source = _natural(600, 450).resize((2400, 1800), Image.Resampling.BICUBIC).convert(mode)
    # Two passes (1.9x: no reduce), a reduce() first (6x), one axis unchanged (one pass).
    for size in [(1260, 945), (400, 300), (2400, 900)]:
        expected = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        holder = [source.copy()]
        resized = pipeline._resize_releasing(holder, size)
        assert holder == []  # it took the only reference, so the source can be freed early
        assert resized.mode == mode and resized.size == size
        assert resized.tobytes() == expected.tobytes()


def _without_draft(monkeypatch) -> None:
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda self, mode, size: None)


@pytest.mark.parametrize("orientation", [1, 6])
def test_dct_scaled_decode_scores_as_a_full_decode_does(monkeypatch, orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    source = _save(_natural(2000, 1500), "JPEG", quality=92, exif=exif)
    preset = Preset(sizes=(900, 450, 200), measure_ssim=True)
    scaled = optimize(source, preset)
    assert (scaled.decoded_width, scaled.decoded_height) == (1000, 750)  # 1/2: covers 900
    _without_draft(monkeypatch)
    full = optimize(source, preset)
    assert (full.decoded_width, full.decoded_height) == (2000, 1500)
    # Both scored against the same reference (the full decode resized straight to the size).
    for a, b in zip(scaled.variants, full.variants, strict=True):
        assert (a.size, a.format, a.width, a.height) == (b.size, b.format, b.width, b.height)
        assert a.ssim is not None and b.ssim is not None
        assert a.ssim >= b.ssim - 0.005, (a.size, a.format, a.ssim, b.ssim)
        # Not a blur that the encoders profit from: the bytes are within 5 %.
        assert abs(a.bytes - b.bytes) <= 0.05 * b.bytes, (a.size, a.format, a.bytes, b.bytes)


@pytest.mark.parametrize(
    ("width", "height", "orientation"),
    [(4001, 3001, 1), (4001, 3001, 8), (2047, 1023, 1), (1999, 1333, 6), (3000, 17, 1)],
)
def test_variant_sizes_are_exactly_the_preset_boxes_whatever_the_decode_scale(
    width, height, orientation
):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    source = _save(Image.new("RGB", (width, height), (90, 120, 150)), "JPEG", exif=exif)
    shown = (height, width) if orientation >= 5 else (width, height)
    result = optimize(source, Preset(sizes=(1000, 500, 64), formats=("jpeg",)))
    for variant in result.variants:
        scale = min(1.0, variant.size / max(shown))
        expected = (max(1, round(shown[0] * scale)), max(1, round(shown[1] * scale)))
        assert (variant.width, variant.height) == expected, (variant.size, result.decoded_width)
        with Image.open(io.BytesIO(variant.data)) as written:
            assert written.size == expected


def test_jpeg_uses_draft_with_the_box_swapped_for_a_sideways_photo(monkeypatch):
    stored = _natural(1600, 800)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: displayed 800 wide, 1600 tall
    source = _save(stored, "JPEG", quality=90, exif=exif)
    drafts = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    result = optimize(source, Preset(sizes=(400,), formats=("jpeg",), measure_ssim=False))
    # Displayed target 200 x 400 is 400 x 200 in the stored orientation: decoded at 1/4.
    assert drafts == [(400, 200)]
    assert (result.decoded_width, result.decoded_height) == (400, 200)
    assert (result.width, result.height) == (800, 1600)
    variant = result.variants[0]
    assert (variant.width, variant.height) == (200, 400)


def test_probe_reads_the_header_only(monkeypatch):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    source = _save(_natural(320, 200), "JPEG", exif=exif)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    info = probe(source)
    assert (info.format, info.width, info.height, info.orientation) == ("JPEG", 200, 320, 8)
    assert info.bytes == len(source)


# --- orientation ----------------------------------------------------------------------------

# Where the stored top-left (red) and top-right (green) corners are seen, per EXIF orientation.
_CORNERS = {
    1: ("TL", "TR"),
    2: ("TR", "TL"),
    3: ("BR", "BL"),
    4: ("BL", "BR"),
    5: ("TL", "BL"),
    6: ("TR", "BR"),
    7: ("BR", "TR"),
    8: ("BL", "TL"),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_ends_upright(orientation):
    stored = _natural(160, 120)
    stored.paste((255, 0, 0), (0, 0, 40, 30))
    stored.paste((0, 255, 0), (120, 0, 160, 30))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    source = _save(stored, "JPEG", quality=95, exif=exif)

    result = optimize(source, Preset(sizes=(100,), formats=("jpeg",), measure_ssim=True))

    variant = result.variants[0]
    expected = (75, 100) if orientation >= 5 else (100, 75)
    assert (variant.width, variant.height) == expected
    w, h = expected
    corners = {"TL": (4, 4), "TR": (w - 5, 4), "BL": (4, h - 5), "BR": (w - 5, h - 5)}
    red_at, green_at = _CORNERS[orientation]
    assert _near(_pixel(variant.data, corners[red_at], 2), (255, 0, 0), 40)
    assert _near(_pixel(variant.data, corners[green_at], 2), (0, 255, 0), 40)
    with Image.open(io.BytesIO(variant.data)) as output:
        assert ExifTags.Base.Orientation not in output.getexif()
    # The reference is turned the same way, or the score would collapse.
    assert variant.ssim is not None and variant.ssim > 0.9


# --- colour -----------------------------------------------------------------------------------


def test_alpha_is_flattened_onto_white_in_jpeg_and_kept_in_webp():
    source = _noisy((320, 240), (20, 20, 230)).convert("RGBA")
    source.putalpha(Image.new("L", (320, 240), 255))
    source.paste((255, 0, 0, 0), (0, 0, 160, 240))  # invisible red on the left
    result = optimize(_save(source, "PNG"), FAST)
    jpeg, webp = _variant(result, 400, "jpeg"), _variant(result, 400, "webp")
    assert _near(_pixel(jpeg.data, (40, 120)), (255, 255, 255), 3)
    assert _near(_pixel(jpeg.data, (280, 120)), (20, 20, 230), 8)
    with Image.open(io.BytesIO(webp.data)) as decoded:
        assert decoded.mode == "RGBA"
    assert _pixel(webp.data, (40, 120))[3] == 0
    assert _near(_pixel(webp.data, (280, 120)), (20, 20, 230, 255), 8)


def test_outputs_carry_no_icc_profile_and_keep_only_the_copyright(natural_jpeg):
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Copyright] = "(c) 2026 Example Ops"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 1.0)
    source = _save(
        _natural(640, 480),
        "JPEG",
        quality=95,
        exif=exif,
        comment=b"home address",
        xmp=b"<x:xmpmeta/>",
    )
    with Image.open(io.BytesIO(source)) as original:
        assert ExifTags.IFD.GPSInfo in original.getexif()
    result = optimize(source, FAST)
    for variant in result.variants:
        with Image.open(io.BytesIO(variant.data)) as output:
            assert "icc_profile" not in output.info  # sRGB: what a browser assumes untagged
            kept = output.getexif()
            assert kept.get(ExifTags.Base.Copyright) == "(c) 2026 Example Ops"
            assert ExifTags.IFD.GPSInfo not in kept
            assert ExifTags.Base.Make not in kept
            assert not {"comment", "xmp", "XML:com.adobe.xmp"} & set(output.info)


def test_a_display_p3_photo_is_converted_and_written_untagged():
    source = _save(_noisy((64, 48), (230, 20, 20)), "PNG", icc_profile=_swapped_rgb_icc())
    result = optimize(source, FAST)
    for variant in result.variants:
        with Image.open(io.BytesIO(variant.data)) as output:
            assert "icc_profile" not in output.info
    red, green, blue = _pixel(_variant(result, 400, "jpeg").data, (32, 24))
    assert blue > 180 and red < 60 and green < 60  # converted, not merely untagged


def test_grey_sources_are_written_as_grey():
    grey = _natural(640, 480).convert("L")
    for source in (_save(grey, "JPEG", quality=92), _save(grey, "PNG")):
        result = optimize(source, FAST)
        for variant in result.variants:
            with Image.open(io.BytesIO(variant.data)) as output:
                if variant.format == "jpeg":
                    assert output.mode == "L"  # one channel, not three equal ones
                else:  # WebP has no grey mode: its channels stay equal
                    red, green, blue = output.convert("RGB").split()
                    assert red.getextrema() == green.getextrema() == blue.getextrema()
        larger = optimize(source, Preset(sizes=(400,), formats=("jpeg",)))
        colour = optimize(
            _save(grey.convert("RGB"), "PNG"), Preset(sizes=(400,), formats=("jpeg",))
        )
        assert larger.variants[0].bytes < colour.variants[0].bytes


def test_grey_with_alpha_is_flattened_to_grey_jpeg_and_kept_in_webp():
    source = Image.new("LA", (320, 240), (40, 255))
    source.paste((40, 0), (0, 0, 160, 240))  # invisible on the left
    result = optimize(_save(source, "PNG"), Preset(sizes=(320,)))
    jpeg, webp = _variant(result, 320, "jpeg"), _variant(result, 320, "webp")
    with Image.open(io.BytesIO(jpeg.data)) as decoded:
        assert decoded.mode == "L"
    assert _near(_pixel(jpeg.data, (40, 120)), (255,), 6)  # white where it was invisible
    assert _near(_pixel(jpeg.data, (280, 120)), (40,), 6)
    assert _pixel(webp.data, (40, 120))[3] == 0


def test_plain_jpeg_optimization_does_not_import_numpy(tmp_path, natural_jpeg):
    """numpy costs 25 MB resident in every worker; only 16-bit input and SSIM need it."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(natural_jpeg)
    script = (
        "import sys\n"
        "from images import pipeline\n"
        f"result = pipeline.optimize(open({str(path)!r}, 'rb').read())\n"
        "assert len(result.variants) == 6, result\n"
        "print('numpy' in sys.modules)\n"
    )
    root = Path(pipeline.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_16_bit_grey_is_scaled_to_8_bits_exactly():
    values = np.arange(65536, dtype=np.uint16).reshape(512, 128)  # two strips of rows
    for image in (Image.fromarray(values), Image.fromarray(values.astype(np.int32))):
        assert image.mode in ("I;16", "I")
        scaled = np.asarray(pipeline._normalize_mode(image))
        assert scaled.dtype == np.uint8
        expected = (values.astype(np.uint32) * 255 + 32767) // 65535
        assert np.array_equal(scaled, expected)


def test_embedded_icc_profile_is_applied():
    source = _save(_noisy((64, 48), (230, 20, 20)), "PNG", icc_profile=_swapped_rgb_icc())
    result = optimize(source, FAST)
    assert result.warnings == []
    # Red under a profile whose red primary is sRGB blue.
    red, green, blue = _pixel(result.variants[0].data, (32, 24))
    assert blue > 180 and red < 60 and green < 60


def test_corrupt_icc_profile_falls_back_to_srgb_with_a_warning():
    source = _save(
        _noisy((64, 48), (200, 120, 40)), "JPEG", quality=95, icc_profile=b"garbage!" * 20
    )
    result = optimize(source, FAST)
    assert any("ICC profile is corrupt" in warning for warning in result.warnings)
    assert _near(_pixel(result.variants[0].data, (32, 24)), (200, 120, 40), 8)


def test_cmyk_jpeg_without_profile_is_converted_and_says_so():
    source = _save(_noisy((64, 48), (230, 20, 20, 20)), "JPEG", quality=95)
    result = optimize(source, FAST)
    assert any("CMYK image without an ICC profile" in warning for warning in result.warnings)
    # Cyan ink: (255 - C) * (255 - K) / 255 per channel.
    assert _near(_pixel(result.variants[0].data, (32, 24)), (23, 217, 217), 12)


def test_cmyk_jpeg_goes_through_its_embedded_profile():
    source = _save(
        _noisy((64, 48), (230, 20, 20, 20)), "JPEG", quality=95, icc_profile=_odd_cmyk_icc()
    )
    result = optimize(source, FAST)
    assert result.warnings == []
    red, green, blue = _pixel(result.variants[0].data, (32, 24))  # yellow, not cyan
    assert red > 180 and green > 180 and blue < 80


def test_16_bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256), (32, 1))
    grain = np.random.default_rng(16).integers(-2000, 2001, ramp.shape)
    source = _save(Image.fromarray(np.clip(ramp + grain, 0, 65535).astype(np.uint16)), "PNG")
    with Image.open(io.BytesIO(source)) as check:
        assert check.mode == "I;16"
    result = optimize(source, FAST)
    data = _variant(result, 400, "jpeg").data
    with Image.open(io.BytesIO(data)) as output:
        assert output.mode == "L"
    assert _near(_pixel(data, (128, 16)), (128, 128, 128), 4)
    assert _near(_pixel(data, (8, 16)), (8, 8, 8), 4)


def test_16_bit_rgb_png():
    rng = np.random.default_rng(48)
    pixels = np.clip(
        np.array([62000, 32768, 3000]) + rng.integers(-3000, 3001, (48, 64, 3)), 0, 65535
    )
    source = png_by_hand(64, 48, 16, 2, [row.astype(">u2").tobytes() for row in pixels])
    result = optimize(source, FAST)
    assert _near(_pixel(_variant(result, 400, "webp").data, (32, 24)), (241, 128, 12), 8)


def test_animated_gif_uses_the_first_frame():
    frames = [_noisy((120, 90), colour) for colour in ((220, 20, 20), (20, 220, 20), (20, 20, 220))]
    source = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = optimize(source, FAST)
    assert result.animated
    assert any("first frame" in warning for warning in result.warnings)
    for variant in result.variants:
        assert _near(_pixel(variant.data, (60, 45)), (220, 20, 20), 12)
        with Image.open(io.BytesIO(variant.data)) as output:
            assert not getattr(output, "is_animated", False)


# --- quality and size --------------------------------------------------------------------------


def test_ssim_is_measured_and_high_on_a_natural_image():
    source = _save(_natural(1600, 1200), "JPEG", quality=92)
    result = optimize(source, Preset(sizes=(640, 320), measure_ssim=True))
    assert (result.decoded_width, result.decoded_height) == (800, 600)  # DCT-scaled decode
    assert len(result.variants) == 4
    for variant in result.variants:
        assert variant.ssim is not None and variant.ssim >= 0.95, variant
        assert variant.kept and variant.bytes < len(source) and variant.seconds > 0


def test_png_reference_reuses_the_single_decode(monkeypatch):
    source = _save(_natural(480, 360), "PNG")
    sources_opened = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        if fp.getbuffer().nbytes == len(source):
            sources_opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    result = optimize(source, Preset(sizes=(240,), measure_ssim=True))
    assert len(sources_opened) == 1
    assert all(v.ssim is not None and v.ssim > 0.95 for v in result.variants)


def test_variant_larger_than_the_original_is_not_kept():
    source = _save(_natural(640, 480), "JPEG", quality=25)
    result = optimize(source, FAST)
    dropped = [v for v in result.variants if not v.kept]
    assert dropped, [v.bytes for v in result.variants]
    for variant in dropped:
        assert variant.bytes > len(source)
        assert variant.data == b""
        assert "larger than the original" in variant.note
    for variant in result.variants:
        if variant.kept:
            assert variant.bytes <= len(source) and variant.data


def test_avif_is_separate_work():
    source = _save(_natural(480, 360), "PNG")
    variants = optimize_avif(source, Preset(sizes=(240,), avif=True, measure_ssim=True))
    assert [(v.format, v.width, v.height) for v in variants] == [("avif", 240, 180)]
    with Image.open(io.BytesIO(variants[0].data)) as output:
        assert output.format == "AVIF"
    assert variants[0].ssim is not None and variants[0].ssim > 0.9


def test_preset_is_validated_and_content_hash_is_sha256():
    with pytest.raises(ValueError, match="AVIF is the `avif` flag"):
        Preset(formats=("jpeg", "avif"))
    assert pipeline.content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()
