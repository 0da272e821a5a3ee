"""File > Export Faces and File > Import Face Result: the faces of the photo as files, for retouching them in another
editor (or restoring them with another program) and bringing a crop back as a face's result.

Export writes the layout of ``--save-faces`` (:mod:`frgd.restore.face_files`): per face ``N`` the aligned input crop
``STEM_faceN_input.png`` and, for a face with a result, that result ``STEM_faceN_restored.png`` (128 px, with its
provenance) and ``STEM_faceN_cmp.png``, then ``STEM_faces.json`` with each crop's affine, so ``frgd faces paste``
pastes them too. Import reads one square image (any size: it is resized to the editor's 128 px face) into a gallery
entry of the face (:data:`~.document.IMPORTED`: no seed) and applies it, one undo step; its alpha, when it has any,
is the entry's paste mask (transparent = the face as it is under the result). numpy + OpenCV, no Qt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from frgd.errors import InputError

from .document import CROP_SIZE, IMPORTED, Document, Sample

EXPORT_COMMAND = "FRGD Studio: File > Export Faces"
"""The ``command`` the exported index and crops name."""


def export_faces_plan(doc: Document) -> tuple[list[Any], dict[int, dict[str, str]]]:
    """The document's faces as :class:`frgd.restore.RestoredFace` (numbered 1.. in the list order; a face with a
    result has that result as its one sample, one without has none) and, per face number, the hashes of the
    references its result used. GUI thread: cheap (no copies, no I/O); the arrays are replaced, never changed in
    place, by edits, so a job may write them later."""
    from frgd.restore import FaceSample, RestoredFace

    from .backend import photo_face

    faces, refs = [], {}
    for i, f in enumerate(doc.faces):
        samples = []
        if f.applied is not None:
            s, method = f.applied_sample(), f.result_method()
            params = {**(s.parameters if s is not None else {}), "method": method}
            samples.append(FaceSample(
                image=f.applied, seed=f.applied_seed, method=method, paste_mask=f.applied_mask,
                identity_score=None if s is None else s.identity_score, params=params,
            ))  # fmt: skip
        if hashes := f.used_reference_hashes():
            refs[i + 1] = hashes
        faces.append(RestoredFace(photo_face(f, i + 1), samples, reference=i + 1 in refs))
    return faces, refs


def load_face_crop(path: str | Path) -> Sample:
    """The gallery entry of an imported crop file: a square image of any size and bit depth, resized to ``(128,
    128, 3)`` uint8 (area filter down, cubic up); a not fully opaque alpha becomes its paste mask ``(128, 128)``.
    :class:`InputError` for an unreadable or non-square image. Worker thread (reads and hashes the file)."""
    import cv2

    from frgd.io import file_sha256, load_image, to_uint8

    path = Path(path)
    img = load_image(path)
    h, w = img.rgb.shape[:2]
    if h != w:
        raise InputError(
            f"{path.name} is {w}x{h}: a face crop is square (the aligned crop of File > Export Faces or frgd faces "
            "align, retouched)"
        )
    interp = cv2.INTER_AREA if w > CROP_SIZE else cv2.INTER_CUBIC

    def fit(a: np.ndarray) -> np.ndarray:
        return a if w == CROP_SIZE else cv2.resize(a, (CROP_SIZE, CROP_SIZE), interpolation=interp)

    rgb = fit(img.to_uint8())
    mask = None
    if img.alpha is not None:
        alpha = to_uint8(img.alpha)
        if alpha.min() < 255:  # transparent somewhere: the face shows through there
            mask = np.clip(fit(alpha).astype(np.float32) / 255.0, 0.0, 1.0)
    params = {"method": IMPORTED, "model": IMPORTED, "file": path.name, "sha256": file_sha256(path), "size": [w, h],
              "alpha": mask is not None}  # the name, not the path, goes into exported metadata  # fmt: skip
    return Sample(image=np.ascontiguousarray(rgb), seed=None, identity_strength=None, steps=None,
                  parameters=params, paste_mask=mask)  # fmt: skip
