"""The ``--damage`` argument of ``frgd enhance`` and ``frgd restore``: a mask image (white = damaged), or ``auto``,
the damage detector's marks in each photo (:func:`frgd.scratch.detect_damage`, as ``frgd damage detect`` writes
them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DAMAGE_AUTO = "auto"
DAMAGE_HELP = (
    "white = the photo is damaged there (scratches, creases, stains): filled before restoring, and FRGD ignores the "
    "input there; photo-sized (crop-sized with --aligned), or 'auto': found in each photo by the damage detector "
    "(check its marks with `frgd damage detect`; a file named auto is ./auto)"
)


class DamageSource:
    """Where each photo's damage comes from: ``spec`` is ``None``, a mask file, or :data:`DAMAGE_AUTO`."""

    def __init__(self, spec: str | None, device: str = "auto") -> None:
        from ..io import load_mask

        self.spec = spec
        self.auto = spec == DAMAGE_AUTO
        self.mask = load_mask(spec) if spec and not self.auto else None
        self.device = device
        self._net: Any = None

    @property
    def file(self) -> str | None:
        """The mask file (``None`` for no damage or ``auto``)."""
        return None if self.auto or not self.spec else self.spec

    def for_photo(self, image: np.ndarray) -> tuple[np.ndarray | None, dict[str, Any]]:
        """``(damage, record)`` of ``image`` ``(H, W, 3)``: the mask (``(H, W)``; ``None`` for none) and what the
        outputs' metadata say of it (``damage``: the file's name or ``auto``, and with ``auto`` the share marked)."""
        if not self.auto:
            return self.mask, {"damage": Path(self.spec).name if self.spec else None}
        from ..devices import resolve_device
        from ..scratch import detect_damage, load_detector

        if self._net is None:
            self._net = load_detector(device=resolve_device(self.device))
        found = detect_damage(image, self._net)
        layer = found.mask if found.mask.any() else None
        return layer, {"damage": DAMAGE_AUTO, "damage_detected": round(found.share, 5)}


__all__ = ["DAMAGE_AUTO", "DAMAGE_HELP", "DamageSource"]
