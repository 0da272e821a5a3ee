"""Which detections count as faces: one floor for listing, restoring and reference photos (no torch, no OpenCV, so
the CLI can show it in its help)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import InputError

FACE_MIN_SCORE = 0.95
"""THE floor: a detection is a face (to list, restore or take as a reference) only at this MTCNN O-Net probability or
above (faces128 was cut at the same value). Measured with ``scripts/measure_detection_scores.py``
(``docs/results/detection_scores.json``): of 150 faces128 val faces pasted into T91 photos, clean, noisy or JPEG q30,
1,341 of the 1,344 found at 24-80 px face width keep it, and 424 of 441 at 16 px (JPEG q30: 133 of 144). In the 610
unlabelled photos of T91, BSDS400, Set5, Set14 and B100, 156 detections score 0.95 or more, 18 score 0.90-0.95 and 90
score 0.70-0.90; by eye nearly all of the first are faces, half of the second and about one in six of the third
(mostly strongly tilted or lying faces, which MTCNN scores low); the rest are flowers, fur, bark, fabric or fruit,
which a face restorer would turn into faces (and :func:`frgd.restore.auto_scale` would upscale a photo up to 8x for).
``--min-score`` (CLI) and the editor's score box lower it for a face the default misses."""


def check_min_score(min_score: float) -> float:
    """``min_score`` as a float in ``[0, 1]`` (a detection score floor); :class:`InputError` otherwise."""
    if not 0.0 <= min_score <= 1.0:
        raise InputError(f"the smallest face score must be in [0, 1], got {min_score}")
    return float(min_score)


def floor_to_take(score: float) -> float:
    """The score floor, in hundredths (what ``--min-score`` and the editor's score box show), that takes a detection
    of ``score``: rounded down, so ``0.874`` gives ``0.87``."""
    return math.floor(float(score) * 100) / 100


def candidate_text(face: Any) -> str:
    """A detection's score, size and place as the no-face messages name the best candidate under the floor (the CLI's
    and the editor's): ``0.87 (40 px at x=12, y=30)``; ``face`` has ``score``, ``size`` and ``box``."""
    return f"{face.score:.2f} ({face.size:.0f} px at x={face.box[0]:.0f}, y={face.box[1]:.0f})"


def face_turn(landmarks: Sequence[Sequence[float]]) -> int:
    """How a face lies in its photo, from its five landmarks ``(5, 2)`` (template order, eyes first): the quarter
    turns (0-3) of its eye line from the photo's x axis, clockwise as seen (image y points down): 0 upright; 1 on its
    side with the top of the head to the right, which the photo turned a quarter counter-clockwise (``np.rot90``)
    shows upright, as :attr:`frgd.faces.detect.DetectedFace.turn` counts; 2 upside down; 3 on its other side. A head
    tilted less than 45 degrees counts as upright."""
    (lx, ly), (rx, ry) = landmarks[0][:2], landmarks[1][:2]
    return round(math.degrees(math.atan2(float(ry) - float(ly), float(rx) - float(lx))) / 90.0) % 4


__all__ = ["FACE_MIN_SCORE", "candidate_text", "check_min_score", "face_turn", "floor_to_take"]
