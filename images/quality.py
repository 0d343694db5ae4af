"""Structural similarity (SSIM) between a variant and its reference, on luminance.

Method (Wang, Bovik, Sheikh, Simoncelli 2004, "Image quality assessment: from error visibility
to structural similarity"), with the choices that make our numbers reproducible:

- both images are 8-bit sRGB flattened onto white, reduced to luminance by Pillow's
  ``convert("L")`` (ITU-R 601 luma: 0.299 R + 0.587 G + 0.114 B);
- statistics over every 8x8 window (sliding by one pixel, uniform weights, computed from
  integral images so the cost does not depend on the window size), only windows that lie wholly
  inside the image;
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
    """Sum of every window x window block of ``plane`` (valid positions only)."""
    integral = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1), dtype=np.float64)
    np.cumsum(plane, axis=0, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return (
        integral[window:, window:]
        - integral[:-window, window:]
        - integral[window:, :-window]
        + integral[:-window, :-window]
    )


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
        plane = self.plane.astype(np.float64)
        mean = _window_sums(plane, self.window) / n
        squares = _window_sums(plane * plane, self.window)
        self.variance = ((squares - n * mean * mean) / max(n - 1, 1)).astype(np.float32)
        self.mean = mean.astype(np.float32)


def ssim(reference: LumaStats | Image.Image, candidate: Image.Image) -> float:
    """Mean SSIM of ``candidate`` against ``reference`` (both 'L', same size)."""
    ref = reference if isinstance(reference, LumaStats) else LumaStats(reference)
    if candidate.size != ref.size:
        raise ValueError(f"sizes differ: {candidate.size} != {ref.size}")
    cand = LumaStats(candidate)
    n = ref.n
    cross = _window_sums(ref.plane.astype(np.float64) * cand.plane, ref.window)
    means = ref.mean.astype(np.float64) * cand.mean
    covariance = (cross - n * means) / max(n - 1, 1)
    numerator = (2 * means + _C1) * (2 * covariance + _C2)
    denominator = (ref.mean.astype(np.float64) ** 2 + cand.mean.astype(np.float64) ** 2 + _C1) * (
        ref.variance.astype(np.float64) + cand.variance + _C2
    )
    return float(np.mean(numerator / denominator))
