"""Detail relative to the ground truth: how much fine detail a restored face carries (mush reads far below 1).

``detail_ratio(out, gt)`` is the spectral energy of ``out``'s luma in the radial frequency band
:data:`DETAIL_BAND` (1/8 to 1/2 cycles per pixel) over that of ``gt``. The band starts at the Nyquist frequency of a
x4 input (an octave above that of a x8 input), so almost none of it comes from the degraded face: whatever a
restoration has there, it made. The luma is BT.601 Y (:func:`.psnr_ssim.to_y`), its mean removed, times a separable
Hann window (no wrap-around edge at the border); the same window for both images, so a ratio of 1 means as much fine
detail as the true face. A blurred or smeared face reads far below 1 (the bicubic upscale on 24 evaluation faces:
0.001 at x8, 0.047 at x4); noise, ringing and cracks add energy too, so a ratio near 1 is necessary for a sharp face,
not sufficient: it is read next to PSNR, the judge and the grid. :func:`detail_score` is the geometric mean over
faces (each face weighs the same whatever its own energy).
"""

from __future__ import annotations

import functools

import numpy as np

from .psnr_ssim import to_y

__all__ = ["DETAIL_BAND", "band_energy", "detail_ratio", "detail_score"]

DETAIL_BAND: tuple[float, float] = (1 / 8, 1 / 2)
"""Radial frequency band of :func:`band_energy`, in cycles per pixel (inclusive)."""


@functools.cache
def _window_and_band(h: int, w: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return win, (r >= lo) & (r <= hi)


def band_energy(img: np.ndarray, band: tuple[float, float] = DETAIL_BAND) -> float:
    """Energy of the Hann-windowed, mean-removed luma of ``img`` ``(H, W, 3)`` RGB or ``(H, W)`` Y (uint8 as
    0..255, float as 0..1) in the radial frequency ``band`` (cycles per pixel): ``sum |FFT|^2`` over the band."""
    y = to_y(img)
    win, mask = _window_and_band(y.shape[0], y.shape[1], float(band[0]), float(band[1]))
    spec = np.fft.fft2((y - y.mean()) * win)
    return float(np.sum(np.abs(spec[mask]) ** 2))


def detail_ratio(out: np.ndarray, gt: np.ndarray, band: tuple[float, float] = DETAIL_BAND) -> float:
    """:func:`band_energy` of ``out`` over that of ``gt`` (same shape); ``nan`` when ``gt`` has none."""
    if np.shape(out)[:2] != np.shape(gt)[:2]:
        raise ValueError(f"shapes differ: {np.shape(out)} vs {np.shape(gt)}")
    ref = band_energy(gt, band)
    return band_energy(out, band) / ref if ref > 0 else float("nan")


def detail_score(outs: list[np.ndarray], gts: list[np.ndarray], band: tuple[float, float] = DETAIL_BAND) -> float:
    """Geometric mean of :func:`detail_ratio` over the pairs (finite, positive ratios only; ``nan`` if none)."""
    ratios = np.array([detail_ratio(o, g, band) for o, g in zip(outs, gts, strict=True)])
    ok = ratios[np.isfinite(ratios) & (ratios > 0)]
    return float(np.exp(np.mean(np.log(ok)))) if ok.size else float("nan")
