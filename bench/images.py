"""Benchmark of the image pipeline (images/pipeline.py) against two references.

    python bench/images.py            # 32 photos of 2-24 MP; the 100 MP one alone, for memory
    python bench/images.py --quick    # 10 photos of at most 12 MP, the 100 MP one for memory only
    python bench/images.py --stages   # CPU per stage (decode, resize, encode...), ours and pyvips
    python bench/images.py --filters  # the cascade's resampling filter: CPU, bytes, SSIM

The corpus is built once and cached under var/bench/images/ (gitignored). Its photos are the
colour sample photos that scikit-image ships in its wheel (only the files are read; skimage is
never imported), cropped to a camera's aspect, enlarged to 2-24 MP and given texture (grain and
blotchy mid-scale detail, as foliage or fabric has) so that they do not compress trivially. JPEG
baseline and progressive, PNG, two grey JPEGs, four EXIF orientations and a few with a Display P3
profile (so the colour-managed path is timed too, as for a phone's photos). ``--photos DIR`` uses
other photos.

Measured, for 1 and 2 worker processes (multiprocessing, spawned, one image per task):

- pipeline: ``images.pipeline.optimize`` with the default preset (JPEG and WebP at 2048, 1024 and
  400 px, no SSIM), as the Celery task runs it;
- naive: what Pillow's tutorial leads to: for each size, open and fully decode the original
  again, ``exif_transpose``, ``thumbnail()``, encode with the same settings;
- floor: the codec work alone: the pipeline's own decode (DCT-scaled for JPEG) plus the same
  encodes of the same variant pixels, made beforehand outside the clock; no resize, no colour;
- pipeline+ssim: the pipeline with ``measure_ssim=True``, for the quality figures and their cost.

- pyvips: the best peer (libvips through the ``pyvips`` + ``pyvips-binary`` wheels), its
  ``thumbnail`` with the preset's own encoder settings, one libvips thread per worker;
- pyvips+ssim: its outputs scored against the same references as the pipeline's.

Then the choices behind the pipeline's settings, on the first JPEGs of the corpus: JPEG baseline
against progressive (both with optimised tables), WebP methods 2, 3 and 4 per size (CPU time,
bytes, SSIM against the unencoded variant), one ``Image.resize`` against the banded resize the
pipeline had before (time and share of pixels that differ), and the resampling filter of the
cascade (LANCZOS, BICUBIC, a 2x2 box for the exact halvings: CPU, bytes, SSIM of the encodes).

Throughput is images per second per core: images over the CPU seconds the workers spent on them,
each image's best of two passes (one with --quick), since the machine may be shared; the
wall-clock rate of the whole pool is printed too. Memory is the peak resident set of a worker
process while it handles one image (VmHWM, the kernel's high-water mark, restarted before each
image from what the worker already holds), the worst image named; the 100 MP JPEG is run alone
in a new process for each pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import json
import multiprocessing
import os
import resource
import struct
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from images import pipeline  # noqa: E402

CACHE = ROOT / "var" / "bench" / "images"
CORPUS_VERSION = 2
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "ihc.png",
)
PRESET = pipeline.Preset()
MODES = ("pipeline", "pyvips", "naive", "floor", "pipeline+ssim", "pyvips+ssim")


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    name: str
    photo: str
    megapixels: float
    kind: str  # baseline | progressive | png | grey (a baseline JPEG of one channel)
    orientation: int
    p3: bool
    aspect: float = 1.5


def corpus_spec(quick: bool) -> list[Item]:
    kinds = ("baseline", "progressive", "baseline", "png", "progressive", "baseline")
    sizes = (2, 4, 6, 8, 12, 16, 20, 24, 3, 10)
    orientations = (1, 6, 1, 8, 3, 1, 5, 1)
    items = []
    for i in range(30):
        kind = kinds[i % len(kinds)]
        megapixels = sizes[i % len(sizes)]
        if kind == "png":
            megapixels = min(megapixels, 8)  # a 24 MP textured PNG is 60 MB; cameras make JPEGs
        items.append(
            Item(
                name=f"{i:02d}",
                photo=PHOTOS[i % len(PHOTOS)],
                megapixels=megapixels,
                kind=kind,
                orientation=1 if kind == "png" else orientations[i % len(orientations)],
                p3=kind != "png" and i % 5 == 2,
                aspect=(1.5, 4 / 3, 16 / 9)[i % 3],
            )
        )
    # Two grey photos (a scanned print, a black-and-white shot): the grey path is timed too.
    items.append(Item("30", "coffee.png", 6, "grey", 1, False, 1.5))
    items.append(Item("31", "rocket.jpg", 16, "grey", 6, False, 4 / 3))
    if quick:
        items = [item for item in items if item.megapixels <= 12][:10]
    return items


HUGE = Item("huge", "astronaut.png", 100, "baseline", 1, False)


def _photo_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "The corpus is made from scikit-image's sample photos: install scikit-image "
            "(pip install scikit-image==0.26.0) or pass --photos DIR with the photos listed in "
            "bench/images.py."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _p3_icc() -> bytes:
    """A Display P3 matrix/TRC profile (D50 primaries, gamma 2.2), as phones tag their photos."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"
    text = b"Display P3 (bench)"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(78)
    desc += b"\0" * (-len(desc) % 4)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + bytes(4)
        + bytes((2, 0x10, 0, 0))
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + body


def _textured(photo: Image.Image, item: Item, seed: int) -> Image.Image:
    """The photo cropped to the item's aspect, enlarged, with grain and mid-scale texture."""
    import numpy as np  # here: the workers never import numpy unless the pipeline does

    rng = np.random.default_rng(seed)
    width = round((item.megapixels * 1e6 * item.aspect) ** 0.5)
    height = round(width / item.aspect)
    pw, ph = photo.size
    if pw / ph > item.aspect:
        crop_w = round(ph * item.aspect)
        photo = photo.crop(((pw - crop_w) // 2, 0, (pw - crop_w) // 2 + crop_w, ph))
    else:
        crop_h = round(pw / item.aspect)
        photo = photo.crop((0, (ph - crop_h) // 2, pw, (ph - crop_h) // 2 + crop_h))
    base = photo.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(base)
    out = np.empty_like(pixels)
    # Texture in octaves of 2 to 64 px with equal strength each, which is how natural scenes
    # behave (their amplitude spectrum falls as 1/f: they look alike at every scale, so the
    # variants keep detail), plus a little sensor grain. Each octave is made small and enlarged
    # strip by strip (seamless, with resize(box=...)), so a 100 MP image needs no full-size
    # float array.
    octaves = [
        (
            Image.fromarray(
                rng.normal(0, 4.5, (height // scale + 2, width // scale + 2)).astype(np.float32),
                "F",
            ),
            scale,
        )
        for scale in (2, 4, 8, 16, 32, 64)
    ]
    strip = 512
    for top in range(0, height, strip):
        rows = min(strip, height - top)
        texture = rng.integers(-3, 4, (rows, width)).astype(np.float32)
        for noise, scale in octaves:
            box = (0, top / scale, width / scale, (top + rows) / scale)
            texture += np.asarray(noise.resize((width, rows), Image.Resampling.BICUBIC, box=box))
        block = pixels[top : top + rows].astype(np.float32) + texture[..., None]
        out[top : top + rows] = np.clip(block, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def build_corpus(items: list[Item], photos: str | None) -> list[Path]:
    """The corpus files, built where missing (only then are the photos needed)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest_path = CACHE / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("version") != CORPUS_VERSION:
        manifest = {"version": CORPUS_VERSION, "items": {}}
    paths = []
    for seed, item in enumerate(items):
        suffix = "png" if item.kind == "png" else "jpg"
        path = CACHE / f"{item.name}-{item.kind}-{item.megapixels:g}mp-o{item.orientation}.{suffix}"
        if manifest["items"].get(path.name) != asdict(item) or not path.exists():
            started = time.perf_counter()
            with Image.open(_photo_dir(photos) / item.photo) as photo:
                image = _textured(photo, item, seed)
            if item.kind == "grey":
                image = image.convert("L")
            params: dict = {}
            if item.kind != "png":
                exif = Image.Exif()
                exif[0x010F] = "BenchCam"
                exif[0x8298] = "(c) bench corpus"
                exif[0x0112] = item.orientation
                exif.get_ifd(0x8825)[1] = "N"
                params = {"quality": 90, "subsampling": "4:2:0", "exif": exif}
                if item.kind == "progressive":
                    params["progressive"] = True
                if item.p3:
                    params["icc_profile"] = _p3_icc()
            image.save(path, "PNG" if item.kind == "png" else "JPEG", **params)
            del image
            manifest["items"][path.name] = asdict(item)
            manifest_path.write_text(json.dumps(manifest, indent=1))
            mb = path.stat().st_size / 2**20
            print(f"  built {path.name}: {mb:.1f} MB in {time.perf_counter() - started:.1f} s")
        paths.append(path)
    return paths


# --- the three ways to make the variants --------------------------------------------------------


def _naive(data: bytes) -> dict[str, int]:
    out = dict.fromkeys(PRESET.formats, 0)
    for size in PRESET.sizes:
        method = PRESET.webp_method if size == PRESET.largest else PRESET.webp_method_smaller
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened).convert("RGB")
        image.thumbnail((size, size))
        for fmt in PRESET.formats:
            buffer = io.BytesIO()
            if fmt == "jpeg":
                image.save(
                    buffer,
                    "JPEG",
                    quality=PRESET.jpeg_quality,
                    subsampling="4:2:0",
                    progressive=PRESET.jpeg_progressive,
                    optimize=True,
                )
            else:
                image.save(buffer, "WEBP", quality=PRESET.webp_quality, method=method)
            out[fmt] += buffer.tell()
        del image
    return out


def _pyvips(data: bytes, ssim: dict[str, list[float]] | None) -> dict[str, int]:
    """The best peer, as its documentation recommends: ``thumbnail_buffer`` (shrink-on-load,
    EXIF rotation, the embedded profile to sRGB) for the largest size, the smaller ones from
    that in memory; the same quality, subsampling and Huffman/WebP settings as the preset, all
    metadata stripped. One libvips thread per worker (VIPS_CONCURRENCY=1), as for Pillow."""
    import pyvips  # here: optional, only this mode needs it

    out = dict.fromkeys(PRESET.formats, 0)
    sizes = sorted(set(PRESET.sizes), reverse=True)
    # export_profile only for a source with a profile: given one, libvips transforms an
    # untagged source too (sRGB to sRGB), which costs ~15x its thumbnail of a 2 MP JPEG.
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    tagged = header.get_typeof("icc-profile-data") != 0
    current = pyvips.Image.thumbnail_buffer(
        data,
        sizes[0],
        height=sizes[0],
        size="down",
        **({"export_profile": "srgb"} if tagged else {}),
    )
    current = current.copy_memory()
    encoded: list[tuple[str, int, bytes]] = []
    for size in sizes:
        if size != sizes[0]:
            current = current.thumbnail_image(size, height=size, size="down").copy_memory()
        for fmt in PRESET.formats:
            if fmt == "jpeg":
                payload = current.jpegsave_buffer(
                    Q=PRESET.jpeg_quality,
                    subsample_mode="on",
                    optimize_coding=True,
                    interlace=PRESET.jpeg_progressive,
                    keep="none",
                )
            else:
                method = PRESET.webp_method if size == sizes[0] else PRESET.webp_method_smaller
                payload = current.webpsave_buffer(Q=PRESET.webp_quality, effort=method, keep="none")
            out[fmt] += len(payload)
            encoded.append((fmt, size, payload))
    if ssim is not None:
        _score(data, encoded, ssim)
    return out


def _score(
    data: bytes, encoded: list[tuple[str, int, bytes]], ssim: dict[str, list[float]]
) -> None:
    """SSIM of outside encodes against the pipeline's own reference (the full decode resized
    straight to the variant's size), so that both are scored alike; by format, and by format
    and size ("jpeg 2048")."""
    from images.quality import ssim as score  # here: numpy, SSIM only

    full = pipeline.Preset(sizes=(10**6,), measure_ssim=True)
    decoded = pipeline._decode(data, full)
    source = pipeline._reference_source(data, decoded, full)
    for fmt, size, payload in encoded:
        with Image.open(io.BytesIO(payload)) as image:
            stats = pipeline._reference(source, decoded.info.orientation, image.size)
            value = round(score(stats, pipeline._luma(image)), 5)
        ssim.setdefault(fmt, []).append(value)
        ssim.setdefault(f"{fmt} {size}", []).append(value)


def _floor_prepare(data: bytes) -> list[tuple[Image.Image, bool, bytes]]:
    """The variant pixels the pipeline encodes, with what it encodes them with: whether the
    size is the largest (its WebP method) and the EXIF it writes."""
    decoded = pipeline._decode(data, PRESET)
    unique = {}
    for box, image in pipeline._cascade(decoded, PRESET):
        unique.setdefault(image.size, (image, box == PRESET.largest, decoded.exif))
    return list(unique.values())


def _floor(data: bytes, prepared: list[tuple[Image.Image, bool, bytes]]) -> dict[str, int]:
    pipeline._decode(data, PRESET)
    out = dict.fromkeys(PRESET.formats, 0)
    for image, largest, exif in prepared:
        for fmt in PRESET.formats:
            out[fmt] += len(pipeline._encode(image, fmt, PRESET, exif, largest=largest))
    return out


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    os.environ["VIPS_CONCURRENCY"] = "1"  # read when libvips starts, i.e. at import


def _ready(_: int) -> int:
    time.sleep(0.1)
    return os.getpid()


def _task(job: tuple[str, str]) -> dict:
    mode, path = job
    _reset_peak()  # the peak of this image, on top of what the worker holds from earlier ones
    held = _rss("VmRSS:")
    data = Path(path).read_bytes()
    ssim: dict[str, list[float]] = {}
    prepared = _floor_prepare(data) if mode == "floor" else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if mode in ("pipeline", "pipeline+ssim"):
        preset = pipeline.Preset(measure_ssim=mode == "pipeline+ssim")
        result = pipeline.optimize(data, preset)
        out = dict.fromkeys(preset.formats, 0)
        seen = set()
        for variant in result.variants:
            if variant.kept and (variant.format, variant.width) not in seen:
                seen.add((variant.format, variant.width))
                out[variant.format] += variant.bytes
                if variant.ssim is not None:
                    ssim.setdefault(variant.format, []).append(variant.ssim)
                    ssim.setdefault(f"{variant.format} {variant.size}", []).append(variant.ssim)
    elif mode in ("pyvips", "pyvips+ssim"):
        out = _pyvips(data, ssim if mode == "pyvips+ssim" else None)
    elif mode == "naive":
        out = _naive(data)
    else:
        out = _floor(data, prepared)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    del prepared, data
    return {
        "path": path,
        "pid": os.getpid(),
        "seconds": seconds,
        "cpu": cpu,
        "in": Path(path).stat().st_size,
        "out": out,
        "ssim": ssim,
        "rss_mb": _rss(),
        "held_mb": held,
    }


def run(mode: str, paths: list[Path], workers: int) -> tuple[list[dict], float]:
    """One pass over the corpus: the per-image results and the wall time."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker) as pool:
        pool.map(_ready, range(workers * 2), chunksize=1)  # started and imported
        jobs = [(mode, str(path)) for path in sorted(paths, key=lambda p: -p.stat().st_size)]
        started = time.perf_counter()
        results = list(pool.imap_unordered(_task, jobs, chunksize=1))
        return results, time.perf_counter() - started


def summarize(passes: list[tuple[list[dict], float]]) -> dict:
    """Each image's best time over the passes (the machine is shared: the best of several is
    the least disturbed), the highest peak of any worker, sizes and SSIM of the first pass."""
    results = passes[0][0]
    best = {r["path"]: min(p["cpu"] for rs, _ in passes for p in rs if p["path"] == r["path"])
            for r in results}  # fmt: skip
    inputs = sum(r["in"] for r in results)
    formats = results[0]["out"].keys()
    ssim = {f: [s for r in results for s in r["ssim"].get(f, [])] for f in formats}
    worst = max((r for rs, _ in passes for r in rs), key=lambda r: r["rss_mb"])
    by_size: dict[str, list[float]] = {}  # "jpeg 2048": the SSIM of that format at that size
    for r in results:
        for key, values in r["ssim"].items():
            if " " in key:
                by_size.setdefault(key, []).extend(values)
    return {
        # Per core: images over the CPU seconds the workers spent on them (all their threads;
        # CPU time rather than wall time, as other load on a shared machine stretches the
        # latter; for the floor, the preparation of its variant pixels is outside that clock,
        # not outside the wall time).
        "per_core": len(results) / sum(best.values()),
        "per_second": max(len(results) / wall for _, wall in passes),
        "peak_mb": worst["rss_mb"],
        "peak_of": worst["path"],
        "peak_held": worst["held_mb"],
        "ratio": {f: sum(r["out"][f] for r in results) / inputs for f in formats},
        "ssim": {f: (sum(v) / len(v), min(v)) for f, v in ssim.items() if v},
        "ssim_by_size": {key: sum(v) / len(v) for key, v in by_size.items()},
    }


def alone(mode: str, path: Path) -> float:
    """Peak RSS (MB) of a new process that handles one image."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_init_worker, maxtasksperchild=1) as pool:
        return pool.apply(_task, ((mode, str(path)),))["rss_mb"]


def idle_rss() -> float:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_init_worker) as pool:
        pool.apply(_ready, (0,))
        return pool.apply(_rss)


def _reset_peak() -> None:
    """Start VmHWM again from the current resident set (Linux: clear_refs, value 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _rss(field: str = "VmHWM:") -> float:
    """Peak resident set of this process, MB (``VmRSS:``: the current one). VmHWM rather than
    ru_maxrss: Linux carries ru_maxrss over exec, so a spawned worker would report its
    parent's peak."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith(field))
    return int(kb) / 1024


def _coefficient_mb(path: Path) -> float | None:
    """What libjpeg holds for a progressive JPEG until its last scan: every DCT coefficient,
    2 bytes each, 64 per 8x8 block of each component (at full resolution, whatever scale it
    decodes to). None for anything else (a baseline JPEG is decoded a band at a time)."""
    with Image.open(path) as image:
        if image.format != "JPEG" or not image.info.get("progressive"):
            return None
        layers = getattr(image, "layer", [])
        width, height = image.size
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)

    def up(value: int, step: int) -> int:  # value divided by step, rounded up
        return -(-value // step)

    blocks = 0
    for _id, h, v, _table in layers:  # libjpeg's arrays: whole MCUs of 8x8 blocks
        across, down = up(width * h, h_max * 8), up(height * v, v_max * 8)
        blocks += up(across, h) * h * up(down, v) * v
    return blocks * 64 * 2 / 2**20


# --- the choices: encoder settings and the resize, on the pipeline's own variant pixels ---------


def _banded_resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The resize the pipeline had before: LANCZOS in bands of 128 output rows (no full-height
    buffer for the horizontal pass), after the same reduce() as ``reducing_gap=3``."""
    mode = image.mode
    if mode in ("RGBA", "LA"):
        image = image.convert(mode[:-1] + "a")
    factor = (int(image.width / size[0] / 3) or 1, int(image.height / size[1] / 3) or 1)
    if factor != (1, 1):
        image = image.reduce(factor)
    out = Image.new(image.mode, size)
    scale = image.height / size[1]
    for top in range(0, size[1], 128):
        bottom = min(size[1], top + 128)
        box = (0, top * scale, image.width, bottom * scale)
        out.paste(image.resize((size[0], bottom - top), pipeline.LANCZOS, box=box), (0, top))
    return out.convert(mode) if out.mode != mode else out


def _save_bytes(image: Image.Image, fmt: str, params: dict) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _timed(fn, repeat: int = 2):
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()  # CPU of this process: less disturbed by other load
        value = fn()
        best = min(best, time.process_time() - started)
    return best, value


def choices(paths: list[Path]) -> None:
    """Print what each choice of the pipeline costs and gives, measured here and now."""
    from images.quality import LumaStats, ssim  # here: numpy, SSIM only

    sizes = sorted(set(PRESET.sizes), reverse=True)
    encodes = {
        "jpeg baseline+optimize": (
            "JPEG",
            {"quality": 82, "subsampling": "4:2:0", "optimize": True},
        ),
        "jpeg progressive": (
            "JPEG",
            {"quality": 82, "subsampling": "4:2:0", "optimize": True, "progressive": True},
        ),
        **{f"webp method {m}": ("WEBP", {"quality": 80, "method": m}) for m in (2, 3, 4)},
    }
    totals: dict[tuple[str, int], list[float]] = {}
    resize = {"one Image.resize": 0.0, "banded": 0.0}
    differing = []
    for path in paths:
        data = path.read_bytes()
        decoded = pipeline._decode(data, PRESET)
        assert decoded.image is not None
        target = pipeline._fit(*decoded.image.size, sizes[0])
        if decoded.image.size != target:
            one_s, one = _timed(
                functools.partial(decoded.image.resize, target, pipeline.LANCZOS, reducing_gap=3)
            )
            band_s, banded = _timed(functools.partial(_banded_resize, decoded.image, target))
            resize["one Image.resize"] += one_s
            resize["banded"] += band_s
            a, b = one.tobytes()[::97], banded.tobytes()[::97]
            differing.append(sum(x != y for x, y in zip(a, b, strict=True)) / len(a))
        for box, image in pipeline._cascade(decoded, PRESET):
            stats = LumaStats(pipeline._luma(image))
            for label, (fmt, params) in encodes.items():
                flat = pipeline._flatten(image) if fmt == "JPEG" else image
                seconds, payload = _timed(functools.partial(_save_bytes, flat, fmt, params))
                with Image.open(io.BytesIO(payload)) as decoded_variant:
                    score = ssim(stats, pipeline._luma(decoded_variant))
                row = totals.setdefault((label, box), [0.0, 0, 0.0, 0])
                row[0] += seconds
                row[1] += len(payload)
                row[2] += score
                row[3] += 1
    print(f"\nChoices, on {len(paths)} photos, CPU seconds of this process (best of 2):")
    print(f"{'':26}{'size':>6}{'CPU s':>9}{'MB out':>9}{'SSIM vs pixels':>16}")
    for (label, box), (seconds, nbytes, score, n) in totals.items():
        print(f"{label:26}{box:>6}{seconds:>9.2f}{nbytes / 2**20:>9.2f}{score / n:>16.4f}")
    print(
        "resize to the largest size: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in resize.items())
        + f"; pixels differing (sampled): {min(differing, default=0):.0%}-"
        f"{max(differing, default=0):.0%}"
    )

    filters(paths)
    decode_scales(paths)


RESAMPLING = {
    # label: (filter for the largest size, filter below it; "reduce" is a 2x2 box when exact)
    "LANCZOS at every size (the pipeline)": ("LANCZOS", "LANCZOS"),
    "LANCZOS, then BICUBIC below": ("LANCZOS", "BICUBIC"),
    "LANCZOS, then reduce(2) when exact": ("LANCZOS", "reduce"),
    "BICUBIC at every size": ("BICUBIC", "BICUBIC"),
}


def filters(paths: list[Path]) -> None:
    """The resampling filter of the cascade against CPU, bytes and SSIM of the encoded
    variants, each scored against the pipeline's own reference (the full decode resized
    straight to the size with LANCZOS), as the bench's SSIM figures are."""
    from images.quality import LumaStats, ssim  # here: numpy, SSIM only

    sizes = sorted(set(PRESET.sizes), reverse=True)
    rows = {label: {"cpu": 0.0, "n": 0} for label in RESAMPLING}
    for path in paths:
        data = path.read_bytes()
        decoded = pipeline._decode(data, PRESET)
        assert decoded.image is not None
        source = pipeline._to_srgb(decoded.image, decoded.profile, [])
        full = pipeline.Preset(sizes=(10**6,), measure_ssim=True)
        reference = pipeline._reference_source(data, pipeline._decode(data, full), full)
        refs: dict[tuple[int, int], LumaStats] = {}
        for label, (first, rest) in RESAMPLING.items():
            image, row = source, rows[label]
            for index, box in enumerate(sizes):
                target = pipeline._fit(*source.size, box)
                name = first if index == 0 else rest
                started = time.process_time()
                if name == "reduce" and image.width == 2 * target[0]:
                    image = image.reduce(2)
                elif image.size != target:
                    kind = pipeline.LANCZOS if name == "reduce" else Image.Resampling[name]
                    image = image.resize(target, kind, reducing_gap=pipeline.REDUCING_GAP)
                row["cpu"] += time.process_time() - started
                if target not in refs:
                    refs[target] = pipeline._reference(reference, 1, target)
                for fmt in PRESET.formats:
                    payload = pipeline._encode(image, fmt, PRESET, b"", largest=index == 0)
                    with Image.open(io.BytesIO(payload)) as encoded:
                        score = ssim(refs[target], pipeline._luma(encoded))
                    row[f"{fmt} bytes"] = row.get(f"{fmt} bytes", 0) + len(payload)
                    row[f"{fmt} ssim"] = row.get(f"{fmt} ssim", 0.0) + score
                row["n"] += 1
        del decoded, source, reference, refs
    base = rows[next(iter(RESAMPLING))]
    print(f"\nResampling of the cascade, on {len(paths)} photos, stored orientation, no colour:")
    print(f"{'':40}{'CPU s':>7}{'jpeg bytes':>12}{'SSIM':>8}{'webp bytes':>12}{'SSIM':>8}")
    for label, row in rows.items():
        print(f"{label:40}{row['cpu']:>7.2f}{_encode_cells(row, base, row['n'])}")


def _encode_cells(row: dict, base: dict, count: int) -> str:
    """Bytes (relative to ``base``) and mean SSIM of each format, as table cells."""
    cells = ""
    for fmt in PRESET.formats:
        ratio = row[f"{fmt} bytes"] / base[f"{fmt} bytes"]
        cells += f"{ratio:>11.3f}x{row[f'{fmt} ssim'] / count:>8.4f}"
    return cells


def _megapixels(path: Path) -> float:
    with Image.open(path) as image:
        return image.width * image.height / 1e6


def _decode_resized(
    data: bytes, preset: pipeline.Preset, gap: float, size: tuple[int, int]
) -> Image.Image:
    decoded = pipeline._decode(data, preset)
    assert decoded.image is not None
    return pipeline._resize(decoded.image, size, gap)


def decode_scales(paths: list[Path]) -> None:
    """How far a JPEG is DCT-scaled before the first resize: to the smallest scale that still
    covers the largest size (the pipeline), or one that leaves at least 2x for the LANCZOS
    (libvips's rule for shrink-on-load), then one LANCZOS or a box ``reduce()`` by the whole
    factor first. CPU of the decode and the resize to the largest size, the largest decoded
    buffer (what the memory figures pay), bytes and SSIM of the encodes against the pipeline's
    reference; photos that the rules decode alike are left out."""
    from images.quality import LumaStats, ssim  # here: numpy, SSIM only

    largest = PRESET.largest
    wide = pipeline.Preset(sizes=(2 * largest,))  # draft() to cover twice the size
    rules = {
        "covers the size (the pipeline)": (PRESET, pipeline.REDUCING_GAP),
        "leaves >= 2x (libvips), LANCZOS": (wide, pipeline.REDUCING_GAP),
        "leaves >= 2x, reduce() first": (wide, 1.0),
    }
    rows = {label: {"cpu": 0.0, "mb": 0.0} for label in rules}
    counted = 0
    for path in paths:
        data = path.read_bytes()
        decoded = {label: pipeline._decode(data, rule[0]) for label, rule in rules.items()}
        sizes = {label: d.image.size for label, d in decoded.items() if d.image is not None}
        if len(set(sizes.values())) == 1:
            continue  # both rules decode this photo at the same scale
        counted += 1
        full = pipeline.Preset(sizes=(10**6,), measure_ssim=True)
        reference = pipeline._reference_source(data, pipeline._decode(data, full), full)
        info = next(iter(decoded.values())).info
        target = pipeline._fit(info.width, info.height, largest)
        stored = (target[1], target[0]) if info.orientation >= 5 else target
        stats = LumaStats(pipeline._luma(pipeline._resize(reference, stored, gap=None)))
        for label, (preset, gap) in rules.items():
            make = functools.partial(_decode_resized, data, preset, gap, stored)
            seconds, image = _timed(make)
            image = pipeline._to_srgb(image, decoded[label].profile, [])
            row = rows[label]
            row["cpu"] += seconds
            width, height = sizes[label]
            row["mb"] = max(row["mb"], width * height * 4 / 2**20)  # RGB: 4 bytes a pixel
            for fmt in PRESET.formats:
                payload = pipeline._encode(image, fmt, PRESET, b"")
                with Image.open(io.BytesIO(payload)) as encoded:
                    score = ssim(stats, pipeline._luma(encoded))
                row[f"{fmt} bytes"] = row.get(f"{fmt} bytes", 0) + len(payload)
                row[f"{fmt} ssim"] = row.get(f"{fmt} ssim", 0.0) + score
        del decoded, reference, stats
    if not counted:
        return
    base = rows[next(iter(rules))]
    print(
        f"\nDCT scaling of the decode, on the {counted} JPEGs where the rules differ, at "
        f"{largest} px (CPU: decode and resize, best of 2):"
    )
    print(
        f"{'':34}{'CPU s':>7}{'decoded MB':>12}"
        f"{'jpeg bytes':>12}{'SSIM':>8}{'webp bytes':>12}{'SSIM':>8}"
    )
    for label, row in rows.items():
        cells = _encode_cells(row, base, counted)
        print(f"{label:34}{row['cpu']:>7.2f}{row['mb']:>12.0f}{cells}")


def stages(paths: list[Path]) -> None:
    """Where the CPU goes, per stage, for the pipeline and for pyvips: one process, each stage
    on the clock alone (libvips is lazy, so its decode, shrink-on-load, resize and colour
    transform are one figure: ``thumbnail_buffer`` made to finish with ``copy_memory``)."""
    os.environ["VIPS_CONCURRENCY"] = "1"
    import pyvips  # here: optional, only this figure and the pyvips mode need it

    pyvips.cache_set_max(0)
    sizes = sorted(set(PRESET.sizes), reverse=True)
    cpu: dict[str, float] = {"pipeline: decode": 0.0}  # the stages in the order they run
    for index, box in enumerate(sizes):
        cpu[f"pipeline: resize to {box}"] = 0.0
        if index == 0:
            cpu["pipeline: colour + rotate"] = 0.0
        cpu.update({f"pipeline: {fmt} {box}": 0.0 for fmt in PRESET.formats})
    cpu["pyvips: decode + resize + colour + rotate"] = 0.0
    for index, box in enumerate(sizes):
        if index:
            cpu[f"pyvips: resize to {box}"] = 0.0
        cpu.update({f"pyvips: {fmt} {box}": 0.0 for fmt in PRESET.formats})

    by_kind: dict[str, dict[str, float]] = {}  # kind of file -> column -> CPU seconds
    kind = ""

    def clock(label: str, fn):
        started = time.process_time()
        value = fn()
        seconds = time.process_time() - started
        cpu[label] = cpu.get(label, 0.0) + seconds
        columns = by_kind.setdefault(kind, dict.fromkeys(STAGE_COLUMNS, 0.0))
        columns[_stage_column(label)] += seconds
        return value

    for path in paths:
        data = path.read_bytes()
        kind = path.name.split("-")[1] if path.name.count("-") >= 2 else path.suffix[1:]
        decoded = clock("pipeline: decode", functools.partial(pipeline._decode, data, PRESET))
        info, image = decoded.info, decoded.image
        assert image is not None
        for index, box in enumerate(sizes):
            target = pipeline._fit(info.width, info.height, box)
            if index == 0 and info.orientation >= 5:
                target = target[1], target[0]
            if image.size != target:
                resize = functools.partial(pipeline._resize, image, target)
                image = clock(f"pipeline: resize to {box}", resize)
            if index == 0:
                colour = functools.partial(_colour_rotate, image, decoded)
                image = clock("pipeline: colour + rotate", colour)
            for fmt in PRESET.formats:
                encode = functools.partial(
                    pipeline._encode, image, fmt, PRESET, decoded.exif, largest=index == 0
                )
                clock(f"pipeline: {fmt} {box}", encode)
        del decoded, image
        header = pyvips.Image.new_from_buffer(data, "", access="sequential")
        profile = {"export_profile": "srgb"} if header.get_typeof("icc-profile-data") else {}
        thumbnail = functools.partial(
            pyvips.Image.thumbnail_buffer, data, sizes[0], height=sizes[0], size="down", **profile
        )
        thumb = clock(
            "pyvips: decode + resize + colour + rotate", functools.partial(_finished, thumbnail)
        )
        for index, box in enumerate(sizes):
            if index:
                smaller = functools.partial(thumb.thumbnail_image, box, height=box, size="down")
                thumb = clock(f"pyvips: resize to {box}", functools.partial(_finished, smaller))
            jpeg = functools.partial(
                thumb.jpegsave_buffer,
                Q=PRESET.jpeg_quality,
                subsample_mode="on",
                optimize_coding=True,
                interlace=PRESET.jpeg_progressive,
                keep="none",
            )
            clock(f"pyvips: jpeg {box}", jpeg)
            method = PRESET.webp_method if index == 0 else PRESET.webp_method_smaller
            webp = functools.partial(
                thumb.webpsave_buffer, Q=PRESET.webp_quality, effort=method, keep="none"
            )
            clock(f"pyvips: webp {box}", webp)
    totals = {
        who: sum(v for k, v in cpu.items() if k.startswith(who)) for who in ("pipeline", "pyvips")
    }
    print(f"\nStages, on {len(paths)} photos, CPU seconds of one process (one pass):")
    for label, seconds in cpu.items():
        share = seconds / totals[label.split(":")[0]]
        print(f"  {label:44}{seconds:>8.2f}{share:>7.0%}")
    print("  " + ", ".join(f"{who} {total:.2f} s" for who, total in totals.items())
          + f"; pyvips / pipeline CPU {totals['pyvips'] / totals['pipeline']:.2f}")  # fmt: skip
    print("\nThe same by kind of file (pyvips's decode and first resize are one figure):")
    print(f"  {'':12}{'photos':>7}" + "".join(f"{column:>20}" for column in STAGE_COLUMNS))
    counts = {k: sum(1 for p in paths if p.name.split("-")[1:2] == [k]) for k in by_kind}
    for name, columns in [*by_kind.items(), ("all", _column_totals(by_kind))]:
        count = counts.get(name) or len(paths)
        print(f"  {name:12}{count:>7}" + "".join(f"{v:>20.2f}" for v in columns.values()))


STAGE_COLUMNS = (
    "ours decode",
    "ours resizes",
    "ours encodes",
    "pyvips dec+resizes",
    "pyvips encodes",
)


def _stage_column(label: str) -> str:
    who, stage = label.split(": ", 1)
    if stage.startswith(("jpeg", "webp")):
        return f"{'ours' if who == 'pipeline' else 'pyvips'} encodes"
    if who == "pyvips":
        return "pyvips dec+resizes"
    return "ours decode" if stage == "decode" else "ours resizes"  # colour + rotate included


def _column_totals(by_kind: dict[str, dict[str, float]]) -> dict[str, float]:
    return {c: sum(columns[c] for columns in by_kind.values()) for c in STAGE_COLUMNS}


def _finished(make):
    """A libvips image computed into memory: its pipeline runs now, on the clock."""
    return make().copy_memory()


def _colour_rotate(image: Image.Image, decoded) -> Image.Image:
    image = pipeline._to_srgb(image, decoded.profile, [])
    fix = pipeline._ORIENTATION_FIX.get(decoded.info.orientation)
    return image.transpose(fix) if fix is not None else image


# --- report ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 smaller photos")
    parser.add_argument("--photos", help="folder with the photos (default: scikit-image's)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    parser.add_argument("--skip-choices", action="store_true", help="not the choices' figures")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts (default 1,2)"
    )
    parser.add_argument(
        "--stages", action="store_true", help="only the CPU per stage, pipeline and pyvips"
    )
    parser.add_argument(
        "--filters", action="store_true", help="only the resampling figures of the choices"
    )
    args = parser.parse_args()
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    worker_counts = [int(count) for count in args.workers.split(",")]
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # 100 MP is on purpose

    items = corpus_spec(args.quick)
    print(f"Corpus: {len(items)} photos{'' if args.quick else ' + 1 of 100 MP'} in {CACHE}")
    paths = build_corpus(items, args.photos)
    huge = build_corpus([HUGE], args.photos)[0]
    corpus = paths  # the 100 MP JPEG runs alone in a new process, after the passes
    if args.stages:
        stages(paths)
        return 0
    if args.filters:
        jpegs = [p for p in paths if p.suffix == ".jpg"]
        filters(jpegs[:8])
        decode_scales([p for p in jpegs if _megapixels(p) >= 10])
        return 0
    total_mp = 0.0
    for path in corpus:
        with Image.open(path) as image:
            total_mp += image.width * image.height / 1e6
    total_mb = sum(p.stat().st_size for p in corpus) / 2**20
    print(f"{len(corpus)} images, {total_mp:.0f} MP, {total_mb:.0f} MB; cores: {os.cpu_count()}")

    passes: dict[tuple[str, int], list] = {}
    rounds = 1 if args.quick else 2
    for round_ in range(rounds):
        for workers in worker_counts:
            for mode in modes:
                if mode.endswith("+ssim") and round_:
                    continue  # its figures are the quality; one pass gives them
                passes.setdefault((mode, workers), []).append(run(mode, corpus, workers))
                results, wall = passes[mode, workers][-1]
                print(
                    f"  pass {round_ + 1}: {mode:14} {workers} worker(s) "
                    f"{len(results) / wall:.2f} images/s",
                    flush=True,
                )
    table = {key: summarize(runs) for key, runs in passes.items()}
    idle = idle_rss()
    huge_modes = [m for m in ("pipeline", "pyvips", "naive", "pipeline+ssim") if m in modes]
    huge_rss = {mode: alone(mode, huge) for mode in huge_modes}

    print()
    print(f"{'':16}{'workers':>8}{'img/s/core':>12}{'img/s pool':>12}{'peak MB':>9}"
          f"{'jpeg out/in':>13}{'webp out/in':>13}{'SSIM jpeg':>11}{'SSIM webp':>11}")  # fmt: skip
    for (mode, workers), stats in table.items():
        ssim = stats["ssim"]
        cells = [f"{ssim[f][0]:.4f}" if f in ssim else "-" for f in ("jpeg", "webp")]
        print(
            f"{mode:16}{workers:>8}{stats['per_core']:>12.2f}{stats['per_second']:>12.2f}"
            f"{stats['peak_mb']:>9.0f}"
            f"{stats['ratio']['jpeg']:>13.3f}{stats['ratio']['webp']:>13.3f}"
            f"{cells[0]:>11}{cells[1]:>11}"
        )
    for (mode, workers), stats in table.items():
        if workers == worker_counts[0]:
            print(f"Peak of {mode}: {stats['peak_mb']:.0f} MB, {Path(stats['peak_of']).name}")
    ours = table.get(("pipeline", worker_counts[0]))
    if ours is not None:
        worst = Path(ours["peak_of"])
        coefficients = _coefficient_mb(worst)
        print(
            f"  the pipeline's worst image: the worker held {ours['peak_held']:.0f} MB before it; "
            f"alone in a new process it peaks at {alone('pipeline', worst):.0f} MB"
            + (
                f", of which libjpeg's DCT coefficients (progressive) are {coefficients:.0f} MB"
                if coefficients
                else ""
            )
        )
    ours_q, vips_q = table.get(("pipeline+ssim", 1)), table.get(("pyvips+ssim", 1))
    if ours_q is not None and vips_q is not None:
        print("\nSSIM by size (the checks below take the mean over the sizes):")
        keys = sorted(ours_q["ssim_by_size"], key=lambda k: (-int(k.split()[1]), k))
        for key in keys:
            ours_s, vips_s = ours_q["ssim_by_size"][key], vips_q["ssim_by_size"].get(key)
            if vips_s is not None:
                gap = ours_s - vips_s
                print(f"  {key:10} pipeline {ours_s:.4f}  pyvips {vips_s:.4f}  {gap:+.4f}")
    for workers in worker_counts:
        if ("floor", workers) in table and ("pyvips", workers) in table:
            ceiling = table["floor", workers]["per_core"] / table["pyvips", workers]["per_core"]
            print(
                f"Ceiling ({workers} w): the floor (the pipeline's decode and the same encodes, "
                f"nothing else) is {ceiling:.2f}x pyvips per core: the most the pipeline could "
                "reach were its resizes, colour conversion and rotation free."
            )
    print(f"\nA spawned worker with nothing done yet: {idle:.0f} MB.")
    print("100 MP JPEG alone in a new process: " + ", ".join(
        f"{mode} {mb:.0f} MB" for mode, mb in huge_rss.items()))  # fmt: skip
    print(f"Load average during the run (1, 5, 15 min): {os.getloadavg()}")
    if not args.skip_choices:
        choices([p for p in paths if p.suffix == ".jpg"][:4])

    checks = []
    for workers in worker_counts:
        ours = table.get(("pipeline", workers))
        if ours is None:
            continue
        if ("naive", workers) in table and ("floor", workers) in table:
            naive, floor = table["naive", workers], table["floor", workers]
            speedup = ours["per_core"] / naive["per_core"]
            of_floor = ours["per_core"] / floor["per_core"]
            checks += [
                (f"throughput >= 1.15x naive ({workers} w)", speedup >= 1.15, f"{speedup:.2f}x"),
                (f"throughput >= 70% of floor ({workers} w)", of_floor >= 0.70, f"{of_floor:.0%}"),
            ]
        if ("pyvips", workers) in table:
            vips = table["pyvips", workers]
            ratio = ours["per_core"] / vips["per_core"]
            checks.append(
                (f"throughput >= 1.2x pyvips ({workers} w)", ratio >= 1.2, f"{ratio:.2f}x")
            )
        checks.append(
            (
                f"peak memory per worker <= 100 MB ({workers} w)",
                ours["peak_mb"] <= 100,
                f"{ours['peak_mb']:.0f} MB",
            )
        )
    if ("pyvips", 1) in table:
        for fmt in PRESET.formats:
            ours_b, vips_b = table["pipeline", 1]["ratio"][fmt], table["pyvips", 1]["ratio"][fmt]
            checks.append(
                (
                    f"{fmt} bytes <= pyvips (+0.5 %)",
                    ours_b <= vips_b * 1.005,
                    f"{ours_b / vips_b:.3f}x ({ours_b:.3f} vs {vips_b:.3f} of the input)",
                )
            )
    if "pipeline" in huge_rss:
        checks.append(
            (
                "100 MP JPEG <= 120 MB",
                huge_rss["pipeline"] <= 120,
                f"{huge_rss['pipeline']:.0f} MB"
                + (f" (pyvips {huge_rss['pyvips']:.0f} MB)" if "pyvips" in huge_rss else ""),
            )
        )
    if ("pipeline+ssim", 1) in table:
        ours_q = table["pipeline+ssim", 1]["ssim"]
        vips_q = table.get(("pyvips+ssim", 1), {}).get("ssim", {})
        for fmt, (mean, low) in ours_q.items():
            checks.append((f"mean SSIM {fmt} >= 0.95", mean >= 0.95, f"{mean:.4f} (min {low:.4f})"))
            if fmt in vips_q:
                gap = mean - vips_q[fmt][0]
                checks.append(
                    (
                        f"SSIM {fmt} within 0.002 of pyvips",
                        gap >= -0.002,
                        f"{gap:+.4f} ({mean:.4f} vs {vips_q[fmt][0]:.4f})",
                    )
                )
    print()
    for label, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label:40} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
