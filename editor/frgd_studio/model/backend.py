"""Adapters from the editor to the :mod:`frgd` pipelines: every face operation goes through :mod:`frgd.restore`, the
one face pipeline of the CLI and the editor (detection and numbering, the one alignment, the restorers, the paste path
and the background rule).

Every function that runs torch (face detection, identity encoders, FRGD, GFPGAN, SR) is called from a
:mod:`.jobs` worker thread with ``(device, progress, cancel)``, never on the GUI thread (alignment too:
:func:`make_face` runs in a job). The document pastes faces itself (:meth:`.document.Document.composite`). FRGD models
are cached per (path, device) so resampling is fast. No Qt here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frgd.diffusion.sampling.schedulers import IDENTITY_GRADIENT, INPUT_QUALITIES, INPUT_QUALITY, RESAMPLE
from frgd.errors import FRGDError
from frgd.faces.rules import FACE_MIN_SCORE
from frgd.io import to_uint8
from frgd.jobs import Cancelled, CancelToken, ProgressFn, check_cancel, report
from frgd.restore import PhotoFace, default_model_dir, number_faces

from .document import Face, PhotoState, Reference, Sample

if TYPE_CHECKING:
    from frgd.sr.tiling import TileResume

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_FRGD_CACHE: dict[tuple[str, str], Any] = {}


# ----------------------------------------------------------------------------------------------------- photos, faces
@dataclass
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None
    path: str
    sha256: str
    icc_profile: bytes | None = None  # the file's colour profile: exports carry it (pixels are never converted)
    bits: int = 8  # the file's bits per channel (8 or 16; the editor shows it in 8: Document.photo_bits)


def load_photo(path: str | Path) -> Photo:
    """Load a photo as uint8 RGB (16-bit is reduced: the editor shows and edits in 8 bits; a 16-bit export reads the
    file again, :func:`deep_photo`) with its sha256."""
    from frgd.io import file_sha256, load_image

    img = load_image(path)
    alpha = None if img.alpha is None else to_uint8(img.alpha)
    return Photo(rgb=img.to_uint8(), alpha=alpha, path=str(Path(path).resolve()), sha256=file_sha256(path),
                 icc_profile=img.icc_profile, bits=16 if img.rgb.dtype == np.uint16 else 8)  # fmt: skip


def deep_photo(path: str | None, sha256: str | None, turn: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The photo file's own pixels at its depth, ``(H, W, 3)`` (uint16 for a 16-bit file) and its alpha ``(H, W)``
    of the same dtype or ``None``, turned ``turn`` quarter turns like the document's photo: what a 16-bit export is
    built from. :class:`frgd.errors.InputError` naming why when the file is gone or is no longer the one opened (its
    sha256). Worker thread."""
    import hashlib

    from frgd.errors import InputError
    from frgd.io import load_image_bytes, read_file_bytes

    if not path:
        raise InputError("the photo has no file")
    try:
        data = read_file_bytes(path)
    except (OSError, FRGDError) as err:
        raise InputError(f"the photo file {path} cannot be read ({err})") from err
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(f"the photo file {path} changed since it was opened")
    img = load_image_bytes(data, str(path))
    return turned_image(img.rgb, turn), turned_image(img.alpha, turn)


def deep_result(
    photo: np.ndarray,
    damage: np.ndarray | None,
    scale: int,
    sr_model: str,
    pastes: list[tuple[Any, np.ndarray, np.ndarray | None]],
    device,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """The Result made again from the photo's own pixels ``photo`` ``(H, W, 3)`` (uint16 from :func:`deep_photo`),
    as :meth:`Document.composite <.document.Document.composite>` makes it from the 8-bit photo: ``damage`` (the
    document's layer, or ``None``) filled (:func:`repaired_photo`), upscaled ``scale`` times by ``sr_model`` (the model
    of the shown result; :func:`frgd.restore.upscale_photo`) and the applied faces ``pastes`` (``(crop, image,
    paste mask)``) pasted (:func:`frgd.restore.paste_faces`), in ``photo``'s dtype ``(sH, sW, 3)``. The faces
    themselves are 8-bit. Worker thread (torch)."""
    from frgd.restore import paste_faces, upscale_photo

    base = repaired_photo(photo, damage, cancel=cancel)
    canvas = base if scale == 1 else upscale_photo(base, int(scale), sr_model, device=device, progress=progress,
                                                   cancel=cancel)[0]  # fmt: skip
    check_cancel(cancel)
    return paste_faces(canvas, pastes, float(scale))


def _face(pf: PhotoFace) -> Face:
    """The document's :class:`Face` of a :class:`frgd.restore.PhotoFace` (its one alignment)."""
    crop = pf.crop
    return Face(
        box=np.asarray(pf.box, np.float64),
        score=float(pf.score),
        landmarks=np.asarray(pf.landmarks, np.float64),
        affine=np.asarray(crop.affine, np.float64),
        inverse=np.asarray(crop.inverse, np.float64),
        crop=to_uint8(crop.image),
        crop_obj=crop,
    )


def turned_state(state: PhotoState, k: int) -> PhotoState:
    """``state`` turned ``k`` quarter turns counter-clockwise (``np.rot90``; -1 = clockwise): every image turned
    (exact), the faces turned by :func:`turned_faces` (the same crops: masks, samples and results stay valid), the
    selected one kept. Worker thread (numpy + OpenCV)."""
    photo = turned_image(state.photo, k)
    faces = turned_faces(state.faces, k, photo, number=False)
    numbered = number_faces(faces)
    chosen = faces[state.selected] if 0 <= state.selected < len(faces) else None
    selected = next((i for i, f in enumerate(numbered) if f is chosen), state.selected)
    return PhotoState(photo, turned_image(state.alpha, k), (state.turn + k) % 4, numbered, selected,
                      {n: turned_image(img, k) for n, img in state.pane_results.items()}, turned_image(state.damage, k),
                      turned_image(state.repaired, k))  # fmt: skip


def turned_image(img: np.ndarray | None, k: int) -> np.ndarray | None:
    """``img`` (any ``(H, W, ...)`` array: the photo, a pane result, the damage layer; ``None`` passes) turned ``k``
    quarter turns counter-clockwise, exactly (``np.rot90``), as a contiguous copy."""
    return None if img is None else np.ascontiguousarray(np.rot90(img, k))


def turn_invariant(result: Any, _k: int) -> Any:
    """``result`` as it is: a turn of the photo does not change it. For results in a face's aligned crop frame
    (samples, references, scores, previews: the turned face has the same crop, :func:`turned_faces`) and for ones
    that depend only on the photo's pixel count (a time estimate)."""
    return result


def turned_faces(faces: list[Face], k: int, photo: np.ndarray, number: bool = True) -> list[Face]:
    """``faces`` found in a photo, for that photo turned ``k`` quarter turns counter-clockwise (``photo``, the turned
    one): each aligned again from its turned landmarks (:func:`frgd.faces.align.turn_points`, exact, so the same crop
    to within a level of interpolation rounding) and box, everything else kept (its :attr:`Face.key` too), numbered
    again left to right (:func:`frgd.restore.number_faces`) unless ``number`` is False. numpy + OpenCV only."""
    from dataclasses import replace

    from frgd.faces.align import turn_points
    from frgd.faces.detect import MTCNN_COORD_OFFSET

    hw = photo.shape[:2]
    out = []
    for f in faces:
        x0, y0, x1, y1 = np.asarray(f.box, np.float64) - MTCNN_COORD_OFFSET  # MTCNN's box, along the photo's axes
        corners = turn_points(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]), -k, hw) + MTCNN_COORD_OFFSET
        g = make_face(photo, turn_points(f.landmarks, -k, hw), np.concatenate([corners.min(0), corners.max(0)]),
                      f.score)  # fmt: skip
        out.append(replace(f, box=g.box, landmarks=g.landmarks, affine=g.affine, inverse=g.inverse, crop=g.crop,
                           crop_obj=g.crop_obj))  # fmt: skip
    return number_faces(out) if number else out


def photo_face(face: Face, number: int) -> PhotoFace:
    """The :class:`frgd.restore.PhotoFace` of the document's face ``number`` (1-based, the list order)."""
    if face.crop_obj is None:
        raise FRGDError("face has no alignment; detect faces again")
    return PhotoFace(number, np.asarray(face.box), float(face.score), np.asarray(face.landmarks), face.crop_obj)


def make_face(photo: np.ndarray, landmarks: np.ndarray, box: np.ndarray | None = None, score: float = 1.0) -> Face:
    """Align the face with ``landmarks`` ``(5, 2)`` (photo pixels) into a 128x128 crop (numpy + OpenCV only)."""
    from frgd.restore import face_from_landmarks

    return _face(face_from_landmarks(photo, landmarks, box=box, score=score))


def detect(
    photo: np.ndarray,
    device,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    min_score: float = FACE_MIN_SCORE,
    rejected: list | None = None,
) -> list[Face]:
    """Detect every face (MTCNN, scores of at least ``min_score``) and align it; the list is in face-number order
    (left to right, "Face 1" first). ``rejected``: the candidates under ``min_score`` are appended (``score``,
    ``size``, ``box``), for the message of an empty result."""
    from frgd.restore import detect_photo_faces

    report(progress, 0, 1, "detecting faces")
    found = detect_photo_faces(
        photo, device=device, min_score=min_score, progress=progress, cancel=cancel, rejected=rejected
    )
    faces = [_face(f) for f in found]
    check_cancel(cancel)
    report(progress, 1, 1, f"{len(faces)} faces")
    return faces


# -------------------------------------------------------------------------------------------------------- identity
def identity_encoder(backend: str, device) -> Any:
    """The ``frgd.identity`` encoder (cached there; ``embed((B,3,H,W) [0,1]) -> (B,D)``)."""
    import frgd.identity

    return frgd.identity.get_identity_encoder(backend, device)


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
    """Load a reference photo; its largest face aligned to 128x128 (:func:`frgd.restore.reference_crop`)."""
    from frgd.io import file_sha256, load_image
    from frgd.restore import reference_crop

    img = load_image(path).to_uint8()
    crop = reference_crop(img, device=device, name=Path(path).name)
    return Reference(path=str(Path(path).resolve()), sha256=file_sha256(path), crop=to_uint8(crop))


# ------------------------------------------------------------------------------------------------------------ FRGD
def frgd_pipeline(model_dir: str | Path | None, device) -> Any:
    """A cached :class:`frgd.diffusion.sampling.pipeline.FRGDPipeline` for ``model_dir`` (default: installed model),
    loaded by :func:`frgd.restore.load_frgd_pipeline`."""
    from frgd.restore import load_frgd_pipeline

    path = Path(model_dir) if model_dir else default_model_dir()
    key = (str(path.resolve()), str(device))
    with _LOCK:
        pipe = _FRGD_CACHE.get(key)
    if pipe is None:
        pipe = load_frgd_pipeline(path, device=device)
        with _LOCK:
            _FRGD_CACHE[key] = pipe
    return pipe


def frgd_has_prior(model_dir: str | Path | None) -> bool | None:
    """Whether the cached FRGD pipeline of ``model_dir`` has a prior; ``None`` when none is loaded yet (no torch:
    the cache is cleared whenever the device or the model folder changes)."""
    path = str((Path(model_dir) if model_dir else default_model_dir()).resolve())
    with _LOCK:
        pipes = [p for (k, _d), p in _FRGD_CACHE.items() if k == path]
    return None if not pipes else any(getattr(p, "prior", None) is not None for p in pipes)


def clear_caches() -> None:
    with _LOCK:
        _FRGD_CACHE.clear()


@dataclass
class FRGDRequest:
    """Everything one Resample needs (copied from the document on the GUI thread)."""

    photo: np.ndarray  # (H, W, 3) uint8
    face: Face
    number: int  # 1-based face number
    mask: np.ndarray | None  # (128, 128) float, 1 = change; None = whole face
    base: np.ndarray | None  # (128, 128, 3) uint8 applied result kept outside the mask; None = the input crop
    base_mask: np.ndarray | None  # paste mask of ``base`` (None: the whole crop)
    references: list[np.ndarray]
    identity_strength: float
    num_samples: int
    seeds: list[int] | None
    steps: int
    model_dir: str | None
    harmonise: int = RESAMPLE  # harmonising passes per step
    candidates: int = 1  # with a reference: keep the most reference-like of this many per sample
    identity_gradient: str = IDENTITY_GRADIENT  # "x0": faster identity guidance, more cracks at the identity end
    input_quality: str = INPUT_QUALITY  # what a face (its masked part) is held to: auto, clean (input), degraded
    damage: np.ndarray | None = None  # (128, 128) float, 1 = the photo is damaged there (ignored, filled); None = none


def run_frgd(req: FRGDRequest, device, progress: ProgressFn | None, cancel: CancelToken | None) -> list[Sample]:
    """Run FRGD for one face (:class:`frgd.restore.FRGDRestorer`); one :class:`Sample` per seed (``(128, 128, 3)``
    uint8 with its paste mask)."""
    from frgd.diffusion.sampling.pipeline import normalize_seeds
    from frgd.restore import FaceRequest, FRGDRestorer

    pipe = frgd_pipeline(req.model_dir, device)
    check_cancel(cancel)
    restorer = FRGDRestorer(
        pipe, identity_strength=req.identity_strength, steps=int(req.steps), harmonise=int(req.harmonise),
        candidates=int(req.candidates) if req.references else 1,  # nothing to choose by without a reference
        identity_gradient=req.identity_gradient, prior_share=INPUT_QUALITIES[req.input_quality],
    )  # fmt: skip
    request = FaceRequest(
        mask=req.mask, base=req.base, base_paste_mask=req.base_mask, references=req.references, damage=req.damage
    )
    seeds = normalize_seeds(req.seeds, int(req.num_samples))
    face = photo_face(req.face, req.number)
    out = restorer.restore(req.photo, face, request, seeds, progress=progress, cancel=cancel)
    return [
        Sample(
            image=s.image,
            seed=s.seed,
            identity_strength=float(req.identity_strength),
            steps=int(req.steps),
            identity_score=s.identity_score,
            parameters=s.params,
            paste_mask=s.paste_mask,
        )
        for s in out
    ]


@dataclass
class FRGDFacesResult:
    """What :func:`run_frgd_faces` made: the samples of each request in order (fewer lists than requests when it was
    cancelled part way: the faces finished before the cancel)."""

    samples: list[list[Sample]]
    cancelled: bool = False


def run_frgd_faces(
    reqs: list[FRGDRequest], device, progress: ProgressFn | None, cancel: CancelToken | None
) -> FRGDFacesResult:
    """Run FRGD for several faces one after the other (:func:`run_frgd`; Resample All Faces), progress over all of
    them. A cancel stops at the next step; the faces finished before it are returned (``cancelled``), none finished
    raises :class:`frgd.jobs.Cancelled`."""
    out: list[list[Sample]] = []
    n = len(reqs)
    for i, req in enumerate(reqs):

        def part(done: int, total: int, message: str = "", i: int = i, number: int = req.number) -> None:
            report(progress, i * total + done, n * total, f"face {number} ({i + 1} of {n}): {message}")

        try:
            out.append(run_frgd(req, device, part, cancel))
        except Cancelled:
            if not out:
                raise
            return FRGDFacesResult(out, cancelled=True)
    return FRGDFacesResult(out)


def frgd_preview(req: FRGDRequest, device, cancel: CancelToken | None = None) -> np.ndarray | None:
    """The FRGD prior's estimate of the face of ``req`` (one cheap forward pass of
    :meth:`~frgd.diffusion.sampling.pipeline.FRGDPipeline.preview` on the crop the sampler receives,
    :func:`frgd.restore.faces.native_content`) as a ``(128, 128, 3)`` uint8 crop, pasted like a sample; ``None`` when
    the pipeline has no prior or cannot be loaded (the sampling job that follows reports why)."""
    from frgd.restore import FaceRequest, fit_crop, native_content, repair_content
    from frgd.tensor import image_to_tensor, tensor_to_image

    try:
        pipe = frgd_pipeline(req.model_dir, device)
        face = photo_face(req.face, req.number)
    except FRGDError as err:
        logger.info("no FRGD preview: %s", err)
        return None
    if getattr(pipe, "prior", None) is None:
        return None
    check_cancel(cancel)
    content = repair_content(native_content(req.photo, face.crop), FaceRequest(damage=req.damage))  # as sampled
    est = pipe.preview(image_to_tensor(content))
    return np.ascontiguousarray(fit_crop(tensor_to_image(est), face.crop.size))


# --------------------------------------------------------------------------------------------------- SR and GFPGAN
@dataclass
class UpscalerInfo:
    name: str
    label: str
    scales: tuple[int, ...]
    problem: str | None = None


def _bundled_sr_scales() -> dict[str, tuple[int, ...]]:
    from frgd.sr.registry import sr_methods

    return {m.name: m.scales for m in sr_methods() if m.bundled}


SR_SCALES = _bundled_sr_scales()
"""Scales of the upscalers that ship with FRGD Studio (no weights to check): :func:`frgd.sr.registry.sr_methods`."""


def sr_models() -> list[UpscalerInfo]:
    """Every upscaler the SR pane offers with its label and scales (:func:`frgd.sr.registry.sr_methods`; status not
    checked here: see :func:`sr_status`, which loads weights)."""
    from frgd.sr.registry import sr_methods

    return [UpscalerInfo(m.name, m.label, m.scales) for m in sr_methods()]


def sr_status(names: list[str]) -> dict[str, str | None]:
    """``{name: None if usable else the MissingWeightsError/FRGDError text}`` (worker thread: may load weights)."""
    from frgd.sr.registry import upscaler_status

    out = {}
    for n in names:
        s = upscaler_status(n)
        out[n] = None if s == "ready" else s
    return out


def repaired_photo(
    photo: np.ndarray,
    damage: np.ndarray | None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """The photo with its damage filled (:func:`frgd.diffusion.damage.repair_image`; ``damage``: the document's
    ``(H, W)`` uint8 layer, :func:`frgd.io.marked`); the photo itself without damage. Stops at ``cancel``. Worker
    thread (torch)."""
    if damage is None:
        return photo
    from frgd.diffusion.damage import repair_image

    return repair_image(photo, damage, progress=progress, cancel=cancel)


def detected_damage(photo: np.ndarray, device, progress: ProgressFn | None, cancel: CancelToken | None) -> (
    np.ndarray
):  # fmt: skip
    """The damage the detector finds in ``photo`` ``(H, W, 3)`` uint8 (:func:`frgd.scratch.detect_damage`), as an
    ``(H, W)`` uint8 layer (255 = damaged). Worker thread (torch); missing weights raise
    :class:`frgd.errors.MissingWeightsError` with the command that installs them."""
    from frgd.scratch import detect_damage, load_detector

    return detect_damage(photo, load_detector(device=device), progress=progress, cancel=cancel).mask


def upscaled_background(
    photo: np.ndarray, scale: int, device, progress, cancel, resume: TileResume | None = None
) -> tuple[np.ndarray, str]:
    """The result's background: ``photo`` ``(H, W, 3)`` uint8 (the photo, its damage filled) upscaled ``scale`` times
    by ``frgd enhance``'s background rule (:func:`frgd.restore.upscale_photo` with its default model: Real-ESRGAN on a
    GPU when installed, else Lanczos) -> ``((sH, sW, 3) uint8, the model used)``. ``resume``: a
    :class:`frgd.sr.tiling.TileResume` shared by the runs of one job (a run stopped to give way goes on at its next
    tile). Worker thread (torch)."""
    from frgd.restore import DEFAULT_SR_MODEL, upscale_photo

    return upscale_photo(photo, int(scale), DEFAULT_SR_MODEL, device=device, progress=progress, cancel=cancel,
                         resume=resume)  # fmt: skip


def run_sr(
    photo: np.ndarray, name: str, scale: int, device, progress, cancel, damage: np.ndarray | None = None
) -> np.ndarray:
    """Upscale the whole photo (:func:`frgd.restore.upscale_photo`), its damage filled first (``damage``: the
    document's layer, :func:`repaired_photo`): ``(H, W, 3)`` uint8 -> ``(sH, sW, 3)`` uint8."""
    from frgd.restore import upscale_photo

    photo = repaired_photo(photo, damage, cancel=cancel)
    return upscale_photo(photo, int(scale), name, device=device, progress=progress, cancel=cancel)[0]


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
    photo: np.ndarray,
    faces: list[Face],
    version: str,
    weight: float,
    scale: int,
    device,
    progress,
    cancel,
    min_score: float = FACE_MIN_SCORE,
    damage: np.ndarray | None = None,
) -> np.ndarray:
    """Restore the faces with GFPGAN (:class:`frgd.sr.gfpgan.GFPGANRestorer`, seed 0) and paste them over the photo
    upscaled ``scale`` times (:class:`frgd.restore.FacePipeline`) -> uint8 image.

    The editor's faces are passed on (no second detection); with none, the pipeline detects its own, with the
    editor's detection floor ``min_score`` (the "score ≥" setting), as Detect faces does. ``damage``: the document's
    damage layer ``(H, W)`` uint8, filled in the photo first, as ``frgd restore --damage`` does.
    """
    from frgd.restore import FacePipeline
    from frgd.sr.gfpgan import GFPGANRestorer

    restorer = GFPGANRestorer(version=version.lstrip("v"), device=device, weight=float(weight))
    out = FacePipeline(restorer, min_score=min_score)(
        photo, faces=list(faces) or None, seeds=[0], scale=int(scale), progress=progress, cancel=cancel, damage=damage,
    )  # fmt: skip
    return out.images[0]


# ------------------------------------------------------------------------------------------------ model facts, weights
def identity_backend_of(model_dir: str | Path | None, fallback: str) -> str:
    """The identity encoder of an FRGD model folder (:func:`frgd.diffusion.model.read_identity_info`, the one parse of
    ``identity.json``); ``fallback`` without a model. Worker thread (imports torch)."""
    if not model_dir:
        return fallback
    from frgd.diffusion.model import read_identity_info

    return read_identity_info(model_dir).backend


@dataclass(frozen=True)
class SREstimate:
    """Expected seconds of an upscale on this device, and the fast model suggested instead (``None``: none)."""

    name: str
    seconds: float
    alternative: str | None = None
    alternative_seconds: float | None = None


def sr_estimate(name: str, scale: int, height: int, width: int, device) -> SREstimate | None:
    """:func:`frgd.sr.registry.estimate_upscale_seconds` of a run of ``name`` on ``device``, with the
    :func:`frgd.sr.registry.fast_alternative` and its own estimate; ``None`` off the CPU (fast enough)."""
    from frgd.sr.registry import estimate_upscale_seconds, fast_alternative

    if getattr(device, "type", str(device)) != "cpu":
        return None
    seconds = float(estimate_upscale_seconds(name, int(scale), int(height), int(width), device))
    alt = fast_alternative(name, int(scale), device)
    alt_s = float(estimate_upscale_seconds(alt, int(scale), int(height), int(width), device)) if alt else None
    return SREstimate(name, seconds, alt, alt_s)


def download_weights(name: str, progress: ProgressFn | None, cancel: CancelToken | None) -> Path:
    """Fetch the manifest entry ``name`` (URL + sha256, :func:`frgd.weights.download`) with progress and cancel."""
    from frgd.weights import download

    return download(name, progress=False, on_progress=progress, cancel=cancel)


def import_weights(path: str | Path, name: str | None) -> tuple[str, Path]:
    """Install a weights file or model folder the user has (:func:`frgd.weights.import_model`)."""
    from frgd.weights import import_model

    return import_model(path, name)
