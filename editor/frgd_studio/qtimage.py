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


MASK_COLOR = (255, 40, 90)
"""Overlay tint of the mask (where FRGD may change the face)."""
DAMAGE_COLOR = (0, 200, 255)
"""Overlay tint of the damage layer (where the photo is damaged), drawn over the mask."""


def layers_overlay(
    mask: np.ndarray,
    damage: np.ndarray | None,
    color: tuple[int, int, int] = MASK_COLOR,
    opacity: float = 0.55,
    damage_color: tuple[int, int, int] = DAMAGE_COLOR,
) -> QPixmap:
    """``(S, S)`` float mask and damage -> one RGBA pixmap: ``color`` where the mask is 1, ``damage_color`` over it
    where the damage is."""
    m = np.clip(mask, 0, 1)
    d = np.zeros_like(m) if damage is None else np.clip(damage, 0, 1)
    rgb = m[..., None] * (1 - d[..., None]) * np.asarray(color, np.float32)
    rgb = rgb + d[..., None] * np.asarray(damage_color, np.float32)
    cover = np.maximum(m, d)
    rgb = rgb / np.maximum(m * (1 - d) + d, 1e-6)[..., None]  # the tint at full strength, the alpha carries the cover
    rgba = np.empty(m.shape + (4,), np.uint8)
    rgba[..., :3] = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    rgba[..., 3] = np.round(cover * (255.0 * opacity)).astype(np.uint8)
    return QPixmap.fromImage(to_qimage(rgba))
