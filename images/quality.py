"""Structural similarity (SSIM) between a variant and its reference, on luminance.

Method (Wang, Bovik, Sheikh, Simoncelli 2004, "Image quality assessment: from error visibility
to structural similarity"), with the choices that make our numbers reproducible:

- both images are 8-bit sRGB flattened onto white, reduced to luminance by Pillow's
  ``convert("L")`` (ITU-R 601 luma: 0.299 R + 0.587 G + 0.114 B);
- statistics over every 8x8 window (sliding by one pixel, uniform weights, exact sums taken by
  doubling spans along each axis: about 4x faster than integral images for the same numbers,
  bit for bit), only windows that lie wholly inside the image;
- sample (n - 1) variances and covariance, K1 = 0.01, K2 = 0.03, L = 255;
- the score is the mean of the SSIM map: 1.0 means identical, and 0.95 or more is an encode a
  person does not tell apart from the reference at normal viewing size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WINDOW = 8
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _window_sums(plane: np.ndarray, window: int) -> np.ndarray:
    """Sum of every window x window block of ``plane`` (valid positions only), as float64.

    ``plane`` holds integers: 8-bit values or the product of two. Every partial sum is then an
    integer of at most 64 x 255 x 255 < 2**24, which float32 holds exactly, so the sums are
    taken in float32 (half the memory traffic of float64) and equal, bit for bit, what an
    integral image in float64 gives. Each axis is summed by doubling (spans of 1, 2, 4, 8
    values): three vector additions per axis for the 8-wide window, where a running sum
    (``cumsum``) costs a slow sequential pass and a padded full-size copy."""
    sums = plane if plane.dtype == np.float32 else plane.astype(np.float32)
    for axis in (1, 0):
        sums = _sums_along(sums, window, axis)
    return sums.astype(np.float64)


def _sums_along(values: np.ndarray, window: int, axis: int) -> np.ndarray:
    """Sums of ``window`` consecutive values along ``axis`` (0 or 1 of a 2-D array)."""

    def part(array: np.ndarray, start: int, stop: int | None) -> np.ndarray:
        index = [slice(None), slice(None)]
        index[axis] = slice(start, stop)
        return array[tuple(index)]

    positions = values.shape[axis] - window + 1
    total: np.ndarray | None = None
    span, step, covered = values, 1, 0  # span: sums of `step` consecutive values
    while covered < window:
        if (window - covered) & step:  # add the spans of `step` values starting `covered` on
            piece = part(span, covered, covered + positions)
            total = piece.copy() if total is None else np.add(total, piece, out=total)
            covered += step
        if covered < window:
            span = np.add(part(span, 0, span.shape[axis] - step), part(span, step, None))
            step *= 2
    assert total is not None
    return total


class LumaStats:
    """The window statistics of one image, kept so that several encodes of the same size can be
    compared with one reference without recomputing its half of the sums."""

    def __init__(self, luma: Image.Image) -> None:
        if luma.mode != "L":
            raise ValueError(f"SSIM is computed on luminance ('L'), got {luma.mode!r}")
        self.size = luma.size
        self.window = max(1, min(WINDOW, *luma.size))
        self.plane = np.asarray(luma)  # uint8; sums are taken in float64
        n = self.window * self.window
        self.n = n
        plane = self.plane.astype(np.float32)
        mean = _window_sums(plane, self.window) / n
        squares = _window_sums(np.square(plane), self.window)
        self.variance = ((squares - n * mean * mean) / max(n - 1, 1)).astype(np.float32)
        self.mean = mean.astype(np.float32)


def ssim(reference: LumaStats | Image.Image, candidate: Image.Image) -> float:
    """Mean SSIM of ``candidate`` against ``reference`` (both 'L', same size)."""
    ref = reference if isinstance(reference, LumaStats) else LumaStats(reference)
    if candidate.size != ref.size:
        raise ValueError(f"sizes differ: {candidate.size} != {ref.size}")
    cand = LumaStats(candidate)
    n = ref.n
    # The formula's arithmetic in the same order, in place where that changes no result, so
    # that a 2048 px comparison holds a few full-size arrays rather than a dozen.
    ref_mean = ref.mean.astype(np.float64)
    means = ref_mean * cand.mean  # mean_x * mean_y
    covariance = _window_sums(np.multiply(ref.plane, cand.plane, dtype=np.float32), ref.window)
    covariance -= n * means
    covariance /= max(n - 1, 1)
    numerator = np.multiply(means, 2, out=means)
    numerator += _C1
    covariance *= 2
    covariance += _C2
    numerator *= covariance
    del covariance
    denominator = np.square(ref_mean, out=ref_mean)
    denominator += np.square(cand.mean.astype(np.float64))
    denominator += _C1
    spread = ref.variance.astype(np.float64)
    spread += cand.variance
    spread += _C2
    denominator *= spread
    numerator /= denominator
    return float(np.mean(numerator))
