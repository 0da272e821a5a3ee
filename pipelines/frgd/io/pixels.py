"""Pixel value conversions shared by loading, saving and :mod:`frgd.tensor`: uint8 / uint16 / float ``[0, 1]``."""

from __future__ import annotations

import numpy as np


def to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float array -> float32 in ``[0, 1]`` (same shape)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


def from_float(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float ``[0, 1]`` array -> ``dtype``: uint8 / uint16 rounded and clipped to their range, floats cast as they are
    (the inverse of :func:`to_float`, for writing float work back into an image of the source's depth)."""
    if dtype == np.uint8:
        return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.round(arr * 65535.0), 0, 65535).astype(np.uint16)
    return arr.astype(dtype, copy=False)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float ``[0, 1]`` array -> uint8 with rounding (same shape)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.round(np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0) * 255.0).astype(np.uint8)


def marked(layer: np.ndarray) -> np.ndarray:
    """Where a painted layer (a mask, a damage layer) marks: ``(H, W)`` bool, above one half (float layers in
    ``[0, 1]``; uint8 layers 0..255: above 127)."""
    d = np.asarray(layer)
    return d > (127 if d.dtype == np.uint8 else 0.5)
