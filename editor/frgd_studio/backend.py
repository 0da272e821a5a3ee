"""Adapters from the editor to the :mod:`frgd` pipelines.

Every function that runs torch (face detection, identity encoders, FRGD, GFPGAN, SR) is called from a
:mod:`frgd_studio.jobs` worker thread with ``(device, progress, cancel)``; the GUI thread only calls the numpy helpers
(:func:`make_face`, :func:`composite_faces`). Models are cached per (path, device) so resampling is fast.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frgd.errors import FRGDError, InputError, MissingWeightsError
from frgd.jobs import CancelToken, ProgressFn, check_cancel, report

from .document import CROP_SIZE, Face, Reference, Sample, to_uint8

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_FRGD_CACHE: dict[tuple[str, str], Any] = {}
_IDENTITY_CACHE: dict[tuple[str, str], Any] = {}


# ----------------------------------------------------------------------------------------------------- photos, faces
@dataclass
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None
    path: str
    sha256: str


def load_photo(path: str | Path) -> Photo:
    """Load a photo as uint8 RGB (16-bit is reduced; the editor works in 8 bits) with its sha256."""
    from frgd.io import file_sha256, load_image

    img = load_image(path)
    alpha = None if img.alpha is None else to_uint8(img.alpha)
    return Photo(rgb=img.to_uint8(), alpha=alpha, path=str(Path(path).resolve()), sha256=file_sha256(path))


def make_face(photo: np.ndarray, landmarks: np.ndarray, box: np.ndarray | None = None, score: float = 1.0) -> Face:
    """Align the face with ``landmarks`` ``(5, 2)`` (photo pixels) into a 128x128 crop (numpy + OpenCV only)."""
    from frgd.faces import align_face

    lm = np.asarray(landmarks, np.float64)
    crop = align_face(photo, lm, CROP_SIZE)
    if box is None:
        poly = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [CROP_SIZE, CROP_SIZE, 1], [0, CROP_SIZE, 1]], float)
        pts = poly @ crop.inverse.T
        box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
    return Face(
        box=np.asarray(box, np.float64),
        score=float(score),
        landmarks=lm,
        affine=np.asarray(crop.affine, np.float64),
        inverse=np.asarray(crop.inverse, np.float64),
        crop=to_uint8(crop.image),
        crop_obj=crop,
    )


def detect(
    photo: np.ndarray, device, progress: ProgressFn | None = None, cancel: CancelToken | None = None
) -> list[Face]:
    """Detect every face (MTCNN) and align it; faces are sorted left to right."""
    from frgd.faces import detect_faces

    report(progress, 0, 2, "detecting faces")
    found = detect_faces(photo, device=device)
    check_cancel(cancel)
    report(progress, 1, 2, f"aligning {len(found)} faces")
    found = sorted(found, key=lambda f: float(f.box[0]))
    faces = [make_face(photo, f.landmarks, f.box, f.score) for f in found]
    report(progress, 2, 2, f"{len(faces)} faces")
    return faces


def changed_region(face: Face) -> np.ndarray | None:
    """Paste mask ``(128, 128)`` float32 of an applied face: where it differs from the input crop, grown by 2 px with
    a soft edge (the seam), or ``None`` when the whole crop changed.

    A masked edit (eyes only, a patch stroke) then leaves the rest of the photo untouched instead of replacing the
    whole face with the resampled 128 px crop (which blurs large faces).
    """
    import cv2

    changed = np.any(face.applied != face.crop, axis=-1)
    if changed.all():
        return None
    grown = cv2.dilate(changed.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return np.maximum(cv2.GaussianBlur(grown, (0, 0), 1.0), changed).astype(np.float32)


def composite_faces(canvas: np.ndarray, faces: list[Face], scale: float = 1.0) -> np.ndarray:
    """Paste every face's applied result back into ``canvas`` (the photo, or a pane result ``scale`` x larger); only
    the region where a face differs from its input crop is pasted (see :func:`changed_region`)."""
    from frgd.faces import paste_back

    out = canvas
    for face in faces:
        if face.applied is None:
            continue
        crop = face.crop_obj
        if crop is None:
            raise FRGDError("face has no alignment; detect faces again")
        out = paste_back(out, crop, face.applied, canvas_scale=scale, mask=changed_region(face))
    return out if out is not canvas else canvas.copy()


# -------------------------------------------------------------------------------------------------------- identity
def identity_encoder(backend: str, device) -> Any:
    """Cached ``frgd.identity`` encoder (``embed((B,3,H,W) [0,1]) -> (B,D)``)."""
    from frgd.identity import get_identity_encoder

    key = (backend, str(device))
    with _LOCK:
        if key not in _IDENTITY_CACHE:
            _IDENTITY_CACHE[key] = get_identity_encoder(backend, device)
        return _IDENTITY_CACHE[key]


class LazyIdentityEncoder:
    """Defers loading the identity encoder until FRGD first needs it (no reference -> never loaded)."""

    def __init__(self, backend: str, device) -> None:
        self.backend = backend
        self.device = device

    def embed(self, images):
        return identity_encoder(self.backend, self.device).embed(images)


def identity_scores(face_crop: np.ndarray, refs: list[np.ndarray], backend: str, device) -> list[float]:
    """Cosine similarity of each reference crop to the input face crop (all ``(128, 128, 3)`` uint8)."""
    import torch
    import torch.nn.functional as F

    from frgd.tensor import image_to_tensor

    if not refs:
        return []
    enc = identity_encoder(backend, device)
    batch = torch.cat([image_to_tensor(face_crop)] + [image_to_tensor(r) for r in refs]).to(device)
    with torch.no_grad():
        e = F.normalize(enc.embed(batch).float(), dim=1)
    return [float(v) for v in (e[1:] @ e[0]).cpu()]


def load_reference(path: str | Path, device) -> Reference:
    """Load a reference photo, detect its largest face and align it to 128x128."""
    from frgd.faces import align_face, detect_faces
    from frgd.io import file_sha256, load_image

    img = load_image(path).to_uint8()
    found = detect_faces(img, device=device)
    if not found:
        raise InputError(f"no face found in the reference photo {Path(path).name}")
    best = max(found, key=lambda f: f.size)
    crop = align_face(img, best.landmarks, CROP_SIZE)
    return Reference(path=str(Path(path).resolve()), sha256=file_sha256(path), crop=to_uint8(crop.image))


# ------------------------------------------------------------------------------------------------------------ FRGD
def default_frgd_dir() -> Path:
    """The installed FRGD model folder; raises :class:`MissingWeightsError` (with how to get it) when absent."""
    try:
        from frgd.weights import weights_path
    except ImportError as err:  # the weights module is part of the pipelines; keep the editor usable without it
        raise MissingWeightsError(
            "FRGD model weights cannot be found: the `frgd` pipelines that ship them are not importable. Reinstall "
            "FRGD Studio, or choose a model folder under Settings > FRGD model folder."
        ) from err
    return Path(weights_path("frgd-128"))


def load_frgd_pipeline(model_dir: str | Path | None, device) -> Any:
    """A cached :class:`frgd.diffusion.sampling.pipeline.FRGDPipeline` for ``model_dir`` (default: installed model)."""
    from frgd.diffusion.model import load_model_dir
    from frgd.diffusion.sampling.pipeline import FRGDPipeline, prefers_channels_last

    path = Path(model_dir) if model_dir else default_frgd_dir()
    key = (str(path.resolve()), str(device))
    with _LOCK:
        pipe = _FRGD_CACHE.get(key)
    if pipe is None:
        bundle = load_model_dir(path, device=device)
        pipe = FRGDPipeline(
            bundle.model,
            bundle.scheduler,
            LazyIdentityEncoder(bundle.identity.backend, device),
            identity_backend=bundle.identity.backend,
            device=device,
            name=path.name,
            channels_last=prefers_channels_last(device),  # the editor owns this model
        )
        with _LOCK:
            _FRGD_CACHE[key] = pipe
    return pipe


def clear_caches() -> None:
    with _LOCK:
        _FRGD_CACHE.clear()
        _IDENTITY_CACHE.clear()


@dataclass
class FRGDRequest:
    """Everything one Resample needs (copied from the document on the GUI thread)."""

    face_index: int
    crop: np.ndarray  # (s, s, 3) uint8 input face (native resolution, see native_degraded)
    base: np.ndarray | None  # (128, 128, 3) uint8 current result kept outside the mask, None = the input
    mask: np.ndarray | None  # (128, 128) float, 1 = change; None = whole face
    references: list[np.ndarray]
    identity_strength: float
    num_samples: int
    seeds: list[int] | None
    steps: int
    model_dir: str | None


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def run_frgd(req: FRGDRequest, device, progress: ProgressFn | None, cancel: CancelToken | None) -> list[Sample]:
    """Run FRGD for one face; returns one :class:`Sample` per seed (images ``(128, 128, 3)`` uint8).

    The editor works at 128; a model with another crop size (tiny test models) gets the mask/base resized to its
    size and its outputs resized back to 128.
    """
    import torch

    from frgd.tensor import image_to_tensor, tensor_to_image

    pipe = load_frgd_pipeline(req.model_dir, device)
    check_cancel(cancel)
    size = int(getattr(pipe, "size", CROP_SIZE))
    refs = torch.cat([image_to_tensor(_resize(r, CROP_SIZE)) for r in req.references]) if req.references else None
    mask = None
    if req.mask is not None and float(req.mask.max()) > 0.5:
        m = _resize(np.ascontiguousarray(req.mask, np.float32), size)
        mask = torch.from_numpy(np.ascontiguousarray(m))[None, None].clamp(0, 1)
    base = image_to_tensor(_resize(req.base, size)) if req.base is not None and mask is not None else None
    out = pipe(
        image_to_tensor(req.crop),
        references=refs,
        identity_strength=float(req.identity_strength),
        num_samples=int(req.num_samples),
        seeds=req.seeds,
        steps=int(req.steps),
        mask=mask,
        base=base,
        progress=progress,
        cancel=cancel,
    )
    params = dict(out.params)
    params["used_reference"] = refs is not None
    params["model_size"] = size
    samples = []
    for i, seed in enumerate(out.seeds):
        score = None if out.identity_scores is None else float(out.identity_scores[i])
        img = _resize(tensor_to_image(out.images[i : i + 1]), CROP_SIZE)
        if mask is not None and size != CROP_SIZE:
            # the pipeline guarantees "outside the mask equals the base" at its size; keep it exact at 128 too
            hard = (np.asarray(req.mask) > 0.5)[..., None]
            img = np.where(hard, img, req.base if req.base is not None else img)
        samples.append(
            Sample(
                image=np.ascontiguousarray(img),
                seed=int(seed),
                identity_strength=float(req.identity_strength),
                steps=int(req.steps),
                identity_score=score,
                parameters=params,
            )
        )
    return samples


def native_degraded(photo: np.ndarray, face: Face) -> np.ndarray:
    """The face aligned at its native resolution (``round(128 * source px per crop px)``, at least 16, at most 128).

    A 20 px face becomes a ~32 px crop: FRGD's content guidance then compares with what the photo really contains
    instead of an upsampled blur (the same choice as :mod:`frgd.enhance`).
    """
    from frgd.enhance import native_crop_size
    from frgd.faces import align_face

    native = float(np.sqrt(abs(np.linalg.det(np.asarray(face.inverse)[:, :2]))))
    size = native_crop_size(native, CROP_SIZE)
    if size >= CROP_SIZE:
        return face.crop
    return to_uint8(align_face(photo, face.landmarks, size).image)


# --------------------------------------------------------------------------------------------------- SR and GFPGAN
@dataclass
class UpscalerInfo:
    name: str
    label: str
    scales: tuple[int, ...]
    problem: str | None = None


SR_SCALES = {"bicubic": (2, 3, 4, 8), "lanczos": (2, 3, 4, 8), "frgd-sr": (2, 3, 4)}


def sr_models() -> list[UpscalerInfo]:
    """Every upscaler the SR pane offers (status not checked here: see :func:`sr_status`, which loads weights)."""
    from frgd.sr.registry import available_upscalers

    return [UpscalerInfo(n, n, SR_SCALES.get(n, (2, 4))) for n in available_upscalers()]


def sr_status(names: list[str]) -> dict[str, str | None]:
    """``{name: None if usable else the MissingWeightsError/FRGDError text}`` (worker thread: may load weights)."""
    from frgd.sr.registry import upscaler_status

    out = {}
    for n in names:
        s = upscaler_status(n)
        out[n] = None if s == "ready" else s
    return out


def run_sr(photo: np.ndarray, name: str, scale: int, device, progress, cancel) -> np.ndarray:
    """Upscale the whole photo: ``(H, W, 3)`` uint8 -> ``(sH, sW, 3)`` uint8."""
    from frgd.sr.upscale import UpscalePipeline
    from frgd.tensor import image_to_tensor, tensor_to_image

    pipe = UpscalePipeline(name, scale, device)
    out = pipe(image_to_tensor(photo), progress=progress, cancel=cancel)
    return tensor_to_image(out.image)


GFPGAN_VERSIONS = ("v1.4", "v1.3")


def gfpgan_problem(version: str) -> str | None:
    """``None`` when the GFPGAN pane can run ``version`` (``"v1.4"``); else the actionable reason (nothing loaded)."""
    try:
        from frgd.sr.gfpgan import gfpgan_weights_path
    except ImportError as err:
        return f"The GFPGAN pipeline is not available in this installation ({err})."
    try:
        gfpgan_weights_path(version.lstrip("v"))
    except FRGDError as err:
        return str(err)
    return None


def run_gfpgan(
    photo: np.ndarray, faces: list[Face], version: str, weight: float, scale: int, device, progress, cancel
) -> np.ndarray:
    """Restore the faces with GFPGAN and paste them over the photo upscaled ``scale`` times -> uint8 image.

    The editor's faces are passed on (no second detection); with none, GFPGAN detects its own.
    """
    from frgd.faces import DetectedFace
    from frgd.sr.gfpgan import GFPGANPipeline
    from frgd.tensor import tensor_to_image

    pipe = GFPGANPipeline(version=version.lstrip("v"), device=device)
    detected = [DetectedFace(box=f.box, score=f.score, landmarks=f.landmarks) for f in faces] or None
    out = pipe(photo, scale=int(scale), faces=detected, weight=float(weight), progress=progress, cancel=cancel)
    return tensor_to_image(out.image)
