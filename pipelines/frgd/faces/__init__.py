"""Face pipeline without Qt: MTCNN detection (:mod:`.detect`), five-point alignment and paste-back (:mod:`.align`).

Typical use::

    faces = detect_faces(img)                       # list[DetectedFace], largest first
    crop = align_face(img, faces[0].landmarks, 128)  # FaceCrop (image, affine, inverse, ...)
    out = paste_back(upscaled, crop, restored, canvas_scale=4.0)

Whole photos (detect, number, align once, restore, paste over one background) go through :mod:`frgd.restore`.
Names are loaded on first use, so ``frgd.faces.align`` (numpy + OpenCV) imports without torch and ``frgd.faces.rules``
(the detection floor the CLI shows) without either.
"""

import importlib
from typing import Any

from .rules import FACE_MIN_SCORE

_ALIGN_NAMES = (
    "FACE_REGIONS", "FACE_SIZE", "TEMPLATE_512", "FaceCrop", "align_face", "compose_affine", "estimate_similarity",
    "face_region_mask", "feather_mask", "invert_affine", "match_color_lab", "paste_back", "paste_box", "resample_crop",
    "template", "transform_points",
)  # fmt: skip
_DETECT_NAMES = ("DetectedFace", "FaceDetector", "detect_faces", "get_detector", "select")


def __getattr__(name: str) -> Any:
    """Every name loads on first use: ``frgd.faces.paste_back`` (numpy + OpenCV), ``frgd.faces.detect_faces`` (torch),
    so ``frgd.faces.rules`` imports neither."""
    for module, names in ((".align", _ALIGN_NAMES), (".detect", _DETECT_NAMES)):
        if name in names:
            return getattr(importlib.import_module(module, __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FACE_MIN_SCORE",
    "FACE_REGIONS",
    "FACE_SIZE",
    "TEMPLATE_512",
    "DetectedFace",
    "FaceCrop",
    "FaceDetector",
    "align_face",
    "compose_affine",
    "detect_faces",
    "estimate_similarity",
    "face_region_mask",
    "feather_mask",
    "get_detector",
    "invert_affine",
    "match_color_lab",
    "paste_back",
    "paste_box",
    "resample_crop",
    "select",
    "template",
    "transform_points",
]
