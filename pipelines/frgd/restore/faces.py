"""The faces of a photo, as every restorer and the editor see them: detected, numbered, chosen, aligned once.

One numbering rule (:func:`number_faces`): faces are numbered 1, 2, ... from left to right (by the left edge of their
box), the "Face 1", "Face 2" of the editor and the ``number`` of ``frgd enhance`` / ``frgd restore`` output. Every
face is aligned once, at its restorer's crop size (:class:`PhotoFace.crop`); the rest (FRGD's native-resolution input,
masks, the paste-back) derives from that one affine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..faces.align import FACE_SIZE, FaceCrop, align_face, resample_crop
from ..faces.rules import FACE_MIN_SCORE, face_turn
from ..jobs import CancelToken, ProgressFn

logger = logging.getLogger(__name__)

DetectFn = Callable[[np.ndarray], Sequence[Any]]
"""``detect(photo (H, W, 3)) -> faces`` with ``box`` ``(4,)``, ``score`` and ``landmarks`` ``(5, 2)`` (MTCNN's
:class:`frgd.faces.detect.DetectedFace`, or a stand-in in tests)."""

MIN_NATIVE_CROP = 16
"""Smallest native-resolution crop FRGD is given (tiny faces are aligned at least this big)."""


@dataclass(eq=False)
class PhotoFace:
    """One face of a photo.

    Attributes:
        number: 1-based, left to right (:func:`number_faces`); ``index = number - 1``.
        box: ``(4,)`` float ``x0, y0, x1, y1`` in photo pixels.
        score: detection score (1.0 for faces given by landmarks).
        landmarks: ``(5, 2)`` in photo pixels (template order, as :func:`frgd.faces.align.align_face` takes them).
        crop: the aligned :class:`frgd.faces.align.FaceCrop` (``image`` ``(S, S, 3)`` of the photo's dtype,
            ``affine`` photo -> crop, ``inverse``), the one alignment of this face.
    """

    number: int
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    crop: FaceCrop

    @property
    def index(self) -> int:
        return self.number - 1

    @property
    def size(self) -> float:
        """``sqrt(width * height)`` of the box, px (what ``largest`` compares)."""
        w, h = float(self.box[2] - self.box[0]), float(self.box[3] - self.box[1])
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))

    @property
    def turn(self) -> int:
        """Quarter turns the face lies at in the photo (:func:`frgd.faces.rules.face_turn`: 0 upright, 1-3 on its
        side or upside down); its crop is upright either way."""
        return face_turn(self.landmarks)

    def to_json(self) -> dict[str, Any]:
        out = {
            "number": self.number,
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "native_scale": round(float(self.crop.native_scale), 4),
        }
        if self.turn:
            out["turn_degrees"] = 90 * self.turn
        return out


def number_faces(faces: Sequence[Any]) -> list[Any]:
    """THE face numbering rule: ``faces`` sorted left to right by the left edge of their box (stable for ties).
    Face ``k`` of the result is "Face k + 1" everywhere (editor, CLI output, ``--faces``)."""
    return sorted(faces, key=lambda f: float(f.box[0]))


def crop_box(crop: FaceCrop) -> np.ndarray:
    """``(4,)`` photo-pixel bounding box of the aligned crop's square (for faces given by landmarks only)."""
    s = float(crop.size)
    corners = np.array([[0, 0, 1], [s, 0, 1], [s, s, 1], [0, s, 1]], np.float64) @ np.asarray(crop.inverse).T
    return np.array([corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()])


def align_faces(photo: np.ndarray, faces: Sequence[Any], size: int = FACE_SIZE) -> list[PhotoFace]:
    """Number ``faces`` (detections: ``box``, ``score``, ``landmarks``) and align each once at ``size``."""
    out = []
    for k, f in enumerate(number_faces(faces)):
        crop = align_face(photo, np.asarray(f.landmarks, np.float64), size)
        box = crop_box(crop) if getattr(f, "box", None) is None else np.asarray(f.box, np.float64)
        out.append(PhotoFace(k + 1, box, float(getattr(f, "score", 1.0)), np.asarray(f.landmarks, np.float64), crop))
    return out


def face_from_landmarks(
    photo: np.ndarray, landmarks: np.ndarray, *, number: int = 1, size: int = FACE_SIZE, box=None, score: float = 1.0
) -> PhotoFace:
    """A face given by its five landmarks ``(5, 2)`` (no detection), aligned at ``size``; ``box`` defaults to the
    crop's bounding box."""
    crop = align_face(photo, np.asarray(landmarks, np.float64), size)
    box = crop_box(crop) if box is None else np.asarray(box, np.float64)
    return PhotoFace(int(number), box, float(score), np.asarray(landmarks, np.float64), crop)


def detect_photo_faces(
    photo: np.ndarray,
    *,
    device: Any = "cpu",
    detect_fn: DetectFn | None = None,
    size: int = FACE_SIZE,
    min_score: float = FACE_MIN_SCORE,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    rejected: list | None = None,
) -> list[PhotoFace]:
    """Detect (MTCNN on ``device``, keeping scores of at least ``min_score``; or ``detect_fn``, whose own choice is
    kept), number and align every face of ``photo`` ``(H, W, 3)``. ``progress`` / ``cancel``: the detection's tiled
    pass over a large photo (:mod:`frgd.jobs`); ``rejected``: MTCNN's candidates under ``min_score`` are appended
    (:func:`frgd.faces.detect.detect_faces`; nothing with ``detect_fn``)."""
    if detect_fn is None:
        from ..faces.detect import detect_faces

        found = detect_faces(
            np.ascontiguousarray(photo),
            device=device,
            min_score=min_score,
            progress=progress,
            cancel=cancel,
            rejected=rejected,
        )
    else:
        found = list(detect_fn(np.ascontiguousarray(photo)))
    return align_faces(photo, found, size)


def face_numbers(selection: str | int | Sequence[int], error: str) -> list[int]:
    """Face numbers from ``3``, ``[1, 3]`` or ``"1,3"``; :class:`InputError` with ``error`` for anything else."""
    try:
        if isinstance(selection, str):
            return [int(t) for t in selection.split(",") if t.strip()]
        if isinstance(selection, (int, np.integer)):
            return [int(selection)]
        return [int(n) for n in selection]
    except (TypeError, ValueError):
        raise InputError(error) from None


def choose_faces(
    faces: Sequence[Any], which: str | int | Sequence[int] = "all", image_shape: tuple[int, int] | None = None
) -> list[Any]:
    """Pick faces: ``"all"``, ``"largest"``, ``"center"`` or face numbers (``3``, ``[1, 3]``, ``"1,3"``; 1-based,
    left to right as :func:`number_faces` numbers them). ``faces``: :class:`PhotoFace` (the photo's shape is read
    from the crops) or detections already in :func:`number_faces` order with ``image_shape`` ``(H, W)``.
    Raises :class:`InputError` for an unknown number."""
    from ..faces.detect import select

    faces = list(faces)
    shape = image_shape or (faces[0].crop.source_shape if faces else None)
    if isinstance(which, str) and which.strip().lower() in ("all", "largest", "center", "centre"):
        return select(faces, which, image_shape=shape)
    numbers = face_numbers(
        which, f"unknown face selection {which!r}; use all, largest, center or face numbers like 1,3"
    )
    for n in numbers:
        if not 1 <= n <= len(faces):
            raise InputError(f"no face {n}: {len(faces)} face(s) found, numbered 1..{len(faces)} from left to right")
    return [faces[n - 1] for n in numbers]


def reference_crop(
    photo: np.ndarray,
    *,
    device: Any = "cpu",
    detect_fn: DetectFn | None = None,
    size: int = FACE_SIZE,
    name: str = "",
    min_score: float = FACE_MIN_SCORE,
) -> np.ndarray:
    """The largest face of a reference photo aligned at ``size``: ``(size, size, 3)`` of the photo's dtype."""
    found = detect_photo_faces(photo, device=device, detect_fn=detect_fn, size=size, min_score=min_score)
    if not found:
        raise InputError(
            f"no face found in the reference photo {name}".rstrip() + "; use a clearer photo of the person"
        )
    return max(found, key=lambda f: f.size).crop.image


def native_crop_size(native_scale: float, size: int = FACE_SIZE) -> int:
    """Side of the crop that holds a face at its native resolution: ``round(size * native_scale)`` in
    ``[MIN_NATIVE_CROP, size]`` (``native_scale`` = source px per px of a ``size`` crop)."""
    return int(min(size, max(MIN_NATIVE_CROP, round(size * native_scale))))


def native_content(photo: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """The face at its native resolution: a face smaller than ``crop`` (``native_scale < 1``) is warped from
    ``photo`` at :func:`native_crop_size` with the crop's own geometry (:func:`frgd.faces.align.resample_crop`), so
    FRGD's content guidance compares with what the photo contains, not an upsampled blur; else ``crop.image``."""
    n = native_crop_size(crop.native_scale, crop.size)
    if n >= crop.size:
        return crop.image
    return resample_crop(photo, crop, n).image


__all__ = [
    "MIN_NATIVE_CROP",
    "DetectFn",
    "PhotoFace",
    "align_faces",
    "choose_faces",
    "crop_box",
    "detect_photo_faces",
    "face_from_landmarks",
    "face_numbers",
    "native_content",
    "native_crop_size",
    "number_faces",
    "reference_crop",
]
