"""PSNR / SSIM as the SR literature computes them: Y of BT.601 YCbCr (MATLAB ``rgb2ycbcr``), shave, float64.

Matches BasicSR ``calculate_psnr``/``calculate_ssim`` with ``test_y_channel=True`` and the MATLAB ``ssim_index``
(11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["rgb2ycbcr_y", "to_y", "psnr_y", "ssim_y", "psnr", "ssim"]


def _unit(arr: np.ndarray) -> np.ndarray:
    """uint8 (0..255) / uint16 (0..65535) / float (0..1) -> float64 on 0..1."""
    x = arr.astype(np.float64)
    if arr.dtype == np.uint16:
        return x / 65535.0
    if np.issubdtype(arr.dtype, np.integer):
        return x / 255.0
    return x


def rgb2ycbcr_y(img: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` (BT.601, studio range) as float64 in [16, 235] (scale of 0..255).

    ``img``: ``(H, W, 3)`` RGB, uint8 (0..255), uint16 (0..65535) or float in [0, 1]. Returns ``(H, W)`` float64,
    not rounded.
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb2ycbcr_y expects (H, W, 3), got {arr.shape}")
    x = _unit(arr)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2])


def to_y(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB -> Y (0..255 float64); ``(H, W)`` or ``(H, W, 1)`` single-channel images are taken as Y.

    uint8 is read as 0..255, uint16 as 0..65535, float as 0..1.
    """
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        y = arr.astype(np.float64)
        if arr.dtype == np.uint16:
            return y / 257.0  # 65535 / 255
        return y if np.issubdtype(arr.dtype, np.integer) else y * 255.0
    return rgb2ycbcr_y(arr)


def _shave(a: np.ndarray, shave: int) -> np.ndarray:
    return a[shave:-shave, shave:-shave] if shave > 0 else a


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"image sizes differ: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two same-shape float arrays on a 0..``peak`` scale; ``inf`` for identical inputs."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def psnr_y(a: np.ndarray, b: np.ndarray, shave: int = 0) -> float:
    """PSNR on Y (0..255, not rounded), ``shave`` px cropped from each border; ``inf`` when identical."""
    _check_pair(a, b)
    return psnr(_shave(to_y(a), shave), _shave(to_y(b), shave))


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (the 2-D window is its outer product)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two 2-D float arrays (0..``peak``), Gaussian 11x11 sigma 1.5 window, 'valid' filtering."""
    from scipy.ndimage import correlate1d  # here, not at import: importing frgd.metrics must stay cheap (niqe.py)

    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"ssim expects two equal 2-D arrays, got {x.shape} and {y.shape}")
    if min(x.shape) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 after shaving, got {x.shape}")
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    g = _gaussian_1d()
    r = (g.size - 1) // 2

    def filt(z: np.ndarray) -> np.ndarray:
        # separable 11x11 Gaussian, 'valid' part only (same values as conv2 'valid' up to float64 round-off)
        z = correlate1d(z, g, axis=0, mode="constant")
        z = correlate1d(z, g, axis=1, mode="constant")
        return z[r:-r, r:-r]

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    m = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(m.mean())


def ssim_y(a: np.ndarray, b: np.ndarray, shave: int = 0) -> float:
    """SSIM on Y (0..255 float64), ``shave`` px cropped from each border; 1.0 for identical images."""
    _check_pair(a, b)
    return ssim(_shave(to_y(a), shave), _shave(to_y(b), shave))
