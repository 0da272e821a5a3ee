"""numpy <-> Qt image conversions (GUI thread, no torch)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap

from frgd.io import to_uint8


def to_qimage(img: np.ndarray) -> QImage:
    """``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (any dtype) or ``(H, W)`` gray -> a ``QImage`` owning its pixels."""
    arr = np.ascontiguousarray(to_uint8(np.asarray(img)))
    if arr.ndim == 2:
        h, w = arr.shape
        return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    h, w, c = arr.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(arr.data, w, h, w * c, fmt).copy()


def to_pixmap(img: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(img))


def from_qimage(image: QImage) -> np.ndarray:
    """``QImage`` -> ``(H, W, 3)`` uint8 RGB."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    ptr = image.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def mask_overlay(mask: np.ndarray, color: tuple[int, int, int] = (255, 40, 90), opacity: float = 0.55) -> QPixmap:
    """``(S, S)`` float mask -> RGBA pixmap tinted with ``color`` where the mask is 1."""
    a = np.clip(mask, 0, 1) * (255.0 * opacity)
    rgba = np.empty(mask.shape + (4,), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = color
    rgba[..., 3] = np.round(a).astype(np.uint8)
    return QPixmap.fromImage(to_qimage(rgba))
