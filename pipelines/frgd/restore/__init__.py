"""One face-restoration API for the CLI, the editor and every method.

detect -> choose -> align once -> restore with a :class:`Restorer` (FRGD, GFPGAN, ...) -> paste back over one
background::

    from frgd.restore import FacePipeline, FRGDRestorer, load_frgd_pipeline

    restorer = FRGDRestorer(load_frgd_pipeline(), identity_strength=0.5)   # or frgd.sr.gfpgan.GFPGANRestorer()
    out = FacePipeline(restorer)(photo, num_samples=2, seeds=7)           # photo: (H, W, 3) uint8
    out.images[0]                      # (sH, sW, 3) uint8, seed out.seeds[0]
    out.faces[0].number, out.faces[0].samples[0].identity_score

The editor calls the same pieces one face at a time: :func:`detect_photo_faces`, :meth:`Restorer.restore` (one face,
with a mask, a base and references), :func:`paste_faces`, :func:`upscale_photo`.
"""

from .faces import (
    MIN_NATIVE_CROP,
    PhotoFace,
    align_faces,
    choose_faces,
    detect_photo_faces,
    face_from_landmarks,
    native_content,
    native_crop_size,
    number_faces,
    reference_crop,
)
from .methods import (
    FRGD_MODEL_NAME,
    MONOCHROME_CHROMA,
    RESTORERS,
    FaceRequest,
    FaceSample,
    FRGDRestorer,
    Restorer,
    default_model_dir,
    fit_crop,
    identity_changed,
    is_monochrome,
    keep_monochrome,
    load_frgd_pipeline,
    repair_content,
    restorer_class,
    union_paste_mask,
)
from .pipeline import (
    AUTO_MAX_PIXELS,
    DEFAULT_FEATHER,
    DEFAULT_SR_MODEL,
    MAX_SCALE,
    REFERENCE_FACES,
    REFERENCE_MATCH_MARGIN,
    FacePipeline,
    ReferenceChoice,
    RestoredFace,
    RestoreOutput,
    auto_scale,
    background_model,
    choose_reference_faces,
    crop_damage,
    faces_scale,
    fitting_scale,
    frame_damage,
    paste_faces,
    photo_damage,
    upscale_photo,
)

__all__ = [
    "AUTO_MAX_PIXELS",
    "DEFAULT_FEATHER",
    "DEFAULT_SR_MODEL",
    "FRGD_MODEL_NAME",
    "MONOCHROME_CHROMA",
    "MAX_SCALE",
    "REFERENCE_FACES",
    "REFERENCE_MATCH_MARGIN",
    "MIN_NATIVE_CROP",
    "RESTORERS",
    "FRGDRestorer",
    "FacePipeline",
    "FaceRequest",
    "FaceSample",
    "PhotoFace",
    "RestoreOutput",
    "ReferenceChoice",
    "RestoredFace",
    "Restorer",
    "align_faces",
    "auto_scale",
    "background_model",
    "crop_damage",
    "faces_scale",
    "fitting_scale",
    "frame_damage",
    "choose_reference_faces",
    "choose_faces",
    "default_model_dir",
    "detect_photo_faces",
    "face_from_landmarks",
    "fit_crop",
    "identity_changed",
    "is_monochrome",
    "keep_monochrome",
    "load_frgd_pipeline",
    "repair_content",
    "native_content",
    "native_crop_size",
    "number_faces",
    "paste_faces",
    "photo_damage",
    "reference_crop",
    "restorer_class",
    "union_paste_mask",
    "upscale_photo",
]
