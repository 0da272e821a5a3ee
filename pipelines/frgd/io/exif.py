"""EXIF: the tag numbers we read and write, and the orientation applied on loading."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

ORIENTATION = 0x0112
IMAGE_DESCRIPTION = 0x010E
SOFTWARE = 0x0131
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
TIFF_BITS_PER_SAMPLE = 258


def read_orientation(im: Any) -> int:
    """EXIF orientation tag (1..8), 1 when absent or unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = int(im.getexif().get(ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF must not stop loading the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``(H, W[, C])`` array, like ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return np.swapaxes(arr, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr
