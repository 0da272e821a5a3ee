"""numpy <-> Qt image conversions (GUI thread, no torch)."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem

from frgd.io import to_float, to_uint8

Changes = Callable[[int | None, np.ndarray], tuple[int | None, tuple[int, int, int, int] | None]]
"""``changes(since, image) -> (version, box)``: :meth:`frgd_studio.model.document.Document.composite_change`."""


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


class ShownImage:
    """What a ``QGraphicsPixmapItem`` shows, redrawn as cheaply as it changed: the same array again converts nothing
    (arrays are replaced, never written in place), and a new result that ``changes`` (the document's
    :meth:`~frgd_studio.model.document.Document.composite_change`) says differs from the shown one only inside a box
    repaints that box alone (a patch stroke's dab on a 48 MP result: a face's box, not 48 MP). ``last``: how the last
    image was shown: ``"none"``, ``"same"``, ``"box"`` or ``"whole"``; ``counts``: how often each."""

    def __init__(self, item: QGraphicsPixmapItem, changes: Changes | None = None) -> None:
        self.item = item
        self.changes = changes
        self.last = "none"
        self.counts = dict.fromkeys(("none", "same", "box", "whole"), 0)
        self._shown: weakref.ref | None = None
        self._version: int | None = None
        self._shape: tuple[int, ...] | None = None

    def show(self, img: np.ndarray | None) -> str:
        """Show ``img`` ``(H, W, 3)`` (``None``: nothing); returns how (:attr:`last`)."""
        self.last = self._show(img)
        self.counts[self.last] += 1
        return self.last

    def _show(self, img: np.ndarray | None) -> str:
        if img is None:
            self.item.setPixmap(QPixmap())
            self._shown, self._version, self._shape = None, None, None
            return "none"
        if self._shown is not None and self._shown() is img:
            return "same"
        version, box = (None, None) if self.changes is None else self.changes(self._version, img)
        how = "whole"
        if box is not None and img.shape == self._shape and not self.item.pixmap().isNull():
            self._paint(img, box)
            how = "box"
        else:
            self.item.setPixmap(to_pixmap(img))
        self._shown, self._version, self._shape = weakref.ref(img), version, img.shape
        return how

    def _paint(self, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
        y0, y1, x0, x1 = box
        if y1 <= y0 or x1 <= x0:
            return
        pixmap = self.item.pixmap()
        self.item.setPixmap(QPixmap())  # the item lets go of its share of the pixels: painting them copies nothing
        painter = QPainter(pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(x0, y0, to_qimage(img[y0:y1, x0:x1]))
        painter.end()
        self.item.setPixmap(pixmap)


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
"""Overlay tint of the damage layer (where the photo is damaged), drawn over the masks."""
OVERLAY_OPACITY = 0.55
"""Opacity of a layer's tint where the layer is fully on."""


def layer_overlay(
    layer: np.ndarray, color: tuple[int, int, int] = MASK_COLOR, opacity: float = OVERLAY_OPACITY
) -> QPixmap:
    """A painted layer ``(h, w)`` (float in ``[0, 1]`` or uint8 0..255) -> an RGBA pixmap: ``color``, its alpha the
    layer's cover times ``opacity``."""
    cover = to_float(np.asarray(layer))
    rgba = np.empty(cover.shape + (4,), np.uint8)
    rgba[..., :3] = np.asarray(color, np.uint8)
    rgba[..., 3] = np.round(cover * (255.0 * opacity)).astype(np.uint8)
    return QPixmap.fromImage(to_qimage(rgba))
