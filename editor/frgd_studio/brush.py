"""Soft round brush dabs (pure numpy): in aligned-crop space for the mask and patch tools, in photo space for the
damage layer.

A dab at photo point ``(x, y)`` with radius ``r`` photo pixels becomes a soft disc centred at ``affine @ (x, y, 1)``
with radius ``r * crop_scale`` in the ``(128, 128)`` crop (:func:`face_dab`), or a soft disc of radius ``r`` in the
photo itself, cut to the rectangle it covers (:func:`photo_dab`); ``feather`` in ``[0, 1]`` is the fraction of the
radius over which the disc fades out.
"""

from __future__ import annotations

import numpy as np

from frgd.io import to_float, to_uint8

from .model.document import CROP_SIZE, Box, Face


def _disc(cx: float, cy: float, radius: float, feather: float, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Coverage of a soft disc over pixels ``y0:y1, x0:x1`` (1 inside, linear fade over ``feather * radius``)."""
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)  # OpenCV convention: pixel (x, y) has its centre at (x, y)
    radius = max(float(radius), 0.5)
    soft = max(float(feather) * radius, 1e-3)
    return np.clip((radius - d) / soft, 0.0, 1.0).astype(np.float32)


def disc(cx: float, cy: float, radius: float, feather: float, size: int = CROP_SIZE) -> np.ndarray:
    """``(size, size)`` float32 coverage of a soft disc (1 inside, linear fade over ``feather * radius``)."""
    return _disc(cx, cy, radius, feather, 0, size, 0, size)


def photo_dab(
    shape: tuple[int, int], x: float, y: float, radius: float, feather: float
) -> tuple[Box, np.ndarray] | None:
    """A dab at photo point ``(x, y)`` on a photo of ``shape`` ``(H, W)``: ``(box, coverage)``, the rectangle it
    covers (:data:`~.model.document.Box`) and its float32 coverage there; ``None`` when it misses the photo."""
    r = max(float(radius), 0.5)
    h, w = int(shape[0]), int(shape[1])
    y0, y1 = max(0, int(np.floor(y - r))), min(h, int(np.ceil(y + r)) + 1)
    x0, x1 = max(0, int(np.floor(x - r))), min(w, int(np.ceil(x + r)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return (y0, y1, x0, x1), _disc(x, y, r, feather, y0, y1, x0, x1)


def stroke_points(p0: tuple[float, float], p1: tuple[float, float], spacing: float) -> list[tuple[float, float]]:
    """Points from ``p0`` (exclusive) to ``p1`` (inclusive) every ``spacing`` pixels, so strokes have no gaps."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    n = max(1, int(np.ceil(np.hypot(dx, dy) / max(spacing, 0.5))))
    return [(p0[0] + dx * k / n, p0[1] + dy * k / n) for k in range(1, n + 1)]


def face_dab(face: Face, x: float, y: float, radius: float, feather: float) -> np.ndarray:
    """Coverage ``(128, 128)`` of a photo-space dab in the face's crop space."""
    u, v = face.to_crop(x, y)
    return disc(u, v, radius * face.crop_scale(), feather)


def paint(mask: np.ndarray, coverage: np.ndarray, erase: bool = False) -> np.ndarray:
    """Brush: ``max(mask, coverage)``; eraser: ``mask * (1 - coverage)``. A uint8 layer (0..255) stays uint8."""
    if mask.dtype == np.uint8:
        return to_uint8(paint(to_float(mask), coverage, erase))
    if erase:
        return (mask * (1.0 - coverage)).astype(np.float32)
    return np.maximum(mask, coverage).astype(np.float32)


def blend(result: np.ndarray, source: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Patch brush: mix ``source`` into ``result`` (both ``(128, 128, 3)`` uint8) where ``coverage`` is 1."""
    a = coverage[..., None]
    out = result.astype(np.float32) * (1.0 - a) + source.astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
