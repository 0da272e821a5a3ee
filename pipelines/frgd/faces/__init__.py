"""Face pipeline without Qt: MTCNN detection (:mod:`.detect`), five-point alignment and paste-back (:mod:`.align`).

Typical use::

    faces = detect_faces(img)                       # list[DetectedFace], largest first
    crop = align_face(img, faces[0].landmarks, 128)  # FaceCrop (image, affine, inverse, ...)
    out = paste_back(upscaled, crop, restored, canvas_scale=4.0)
"""

from .align import (
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
    template,
    transform_points,
)
from .detect import DetectedFace, FaceDetector, detect_faces, get_detector, select

__all__ = [
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
    "select",
    "template",
    "transform_points",
]
