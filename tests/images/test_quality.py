"""The SSIM of images.quality, checked against the formula computed window by window.

Plain pytest and numpy, no Django: ``python -m pytest tests/images/test_quality.py -p no:django
--noconftest`` runs it alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from images.quality import LumaStats, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _by_window(a: np.ndarray, b: np.ndarray) -> float:
    """The module's definition, slowly: every window wholly inside the image, uniform weights,
    sample (n - 1) variances and covariance, the mean of the map."""
    window = max(1, min(8, *a.shape))
    n = window * window
    a, b = a.astype(np.float64), b.astype(np.float64)
    scores = []
    for top in range(a.shape[0] - window + 1):
        for left in range(a.shape[1] - window + 1):
            x = a[top : top + window, left : left + window]
            y = b[top : top + window, left : left + window]
            mx, my = x.mean(), y.mean()
            vx = ((x - mx) ** 2).sum() / max(n - 1, 1)
            vy = ((y - my) ** 2).sum() / max(n - 1, 1)
            cov = ((x - mx) * (y - my)).sum() / max(n - 1, 1)
            scores.append(
                (2 * mx * my + C1) * (2 * cov + C2) / ((mx * mx + my * my + C1) * (vx + vy + C2))
            )
    return float(np.mean(scores))


def _pair(shape: tuple[int, int], noise: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Extremes included: the sums of squares and products are largest at 255.
    a = rng.choice(np.array([0, 255, 128, 7], dtype=np.uint8), shape)
    a[::3] = rng.integers(0, 256, (len(a[::3]), shape[1]), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("shape", [(40, 57), (9, 8), (5, 31), (1, 1), (16, 3)])
def test_ssim_equals_the_formula_window_by_window(shape):
    a, b = _pair(shape, noise=40)
    got = ssim(Image.fromarray(a, "L"), Image.fromarray(b, "L"))
    # 1e-6: the module keeps window means and variances as float32
    assert got == pytest.approx(_by_window(a, b), abs=1e-6)


def test_identical_images_score_one_and_a_worse_copy_scores_lower():
    a, slightly = _pair((64, 96), noise=6)
    _, badly = _pair((64, 96), noise=60)
    reference = LumaStats(Image.fromarray(a, "L"))  # one reference for several candidates
    assert ssim(reference, Image.fromarray(a, "L")) == pytest.approx(1.0)
    near = ssim(reference, Image.fromarray(slightly, "L"))
    far = ssim(reference, Image.fromarray(badly, "L"))
    assert 1.0 > near > far


def test_a_large_plane_keeps_its_sums_exact():
    # 2048 x 1536 of saturated values: integral images of these sums reach 2e11, beyond what
    # float32 holds exactly; the windowed sums must still be exact (a constant image is 1.0).
    flat = Image.new("L", (2048, 1536), 255)
    assert ssim(flat, flat) == 1.0
    a, b = _pair((300, 2048), noise=20)
    rows = slice(100, 116)  # a strip checked against the formula
    whole = LumaStats(Image.fromarray(a, "L"))
    strip = _by_window(a[rows], b[rows])
    got = ssim(Image.fromarray(a[rows], "L"), Image.fromarray(b[rows], "L"))
    assert got == pytest.approx(strip, abs=1e-6)
    assert whole.mean.shape == (300 - 7, 2048 - 7)


def test_refuses_other_modes_and_sizes():
    grey = Image.new("L", (10, 10))
    with pytest.raises(ValueError, match="luminance"):
        LumaStats(Image.new("RGB", (10, 10)))
    with pytest.raises(ValueError, match="sizes differ"):
        ssim(grey, Image.new("L", (10, 11)))
