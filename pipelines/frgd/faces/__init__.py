"""Face pipeline without Qt: MTCNN detection (:mod:`.detect`), five-point alignment and paste-back (:mod:`.align`).

Typical use::

    faces = detect_faces(img)                       # list[DetectedFace], largest first
    crop = align_face(img, faces[0].landmarks, 128)  # FaceCrop (image, affine, inverse, ...)
    out = paste_back(upscaled, crop, restored, canvas_scale=4.0)

Whole photos (detect, number, align once, restore, paste over one background) go through :mod:`frgd.restore`.
The detection names are loaded on first use, so ``frgd.faces.align`` (numpy + OpenCV) imports without torch.
"""

from typing import Any

from .align import (
    FACE_REGIONS,
    FACE_SIZE,
    TEMPLATE_512,
    FaceCrop,
    align_face,
    compose_affine,
    estimate_similarity,
    face_region_mask,
    feather_mask,
    invert_affine,
    match_color_lab,
    paste_back,
    resample_crop,
    template,
    transform_points,
)

_DETECT_NAMES = ("DetectedFace", "FaceDetector", "detect_faces", "get_detector", "select")


def __getattr__(name: str) -> Any:
    """The detection names (torch) load lazily: ``frgd.faces.detect_faces`` etc."""
    if name in _DETECT_NAMES:
        from . import detect

        return getattr(detect, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
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
    "resample_crop",
    "select",
    "template",
    "transform_points",
]
