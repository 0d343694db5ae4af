"""The image optimization pipeline: bytes in, resized and re-encoded variants out.

Plain functions over Pillow, with no Django import, so that the Celery tasks, the upload views
and the benchmark all call the same code. Outputs are bytes in memory: the caller writes them
through Django's storage, so a failure never leaves a partial file behind.

What happens to an upload, in order:

1. ``probe``: size checks on the raw bytes, then Pillow reads the header only. Too many bytes, too
   many pixels (a decompression bomb: a small file that claims a huge canvas), an unknown format
   and a corrupt header are refused with ``ImageRejected`` before any pixel is decoded.
2. One decode. A JPEG is decoded with DCT scaling (``Image.draft``) straight to the smallest size
   that still covers the largest variant, with the EXIF orientation taken into account (a
   90-degree rotated photo is stored sideways, so its target box is swapped). Decoding straight
   to the target rather than leaving a factor of 2 for the resize (as libvips and
   ``Image.thumbnail`` do) needs a quarter of the memory and 23-48 % less CPU for the decode
   and first resize, and costs SSIM at the largest size: about 0.008 on JPEGs of 10 MP or more,
   0.003 on the benchmark's corpus, 0.001 on its mean over the sizes (``bench/images.py
   --filters``), against about 0.04 for the encoders. Truncated data fails:
   ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False.
3. Mode: 16-bit becomes 8-bit (scaled, not clipped; in Pillow, no numpy: numpy is imported
   only to measure SSIM), palettes and bit-maps become RGB(A), and an
   alpha channel that is fully opaque is dropped.
4. The cascade: the largest variant is resized from the decode, each next one from the previous
   one (one LANCZOS ``Image.resize``, with ``reducing_gap`` for big steps; the first one frees
   the decode between its horizontal and vertical pass, which keeps the result off the peak).
   Colour management (embedded ICC profile to sRGB, CMYK included) and the EXIF rotation are
   applied to the largest variant rather than to the full decode: the same picture, fewer
   pixels to touch. Nothing is ever enlarged. Memory: a progressive JPEG costs most, as libjpeg
   keeps all its DCT coefficients until the last scan (3 bytes a pixel at 4:2:0, at whatever
   scale it decodes): a 24 MP one peaks at about 130 MB per worker, a baseline one under 100.
5. Encoding: JPEG (baseline with optimised tables, alpha flattened onto white) and WebP (alpha
   kept; ``webp_method`` for the largest size, ``webp_method_smaller`` below); AVIF is a
   separate call, ``optimize_avif``, because it is several times slower and the caller queues it
   as lower-priority work. Grey sources stay grey. The outputs are sRGB and carry no ICC
   profile (a browser takes an untagged image as sRGB); the EXIF Copyright tag is kept if the
   source had one; all other metadata (GPS, camera, XMP, comments) is dropped. A variant larger
   than the uploaded file is reported but not kept.
6. Quality, when the preset asks (``measure_ssim=True``): each variant's SSIM against the
   full-resolution decode resized straight to the variant's size with LANCZOS (see
   ``images.quality``). A PNG's reference comes from the one decode. A DCT-scaled JPEG needs a
   second, full-resolution decode (luminance only when no colour conversion is needed), made
   after the cascade has been released: it costs more time than the optimization itself and a
   full-size buffer (a 358 MB peak for 100 MP, against 84 MB without), which is why it is off
   by default. The benchmark and the tests turn it on: that is where the settings are proven.

Decisions worth knowing:

- Animated GIF, WebP and PNG: the first frame only, in every format, and the result says so
  (``Result.animated`` and a warning). Photos are the purpose of this pipeline; re-encoding
  every frame at every size would multiply the work by the frame count.
- CMYK with an embedded profile goes through it. CMYK without one is converted with Pillow's
  simple formula (no CMYK profile ships with Pillow or this project), and a warning says the
  colours are approximate.
- A corrupt embedded ICC profile, or one for the wrong colour space, is ignored: the pixels are
  taken as sRGB and a warning says so. It is not a reason to refuse the upload.
- Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``, about 89 MP, an error from twice that)
  stays in force under ours; a ``max_pixels`` above about 178 MP needs the process to raise
  ``Image.MAX_IMAGE_PIXELS`` too.
- One image at a time per process (Celery's prefork workers): the pipeline silences Pillow's
  bomb warning with ``warnings.catch_warnings``, which is process-wide.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from portal.formatting import human_bytes

if TYPE_CHECKING:
    from images.quality import LumaStats

V = TypeVar("V")

# JPEG includes MPO (multi-picture JPEG from cameras): Pillow opens those as MPO, first picture.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")
OUTPUT_FORMATS = ("jpeg", "webp")
WHITE = (255, 255, 255)
LANCZOS = Image.Resampling.LANCZOS
# Steps of more than 3x go through a box reduce() first: by Pillow's account no visible
# difference from a plain LANCZOS at that gap, and much faster.
REDUCING_GAP = 3.0
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
EXIF_ORIENTATION = 0x0112
EXIF_COPYRIGHT = 0x8298
# How each EXIF orientation is undone; 5 to 8 are stored sideways.
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PROFILE_SPACE = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


class ImageRejected(ValueError):
    """The upload cannot be processed; ``reason`` is a sentence to show the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Preset:
    """What to make of an upload. Sizes are boxes: a variant fits within size x size."""

    name: str = "default"
    sizes: tuple[int, ...] = (2048, 1024, 400)
    formats: tuple[str, ...] = ("jpeg", "webp")
    avif: bool = False
    jpeg_quality: int = 82
    webp_quality: int = 80
    webp_method: int = 4  # for the largest size, which is most of the bytes
    webp_method_smaller: int = 2  # for the others: +40 % speed for ~4 % of their bytes
    jpeg_progressive: bool = False
    avif_quality: int = 60
    avif_speed: int = 6
    max_pixels: int = 120_000_000
    max_bytes: int = 200 * 1024 * 1024
    measure_ssim: bool = False

    def __post_init__(self) -> None:
        if not self.sizes or any(size < 1 for size in self.sizes):
            raise ValueError(f"sizes must be positive, got {self.sizes!r}")
        unknown = set(self.formats) - set(OUTPUT_FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; AVIF is the `avif` flag")
        for name in ("jpeg_quality", "webp_quality", "avif_quality"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be within 0..100")
        for name in ("webp_method", "webp_method_smaller"):
            if not 0 <= getattr(self, name) <= 6:
                raise ValueError(f"{name} must be within 0..6")

    @property
    def largest(self) -> int:
        return max(self.sizes)


DEFAULT_PRESET = Preset()


@dataclass(frozen=True)
class SourceInfo:
    """What the header says. Width and height are as displayed, after the EXIF orientation."""

    format: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    mode: str
    orientation: int
    animated: bool
    has_icc_profile: bool
    bytes: int


@dataclass
class Variant:
    """One output. ``size`` is the preset's box; ``seconds`` the encode time; ``ssim`` None
    unless the preset measures it; ``kept`` False (with ``data`` emptied and the reason in
    ``note``) when it came out larger than the upload."""

    size: int
    format: str
    width: int
    height: int
    data: bytes
    bytes: int
    seconds: float
    ssim: float | None
    kept: bool
    note: str = ""


def best_of(variants: Sequence[V]) -> V | None:
    """The variant that replaces the original on a page: the smallest kept one of the largest
    size made. None when none of that size came out smaller than the original (a thumbnail is
    never the answer for the full picture). Works on this module's Variants and on stored
    variant rows alike (``size``, ``kept``, ``bytes``)."""
    if not variants:
        return None
    largest = max(variant.size for variant in variants)
    kept = [v for v in variants if v.kept and v.size == largest]
    return min(kept, key=lambda variant: variant.bytes) if kept else None


@dataclass
class Result:
    """Width and height as displayed; ``decoded_*`` is what the decoder produced (smaller than
    the source for a DCT-scaled JPEG). ``warnings`` are sentences for the person."""

    source_format: str
    width: int
    height: int
    source_bytes: int
    variants: list[Variant]
    warnings: list[str]
    decode_seconds: float
    animated: bool
    decoded_width: int = 0
    decoded_height: int = 0


HASH_CHUNK = 1024 * 1024


def content_hash(data: bytes) -> str:
    """SHA-256 of the upload, hex: the idempotent key for its outputs."""
    return hashlib.sha256(data).hexdigest()


def content_hash_file(stream: BinaryIO) -> str:
    """``content_hash`` of a file read from its start in chunks: memory stays flat whatever
    its size."""
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def probe(data: bytes, preset: Preset = DEFAULT_PRESET) -> SourceInfo:
    """Read the header only and refuse what the preset does not allow. Decodes no pixels."""
    return probe_file(io.BytesIO(data), len(data), preset)


def probe_file(stream: BinaryIO, nbytes: int, preset: Preset = DEFAULT_PRESET) -> SourceInfo:
    """``probe`` for a file of ``nbytes`` (an upload's temporary file): Pillow reads the first
    bytes it needs for the header from the stream, never the whole file, so a large file that
    is not an image is refused at its first bytes. (WebP and AVIF headers are the exception:
    their decoders take the whole file, within ``preset.max_bytes``.)"""
    stream.seek(0)
    return _header(_open_stream(stream, nbytes, preset), nbytes)


def optimize(data: bytes, preset: Preset = DEFAULT_PRESET) -> Result:
    """Decode once and make the JPEG and WebP variants of every size in the preset."""
    return _run(data, preset, preset.formats)


def optimize_avif(data: bytes, preset: Preset = DEFAULT_PRESET) -> list[Variant]:
    """The AVIF variants alone: several times slower than ``optimize``, so the caller queues it
    as separate, lower-priority work when ``preset.avif`` is set. It decodes the upload again
    (once), so it needs nothing from the ``optimize`` run; its warnings are that run's."""
    return _run(data, preset, ("avif",)).variants


# --- decode -------------------------------------------------------------------------------


def _open(data: bytes, preset: Preset) -> ImageFile.ImageFile:
    return _open_stream(io.BytesIO(data), len(data), preset)


def _open_stream(stream: BinaryIO, nbytes: int, preset: Preset) -> ImageFile.ImageFile:
    if not nbytes:
        raise ImageRejected("The file is empty.")
    if nbytes > preset.max_bytes:
        raise ImageRejected(
            f"The file is {human_bytes(nbytes)}; the limit is {human_bytes(preset.max_bytes)}."
        )
    try:
        with warnings.catch_warnings():
            # Our own limit below is the policy; Pillow's warning band (89-178 MP) is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            f"The image claims too many pixels (possible decompression bomb); the limit is "
            f"{preset.max_pixels / 1e6:g} megapixels."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "This is not an image in a supported format (JPEG, PNG, GIF, WebP or AVIF)."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"The image header is corrupt ({exc}).") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.")
    if width * height > preset.max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit "
            f"is {preset.max_pixels / 1e6:g} megapixels (possible decompression bomb)."
        )
    return image


def _exif(image: ImageFile.ImageFile, *, decoded: bool = False) -> Image.Exif:
    # A PNG may keep its eXIf chunk after the pixels, and Pillow's PngImageFile.getexif() decodes
    # the whole image to find it: before the decode we only look at what the header gave.
    if image.format == "PNG" and "exif" not in image.info and not decoded:
        return Image.Exif()
    try:
        return image.getexif()
    except _DECODE_ERRORS:
        return Image.Exif()


def _orientation(exif: Image.Exif) -> int:
    value = exif.get(EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _header(image: ImageFile.ImageFile, nbytes: int) -> SourceInfo:
    orientation = _orientation(_exif(image))
    stored_w, stored_h = image.size
    width, height = (stored_h, stored_w) if orientation >= 5 else (stored_w, stored_h)
    return SourceInfo(
        format="JPEG" if image.format == "MPO" else str(image.format),
        width=width,
        height=height,
        stored_width=stored_w,
        stored_height=stored_h,
        mode=image.mode,
        orientation=orientation,
        animated=bool(getattr(image, "is_animated", False)) and image.format != "MPO",
        has_icc_profile=bool(image.info.get("icc_profile")),
        bytes=nbytes,
    )


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    """The size of width x height fitted within box x box, never enlarged."""
    if max(width, height) <= box:
        return width, height
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class _Decoded:
    info: SourceInfo
    image: Image.Image | None  # normalized mode, stored orientation, source colours
    profile: ImageCms.ImageCmsProfile | None  # None: the pixels are (taken as) sRGB
    exif: bytes  # what the outputs carry: the Copyright tag or nothing
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scaled: bool = False  # DCT-scaled: smaller than the stored image


def _decode(data: bytes, preset: Preset) -> _Decoded:
    started = time.perf_counter()
    image = _open(data, preset)
    info = _header(image, len(data))
    notes: list[str] = []
    if image.format in ("JPEG", "MPO"):
        target = _fit(info.width, info.height, preset.largest)
        if info.orientation >= 5:
            target = target[1], target[0]
        image.draft(None, target)
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"The image data is truncated or corrupt ({exc}).") from exc
    exif = _exif(image, decoded=True)  # complete now, PNG included
    orientation = _orientation(exif)
    if orientation != info.orientation:  # a PNG's eXIf chunk after the pixels
        swapped = orientation >= 5
        info = replace(
            info,
            orientation=orientation,
            width=info.stored_height if swapped else info.stored_width,
            height=info.stored_width if swapped else info.stored_height,
        )
    if info.animated:
        notes.append(f"Animated {info.format}: only the first frame is used.")
    icc = image.info.get("icc_profile") or b""
    kept_exif = Image.Exif()
    if (copyright_ := exif.get(EXIF_COPYRIGHT)) is not None:
        kept_exif[EXIF_COPYRIGHT] = copyright_
    scaled = image.size != (info.stored_width, info.stored_height)
    normalized = _normalize_mode(image)
    del image
    normalized.info = {}  # nothing of the source's metadata may ride along into an encoder
    profile = _source_profile(icc, normalized.mode, notes)
    return _Decoded(
        info=info,
        image=normalized,
        profile=profile,
        exif=kept_exif.tobytes() if len(kept_exif) else b"",
        warnings=notes,
        seconds=time.perf_counter() - started,
        scaled=scaled,
    )


def _normalize_mode(image: Image.Image) -> Image.Image:
    """One of L, LA, RGB, RGBA, CMYK, 8 bits per channel; an all-opaque alpha is dropped."""
    mode = image.mode
    if mode.startswith("I"):  # I;16, I;16B, I: 16-bit grey, scaled down rather than clipped
        image = _grey16_to_l(image)
    elif mode == "F":
        image = image.convert("L")  # clipped to 0..255 and rounded by Pillow
    elif mode in ("La", "RGBa"):
        image = image.convert(mode.upper())
    elif "transparency" in image.info or mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        # Palettes, bit-maps, a colour key: RGB, or RGBA when something is transparent.
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert(image.mode[:-1])
    return image


_GREY16_ROWS = 256


def _grey16_to_l(image: Image.Image) -> Image.Image:
    """16-bit grey to 8 bits, v * 255 / 65535 rounded, in Pillow alone and in strips of rows:
    a linear ``point`` on the 32-bit strip and a clipping ``convert``. No full-size temporary
    beyond the 8-bit result (the numpy version made three of 4 bytes a pixel)."""
    out = Image.new("L", image.size)
    for top in range(0, image.height, _GREY16_ROWS):
        strip = image.crop((0, top, image.width, min(image.height, top + _GREY16_ROWS)))
        wide = strip if strip.mode == "I" else strip.convert("I")
        # The lambda is linear, so Pillow applies it as a scale and an offset in C.
        out.paste(wide.point(lambda value: value * (255 / 65535) + 0.5).convert("L"), (0, top))
    return out


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    return "sRGB" in (profile.profile.profile_description or "")


def _source_profile(icc: bytes, mode: str, notes: list[str]) -> ImageCms.ImageCmsProfile | None:
    if not icc:
        if mode == "CMYK":
            notes.append(
                "CMYK image without an ICC profile: converted with a simple formula, so the "
                "colours are approximate."
            )
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
    except (ImageCms.PyCMSError, *_DECODE_ERRORS):
        notes.append("The embedded ICC profile is corrupt and was ignored; colours taken as sRGB.")
        return None
    if space != _PROFILE_SPACE[mode]:
        notes.append(
            f"The embedded ICC profile is for {space} but the image is {mode}; it was ignored "
            "and the colours taken as sRGB."
        )
        return None
    return None if space == "RGB" and _is_srgb(profile) else profile


def _to_srgb(
    image: Image.Image, profile: ImageCms.ImageCmsProfile | None, notes: list[str]
) -> Image.Image:
    """RGB or RGBA in sRGB, through the embedded profile when there is one; a grey source
    stays grey (L or LA), since grey is the same in every RGB space a browser assumes."""
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    colour = image.convert(image.mode[:-1]) if alpha is not None else image
    converted = None
    if profile is not None:
        try:
            converted = ImageCms.profileToProfile(colour, profile, SRGB_PROFILE, outputMode="RGB")
        except (ImageCms.PyCMSError, *_DECODE_ERRORS):
            notes.append("The embedded ICC profile could not be applied; colours taken as sRGB.")
        else:
            if colour.mode == "L":  # a grey profile's tone curve applied; still grey
                converted = converted.convert("L")
    if converted is None:
        converted = colour if colour.mode in ("RGB", "L") else colour.convert("RGB")
    if alpha is not None:
        converted.putalpha(alpha)
    converted.info = {}
    return converted


def _resize(
    image: Image.Image, size: tuple[int, int], gap: float | None = REDUCING_GAP
) -> Image.Image:
    """LANCZOS to size in one ``Image.resize``. (Resizing a large source in bands of rows saved
    its horizontal-pass buffer, 12-22 MB, but was slower and not pixel-identical: see the
    resize figures of bench/images.py.)"""
    return image.resize(size, LANCZOS, reducing_gap=gap)


def _resize_releasing(images: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """``_resize`` of the one image in ``images``, which it takes: the source is freed between
    the horizontal and the vertical pass, so the source, the horizontal pass's buffer and the
    result are never all in memory at once (for a 12 MP photo decoded whole, 48 + 25 + 13 MB:
    the result's 13 MB off the peak). Pixel-identical to one ``Image.resize``, which makes the
    same two passes in the same order (horizontal first)."""
    source = images.pop()
    factor = int(source.width / size[0] / REDUCING_GAP), int(source.height / size[1] / REDUCING_GAP)
    if max(factor) >= 2 or source.width == size[0] or source.height == size[1]:
        return _resize(source, size)  # reduce() first, or one pass only: nothing to gain
    wide = source.resize((size[0], source.height), LANCZOS)
    del source
    return wide.resize(size, LANCZOS)


def _cascade(decoded: _Decoded, preset: Preset) -> Iterator[tuple[int, Image.Image]]:
    """(box, image) from the largest box down, each image resized from the one before.

    Takes the decode out of ``decoded`` so that it is freed as soon as the first variant exists.
    """
    info = decoded.info
    current, decoded.image = decoded.image, None
    assert current is not None
    first = True
    for box in sorted(set(preset.sizes), reverse=True):
        target = _fit(info.width, info.height, box)
        if first:
            # Resize in the stored orientation (the box swapped for a sideways photo), then
            # convert the colours and turn the image upright: both on the smaller image.
            stored = (target[1], target[0]) if info.orientation >= 5 else target
            if current.size != stored:
                holder, current = [current], None
                current = _resize_releasing(holder, stored)
            current = _to_srgb(current, decoded.profile, decoded.warnings)
            if info.orientation in _ORIENTATION_FIX:
                current = current.transpose(_ORIENTATION_FIX[info.orientation])
            first = False
        elif current.size != target:
            current = _resize(current, target)
        yield box, current


# --- encode -------------------------------------------------------------------------------


def _flatten(image: Image.Image) -> Image.Image:
    """Alpha flattened onto white: RGBA to RGB, LA to L."""
    if image.mode not in ("RGBA", "LA"):
        return image
    flat = Image.new(image.mode[:-1], image.size, WHITE if image.mode == "RGBA" else 255)
    flat.paste(image, mask=image.getchannel("A"))
    return flat


def _encode(
    image: Image.Image, fmt: str, preset: Preset, exif: bytes, *, largest: bool = True
) -> bytes:
    """One output. No ICC profile: every output is sRGB (or grey), which is what a browser
    assumes of an untagged image, so the profile would be bytes that change nothing."""
    out = io.BytesIO()
    if fmt == "jpeg":
        _flatten(image).save(
            out,
            "JPEG",
            quality=preset.jpeg_quality,
            subsampling="4:2:0",
            # Baseline with optimised Huffman tables: progressive is ~3 % smaller but its
            # optimisation pass costs ~3x the encode (bench/images.py prints both).
            progressive=preset.jpeg_progressive,
            optimize=True,
            exif=exif,
        )
    elif fmt == "webp":
        image.save(
            out,
            "WEBP",
            quality=preset.webp_quality,
            method=preset.webp_method if largest else preset.webp_method_smaller,
            exif=exif,
        )
    elif fmt == "avif":
        image.save(
            out,
            "AVIF",
            quality=preset.avif_quality,
            speed=preset.avif_speed,
            # One thread: workers are processes, one per core.
            max_threads=1,
            exif=exif,
        )
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return out.getvalue()


# --- quality ------------------------------------------------------------------------------


def _luma(image: Image.Image) -> Image.Image:
    """Luminance of an image as a person sees it on a white page."""
    if image.mode in ("LA", "RGBA", "P"):
        image = _flatten(image.convert("RGBA"))
    return image if image.mode == "L" else image.convert("L")


def _reference_source(data: bytes, decoded: _Decoded, preset: Preset) -> Image.Image:
    """Full-resolution luminance in the stored orientation, sRGB, flattened onto white."""
    if not decoded.scaled:
        assert decoded.image is not None
        return _srgb_luma(decoded.image, decoded.profile)
    image = _open(data, preset)  # JPEG only: a second, full-size decode, luminance if it can
    if image.mode == "RGB" and decoded.profile is None:
        image.draft("L", None)
    image.load()
    full = _normalize_mode(image)
    del image
    return _srgb_luma(full, decoded.profile)


def _srgb_luma(image: Image.Image, profile: ImageCms.ImageCmsProfile | None) -> Image.Image:
    if image.mode == "L" and profile is None:
        return image
    return _luma(_to_srgb(image, profile, []))


def _reference(source: Image.Image, orientation: int, size: tuple[int, int]) -> LumaStats:
    # Imported here, not at the top: numpy (25 MB resident) is only needed for SSIM.
    from images.quality import LumaStats

    stored = (size[1], size[0]) if orientation >= 5 else size
    resized = _resize(source, stored, gap=None) if source.size != stored else source
    if orientation in _ORIENTATION_FIX:
        resized = resized.transpose(_ORIENTATION_FIX[orientation])
    return LumaStats(resized)


def _measure(variants: list[Variant], reference_source: Image.Image, orientation: int) -> None:
    # Imported here, not at the top: numpy (25 MB resident) is only needed for SSIM.
    from images.quality import ssim

    by_size: dict[tuple[int, int], LumaStats] = {}
    for variant in variants:
        if variant.ssim is not None or not variant.data:
            continue
        dims = (variant.width, variant.height)
        if dims not in by_size:
            by_size[dims] = _reference(reference_source, orientation, dims)
        with Image.open(io.BytesIO(variant.data)) as encoded:
            variant.ssim = round(ssim(by_size[dims], _luma(encoded)), 5)
        for twin in variants:  # the same bytes reused for a smaller box
            if twin.data is variant.data:
                twin.ssim = variant.ssim


# --- the run --------------------------------------------------------------------------------


def _run(data: bytes, preset: Preset, formats: tuple[str, ...]) -> Result:
    decoded = _decode(data, preset)
    info = decoded.info
    result = Result(
        source_format=info.format,
        width=info.width,
        height=info.height,
        source_bytes=len(data),
        variants=[],
        warnings=decoded.warnings,
        decode_seconds=round(decoded.seconds, 6),
        animated=info.animated,
    )
    assert decoded.image is not None
    result.decoded_width, result.decoded_height = decoded.image.size
    reference_source = None
    if preset.measure_ssim and not decoded.scaled:
        reference_source = _reference_source(data, decoded, preset)

    encoded: dict[tuple[str, tuple[int, int]], tuple[bytes, int]] = {}  # dims -> first box
    for box, image in _cascade(decoded, preset):
        for fmt in formats:
            previous = encoded.get((fmt, image.size))
            if previous is not None:
                payload, first_box = previous
                seconds = 0.0
                note = f"same pixels as the {first_box} px variant (the source is smaller)"
            else:
                started = time.perf_counter()
                payload = _encode(image, fmt, preset, decoded.exif, largest=box == preset.largest)
                seconds = time.perf_counter() - started
                encoded[(fmt, image.size)] = (payload, box)
                note = ""
            kept = len(payload) <= len(data)
            if not kept:
                note = f"not kept: {len(payload)} bytes, larger than the original ({len(data)})"
            result.variants.append(
                Variant(
                    size=box,
                    format=fmt,
                    width=image.width,
                    height=image.height,
                    data=payload,
                    bytes=len(payload),
                    seconds=round(seconds, 6),
                    ssim=None,
                    kept=kept,
                    note=note,
                )
            )
        del image

    if preset.measure_ssim:
        if reference_source is None:
            reference_source = _reference_source(data, decoded, preset)
        _measure(result.variants, reference_source, info.orientation)
    for variant in result.variants:
        if not variant.kept:
            variant.data = b""
    return result
