"""Seam metric of masked edits (frgd.metrics.seams): oracles on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from frgd.metrics.seams import border_pairs, seam_excess


def _disc(size: int = 64, r: float = 14.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (np.hypot(xx - size / 2, yy - size / 2) <= r).astype(np.float32)


def test_a_result_equal_to_the_base_has_no_seam() -> None:
    base = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert seam_excess(base, base, _disc()) == 0.0


def test_a_shifted_inside_on_a_flat_base_reads_the_shift() -> None:
    base = np.full((64, 64), 100 / 255)  # float images are 0..1, the figure is in 0..255 levels
    m = _disc()
    for c in (5.0, -7.0):
        assert seam_excess(base + c / 255 * m, base, m) == pytest.approx(abs(c))
        # the inside's own statistic (3 px in) sees no step: the shift is flat there
        assert seam_excess(base + c / 255 * m, base, m, inset=3) == pytest.approx(0.0)


def test_a_blend_reads_below_zero_and_a_foreign_texture_reads_inside_too() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.08, (64, 64))
    m = _disc()
    smooth = np.where(m > 0.5, base.mean(), base)  # a flat patch joins a textured base more softly than it steps
    assert seam_excess(smooth, base, m) < 0
    other = np.where(m > 0.5, rng.normal(0.5, 0.16, (64, 64)), base)  # rougher texture inside: at the border and in
    assert seam_excess(other, base, m) > 5 and seam_excess(other, base, m, inset=3) > 5


def test_border_pairs_and_degenerate_masks() -> None:
    m = np.zeros((8, 8))
    m[2:5, 3:6] = 1  # a 3x3 square: 3 pairs on each of its 4 sides
    hx, vy = border_pairs(m)
    assert hx.shape == (8, 7) and vy.shape == (7, 8) and hx.sum() == 6 and vy.sum() == 6
    assert border_pairs(m, inset=1)[0].sum() == 2  # the 1x1 centre
    img = np.zeros((8, 8))
    assert np.isnan(seam_excess(img, img, np.zeros((8, 8))))
    assert np.isnan(seam_excess(img, img, np.ones((8, 8))))
    with pytest.raises(ValueError):
        seam_excess(img, img, np.zeros((7, 8)))
