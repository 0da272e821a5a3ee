"""Window grabs for the docs, written as lossless WebP.

A lossless WebP holds exactly the grabbed pixels in about half the bytes of a PNG: 1680×1050 editor grabs, 558 KiB
as an RGB PNG against 290 KiB, and 166 KiB against 119 KiB for one reduced to a palette. The docs travel with the
repository to every training round, within the device's upload limit (docs/training_rounds.md), so their bytes count.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

GRAB_SUFFIX = ".webp"
"""The docs' screenshot format (module docstring)."""
PALETTE_LADDER = ((256, True), (128, True), (128, False), (64, False), (32, False))
"""``(colours, dithered)`` tried in turn when a grab is over its byte limit: dithered first (plain quantizing bands
smooth photo areas), then plain, with fewer colours until it fits (UI text stays legible)."""


def grab_to_pil(grab: Any) -> Any:
    """A ``QPixmap`` or ``QImage`` -> an RGB ``PIL.Image`` with the same pixels (alpha dropped, as in a window grab)."""
    from PIL import Image
    from PySide6.QtGui import QPixmap

    from ..qtimage import from_qimage

    return Image.fromarray(from_qimage(grab.toImage() if isinstance(grab, QPixmap) else grab))


def save_grab(grab: Any, path: Path, limit: int | None = None) -> int:
    """Write ``grab`` (``QPixmap``, ``QImage`` or ``PIL.Image``) to ``path`` as lossless WebP and return its bytes.
    Over ``limit`` bytes, it is written again with an adaptive palette (:data:`PALETTE_LADDER`) until it fits; the
    last rung is kept if none does."""
    from PIL import Image

    rgb = grab.convert("RGB") if isinstance(grab, Image.Image) else grab_to_pil(grab)
    path = Path(path)
    if path.suffix.lower() != GRAB_SUFFIX:
        raise ValueError(f"a docs grab is written as {GRAB_SUFFIX}, not {path.name}")

    def write(im: Any) -> int:
        im.save(path, "WEBP", lossless=True, quality=100, method=4)  # method 6: 10x slower, no smaller
        return path.stat().st_size

    size = write(rgb)
    if limit is None or size <= limit:
        return size
    for colors, dither in PALETTE_LADDER:
        palette = rgb.quantize(colors, method=Image.Quantize.MEDIANCUT)
        mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
        size = write(rgb.quantize(palette=palette, dither=mode).convert("RGB"))
        if size <= limit:
            break
    else:
        logger.warning("%s: %d bytes, over the %d-byte limit even with %d colours", path, size, limit, colors)
    return size
