"""Seams of a masked edit: how much sharper the step across the mask's border is than the image it was pasted into.

A region resampled under a mask is seamless when, across the mask's border, the result changes no more than the
image it replaces does there. :func:`seam_excess` takes every pair of 4-neighbour pixels that the hard mask
(``mask > 0.5``) separates, one inside and one outside, and returns the mean of ``|result(p) - result(q)|`` minus the
mean of ``|base(p) - base(q)|`` over those pairs, on BT.601 luma in 0..255 levels (:func:`.psnr_ssim.to_y`). ``base``
is what the result is compared with across the border: the image the region was pasted into, or the ground truth.

* 0: the border steps as much as the base does there (the result itself, or any result equal to the base on both
  sides of every border pair);
* ``c``: a flat base whose inside was shifted by ``c`` levels reads ``c``: a visible edge;
* below 0: smoother than the base across the border (a blend averages the two sides).

Content that differs from the base inside the mask (another eye, other pores) adds to it too, so the figure is read
against the same statistic on pairs a few pixels inside the border (:func:`seam_excess` with ``inset``): a seam
is an excess at the border that the inside does not have.
"""

from __future__ import annotations

import numpy as np

from .psnr_ssim import to_y

__all__ = ["border_pairs", "seam_excess"]


def _erode(hard: np.ndarray, iterations: int) -> np.ndarray:
    out = hard.copy()
    for _ in range(iterations):
        p = np.pad(out, 1, mode="edge")
        out = out & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return out


def border_pairs(mask: np.ndarray, inset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 4-neighbour pairs that ``mask > 0.5`` (eroded by ``inset`` px) separates, as two boolean arrays: horizontal
    pairs ``(H, W-1)`` (pixel ``(y, x)`` with ``(y, x+1)``) and vertical pairs ``(H-1, W)``."""
    hard = np.asarray(mask) > 0.5
    if hard.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {hard.shape}")
    if inset > 0:
        hard = _erode(hard, int(inset))
    return hard[:, 1:] != hard[:, :-1], hard[1:, :] != hard[:-1, :]


def seam_excess(result: np.ndarray, base: np.ndarray, mask: np.ndarray, inset: int = 0) -> float:
    """Mean luma step across the border of ``mask`` in ``result`` minus that in ``base`` (levels, 0..255).

    Args:
        result, base: ``(H, W, 3)`` RGB or ``(H, W)`` luma; uint8 as 0..255, float as 0..1 (as :func:`to_y`).
        mask: ``(H, W)``, 1 = the edited region (thresholded at 0.5).
        inset: measure at the border of the mask eroded by this many pixels (the inside's own statistic).

    Returns:
        The excess in levels; ``nan`` when the mask separates no pair (empty or full).
    """
    if np.shape(result)[:2] != np.shape(base)[:2] or np.shape(result)[:2] != np.shape(mask)[:2]:
        raise ValueError(f"shapes differ: {np.shape(result)}, {np.shape(base)}, {np.shape(mask)}")
    hx, vy = border_pairs(mask, inset)
    if not hx.any() and not vy.any():
        return float("nan")
    r, b = to_y(result), to_y(base)
    steps_r = np.concatenate([np.abs(np.diff(r, axis=1))[hx], np.abs(np.diff(r, axis=0))[vy]])
    steps_b = np.concatenate([np.abs(np.diff(b, axis=1))[hx], np.abs(np.diff(b, axis=0))[vy]])
    return float(steps_r.mean() - steps_b.mean())
