"""Whole photos: detect -> choose -> align once -> restore (any :class:`~frgd.restore.methods.Restorer`) -> paste back
over one background.

The background rule (:func:`background_model`, :func:`upscale_photo`): the rest of the photo is upscaled by the same
integer ``scale`` with the general SR pane (:class:`frgd.sr.upscale.UpscalePipeline`), so there is no sharp face on a
blurred body; ``scale="auto"`` is the scale at which the smallest chosen face's crop maps 1:1, within
:data:`AUTO_MAX_PIXELS` (:func:`auto_scale`).
Faces are pasted with :func:`paste_faces` (feathered, within each sample's paste mask), the one paste path of the
CLI and the editor. Images keep the photo's dtype (uint8 in, uint8 out), so the CLI and the editor produce the same
pixels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..faces.align import FaceCrop, paste_back
from ..faces.rules import FACE_MIN_SCORE, candidate_text, check_min_score, floor_to_take
from ..io import marked
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from .faces import (
    DetectFn,
    PhotoFace,
    align_faces,
    choose_faces,
    detect_photo_faces,
    face_numbers,
    reference_crop,
)
from .methods import FaceRequest, FaceSample, Restorer, identity_changed

if TYPE_CHECKING:
    from ..sr.tiling import TileResume

logger = logging.getLogger(__name__)

DEFAULT_SR_MODEL = "auto"
"""See :func:`background_model`."""
MAX_SCALE = 8
AUTO_MAX_PIXELS = 50_000_000
"""``scale="auto"`` stops where the output would pass this many pixels (a 50 MP camera's): a 12 px face in a
4000x3000 photo would otherwise ask for 6x, a 432 MP image of about 5 GB in float32 while it is made. An explicit
scale is not capped."""
DEFAULT_FEATHER = 0.1
"""Soft edge of a pasted face, as a fraction of its crop (:func:`frgd.faces.align.feather_mask`)."""
NO_UPSCALE = "none"
"""The background model reported at scale 1: the photo itself."""
REFERENCE_MATCH_MARGIN = 0.05
"""With references and several faces, ``reference_faces="best"`` gives them to the face most like them only when its
similarity (guidance encoder, cosine) beats every other face's by this much and is not under the identity meter's
"unlikely" line; otherwise to none. Measured with ``scripts/measure_reference_matching.py``
(``docs/results/reference_matching.json``) on 300 pairs of two faces128 val people, the reference another photo of
one of them, each face area-shrunk and upscaled back like a small face's crop: at full resolution the rule decides
95 % of the pairs, at 1/4 (a face about 17 px wide) 81 %, never for the wrong face; at 1/8 (8 px) 29 %, 1.2 % of
those wrong; at 1/16 5 %, 12.5 % wrong. A reference of a third person goes to one of the two in 7.7 / 9.0 / 8.7 /
3.7 % of the pairs. With the floor but no margin: 0.3 / 1.4 / 11 / 34 % wrong, 10 / 14 / 22 / 13 % to a stranger."""
REFERENCE_FACES = ("best", "all")
"""``reference_faces`` words; face numbers (``"1,3"``) choose them by hand."""


# ------------------------------------------------------------------------------------------------------ background
def auto_scale(native_scale: float, photo_shape: tuple[int, int] | None = None) -> int:
    """Integer photo scale at which a face crop with ``native_scale`` source px per crop px maps 1:1:
    ``round(1 / native_scale)`` in ``1..8`` (a face larger than its crop: 1), and no more than keeps a photo of
    ``photo_shape`` ``(H, W)`` within :data:`AUTO_MAX_PIXELS` (at least 1)."""
    if native_scale <= 0 or not math.isfinite(native_scale):
        return 1
    scale = int(min(MAX_SCALE, max(1, round(1.0 / native_scale))))
    return scale if photo_shape is None else min(scale, fitting_scale(photo_shape))


def fitting_scale(photo_shape: tuple[int, int]) -> int:
    """The largest integer scale that keeps a photo of ``photo_shape`` ``(H, W)`` within :data:`AUTO_MAX_PIXELS`
    (at least 1)."""
    return max(1, int(math.floor(math.sqrt(AUTO_MAX_PIXELS / max(1, int(photo_shape[0]) * int(photo_shape[1]))))))


def faces_scale(native_scales: Iterable[float], photo_shape: tuple[int, int] | None = None) -> int:
    """``scale="auto"`` for a photo whose restored faces' crops have ``native_scales`` (source px per crop px): the
    :func:`auto_scale` of the smallest, so every face maps at least 1:1 (no face: 1). The rule of ``frgd enhance`` and
    of the editor's result size."""
    return auto_scale(min(native_scales, default=1.0), photo_shape)


def background_model(name: str, scale: int, device: Any = "cpu") -> str:
    """THE background rule. ``"auto"``: ``realesrgan-x4plus`` on a CUDA device at a scale of 2..4 (its range) when its
    converted weights are installed (on a CPU it takes minutes for a photo), else ``lanczos`` (MATLAB lanczos3,
    always available); scale 1: :data:`NO_UPSCALE`. Other names are returned unchanged."""
    if int(scale) == 1:
        return NO_UPSCALE
    if name != "auto":
        return name
    import torch

    if torch.device(device).type == "cuda" and int(scale) <= 4:
        from ..sr.registry import upscaler_status

        if upscaler_status("realesrgan-x4plus") == "ready":
            return "realesrgan-x4plus"
    return "lanczos"


def upscale_photo(
    photo: np.ndarray,
    scale: int,
    sr_model: str = DEFAULT_SR_MODEL,
    *,
    device: Any = "cpu",
    tile: int | str | None = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    resume: TileResume | None = None,
) -> tuple[np.ndarray, str]:
    """``photo`` ``(H, W, 3)`` upscaled ``scale`` times (tiled) by :func:`background_model`'s choice, in the photo's
    dtype (uint8, uint16 or float32) -> ``(image (sH, sW, 3), model used)``. An 8-bit photo's tiles are rounded
    into an 8-bit buffer as they are made (a quarter of a float32 one). ``resume``: pass the same
    :class:`frgd.sr.tiling.TileResume` to every run of one upscale, and a run stopped by ``cancel`` is gone on with
    at its next tile."""
    import torch

    from ..sr.upscale import UpscalePipeline
    from ..tensor import image_to_tensor, tensor_to_image

    name = background_model(sr_model, scale, device)
    if name == NO_UPSCALE:
        return np.array(photo, copy=True), name
    eight_bit = photo.dtype == np.uint8
    res = UpscalePipeline(name, int(scale), device=device)(
        image_to_tensor(photo), tile=tile, progress=progress, cancel=cancel, resume=resume,
        out_dtype=torch.uint8 if eight_bit else torch.float32,
    )  # fmt: skip
    dtype = photo.dtype if photo.dtype in (np.uint8, np.uint16) else np.float32
    return tensor_to_image(res.image, dtype), name


def paste_faces(
    canvas: np.ndarray,
    pastes: Iterable[tuple[FaceCrop, np.ndarray, np.ndarray | None]],
    scale: float = 1.0,
    feather: float = DEFAULT_FEATHER,
    keep_detail: bool = True,
    origin: tuple[int, int] = (0, 0),
    full_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """THE paste path: each ``(crop, image (S', S', 3), paste_mask (S', S') | None)`` blended into ``canvas`` (the
    photo, or the photo upscaled ``scale`` times) with :func:`frgd.faces.align.paste_back` (``keep_detail``: a face
    larger on the canvas than its restored crop keeps the canvas's finer detail where the restore agrees with it).
    ``origin``, ``full_size``: ``canvas`` is the window at ``origin`` ``(y, x)`` of a canvas of ``full_size``
    ``(H, W)`` holding every face's :func:`frgd.faces.align.paste_box` (its pixels come out as in the whole canvas).
    Returns a new array."""
    out = canvas
    for crop, image, mask in pastes:
        out = paste_back(out, crop, image, canvas_scale=float(scale), feather=feather, mask=mask,
                         keep_detail=keep_detail, origin=origin, full_size=full_size)  # fmt: skip
    return out if out is not canvas else canvas.copy()


# ------------------------------------------------------------------------------------------------------ references
@dataclass(frozen=True)
class ReferenceChoice:
    """Which faces the references go to: ``numbers`` (face numbers), each face's ``similarities`` to them (face
    number -> cosine; ``None`` when not measured) and ``note`` (why none was chosen, with what to do)."""

    numbers: tuple[int, ...]
    similarities: dict[int, float] | None = None
    note: str | None = None


def choose_reference_faces(
    numbers: Sequence[int],
    selection: str | int | Sequence[int] = "best",
    *,
    has_references: bool = True,
    similarities: Sequence[float] | None = None,
    min_similarity: float | None = None,
) -> ReferenceChoice:
    """THE rule for references in a photo of several people. ``numbers``: the faces to restore; ``similarities``:
    theirs to the references (same order; needed for ``"best"`` with several faces). ``selection``:

    * ``"best"``: the face most like the references gets them if it beats every other by
      :data:`REFERENCE_MATCH_MARGIN` and reaches ``min_similarity`` (the identity meter's "unlikely" line: a reference
      of nobody in the photo then mostly goes to no one); the only face always does. Otherwise none, and ``note``
      says how to choose;
    * ``"all"``: every face (each is pulled towards the reference's identity);
    * face numbers (``2``, ``[1, 3]``, ``"1,3"``): those, which must be among ``numbers``.

    Without references (``has_references`` False) no face gets any.
    """
    numbers = [int(n) for n in numbers]
    sims = None if similarities is None else dict(zip(numbers, (float(v) for v in similarities)))
    key = selection.strip().lower() if isinstance(selection, str) else None
    if key not in REFERENCE_FACES:
        wanted = face_numbers(
            selection, f"unknown reference faces {selection!r}; use best, all or face numbers like 1,3"
        )
        missing = [n for n in wanted if n not in numbers]
        if missing or not wanted:
            raise InputError(
                f"the reference can only go to restored faces ({', '.join(map(str, numbers)) or 'none'}), "
                f"not {', '.join(map(str, missing)) or 'none'}"
            )
        return ReferenceChoice(tuple(n for n in numbers if n in wanted) if has_references else (), sims)
    if not has_references:
        return ReferenceChoice((), sims)
    if key == "all" or len(numbers) <= 1:
        return ReferenceChoice(tuple(numbers), sims)
    if sims is None:
        raise ValueError("choosing the best face for the references needs their similarities")
    (best, s1), (second, s2) = sorted(sims.items(), key=lambda kv: kv[1], reverse=True)[:2]
    if min_similarity is not None and s1 < min_similarity:
        why = f"no face looks like it (the most alike, face {best}, scores {s1:.2f}, under {min_similarity:.2f})"
    elif s1 - s2 < REFERENCE_MATCH_MARGIN:
        why = f"faces {best} and {second} look about equally like it ({s1:.2f}, {s2:.2f})"
    else:
        return ReferenceChoice((best,), sims)
    return ReferenceChoice((), sims, f"the reference was used for no face: {why}; choose with --reference-faces N")


# ------------------------------------------------------------------------------------------------------ outputs
@dataclass(eq=False)
class RestoredFace:
    """One face of a :class:`RestoreOutput`: the face (number, box, landmarks, aligned ``crop`` with its affine) and
    its ``samples`` (one per seed, each with its image, paste mask, identity score and verdict)."""

    face: PhotoFace
    samples: list[FaceSample]
    reference: bool = False
    """The restorer's references were used for this face (:func:`choose_reference_faces`)."""
    reference_similarity: float | None = None
    """The face's input's similarity to the references, when it was measured."""

    @property
    def number(self) -> int:
        return self.face.number

    @property
    def crop(self) -> FaceCrop:
        return self.face.crop

    def to_json(self) -> dict[str, Any]:
        scores = [s.identity_score for s in self.samples]
        return {
            **self.face.to_json(),
            "seeds": [s.seed for s in self.samples],
            "reference": self.reference,
            "reference_similarity": None if self.reference_similarity is None else round(self.reference_similarity, 4),
            "identity_scores": None if all(v is None for v in scores) else [round(float(v), 4) for v in scores],
            "verdicts": None if all(s.verdict is None for s in self.samples) else [s.verdict for s in self.samples],
        }


@dataclass
class RestoreOutput:
    """Result of :class:`FacePipeline`.

    Attributes:
        images: one whole photo per seed (``seeds[k]`` made ``images[k]``), ``(H * scale, W * scale, 3)`` in the
            photo's dtype.
        seeds: the seeds; faces: the restored faces (numbered left to right); background: the upscaled photo the
            faces were pasted onto; scale / sr_model: its scale and model; method / model: the restorer;
        identity_changed: :func:`frgd.restore.methods.identity_changed` of the restored faces.
    """

    images: list[np.ndarray]
    seeds: list[int]
    faces: list[RestoredFace]
    background: np.ndarray
    scale: int
    sr_model: str
    method: str
    model: str
    identity_changed: bool
    timings: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def verdicts(self, k: int) -> list[str | None]:
        """Per face, the identity meter's line for output ``k`` (``None`` without a reference)."""
        return [f.samples[k].verdict for f in self.faces]


# ------------------------------------------------------------------------------------------------------ pipeline
class FacePipeline:
    """Restore the faces of whole photos with one :class:`~frgd.restore.methods.Restorer` over one background.

    Args:
        restorer: e.g. :class:`~frgd.restore.methods.FRGDRestorer` or :class:`frgd.sr.gfpgan.GFPGANRestorer`.
        sr_model: background upscaler name or ``"auto"`` (:func:`background_model`).
        detect_fn: face detector (default MTCNN on the restorer's device).
        tile: background tile size (``"auto"``, px, or 0 = whole photo).
        feather: paste soft edge (fraction of the crop).
        min_score: smallest MTCNN score of a face (:data:`frgd.faces.rules.FACE_MIN_SCORE`), photos and references.
    """

    def __init__(
        self,
        restorer: Restorer,
        *,
        sr_model: str = DEFAULT_SR_MODEL,
        detect_fn: DetectFn | None = None,
        tile: int | str | None = "auto",
        feather: float = DEFAULT_FEATHER,
        min_score: float = FACE_MIN_SCORE,
    ) -> None:
        self.min_score = check_min_score(min_score)
        self.restorer = restorer
        self.sr_model = sr_model
        self.detect_fn = detect_fn
        self.tile = tile
        self.feather = float(feather)

    @property
    def device(self) -> Any:
        return self.restorer.device

    def detect(
        self,
        photo: np.ndarray,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        rejected: list | None = None,
    ) -> list[PhotoFace]:
        """Every face of ``photo`` ``(H, W, 3)``, numbered left to right, aligned at the restorer's crop size
        (``progress`` / ``cancel``: the tiled pass over a large photo; ``rejected``: the candidates under the floor
        are appended, for :meth:`no_face_message`)."""
        return detect_photo_faces(
            photo,
            device=self.device,
            detect_fn=self.detect_fn,
            size=self.restorer.crop_size,
            min_score=self.min_score,
            progress=progress,
            cancel=cancel,
            rejected=rejected,
        )

    def reference_choice(self, faces: Sequence[PhotoFace], selection: str | int | Sequence[int]) -> ReferenceChoice:
        """:func:`choose_reference_faces` for the faces to restore: their similarities to the restorer's references
        are measured when the rule needs them (references and several faces)."""
        has = bool(self.restorer.references)
        sims = self.restorer.reference_similarities(faces) if has and len(faces) > 1 else None
        floor = self.restorer.reference_min_similarity() if sims is not None else None
        return choose_reference_faces([f.number for f in faces], selection, has_references=has, similarities=sims,
                                      min_similarity=floor)  # fmt: skip

    def no_face_message(self, candidates: Sequence[Any]) -> str:
        """Why :meth:`detect` found nothing, and what to do: the best of the ``candidates`` it rejected under the floor
        (its ``rejected``), when there is one."""
        if not candidates:
            return "no face detected in the photo"
        best = max(candidates, key=lambda f: f.score)
        return (
            f"no face detected in the photo with a score of at least {self.min_score:g}; the best candidate scored "
            f"{candidate_text(best)}: if it is a face, lower the floor below that score (--min-score "
            f"{floor_to_take(best.score):.2f})"
        )

    def reference_crops(self, photos: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The largest face of each reference photo, aligned like the photo's faces."""
        return [
            reference_crop(p, device=self.device, detect_fn=self.detect_fn, name=str(i + 1), min_score=self.min_score)
            for i, p in enumerate(photos)
        ]

    def check_inputs(
        self,
        photo: np.ndarray,
        num_samples: int,
        scale: int | str,
        mask: np.ndarray | None,
        damage: np.ndarray | None = None,
    ) -> np.ndarray:
        """The photo as an ``(H, W, 3)`` array; :class:`InputError` on a bad argument."""
        arr = np.asarray(photo)
        if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
            raise InputError(f"expected an (H, W, 3) RGB photo at least 8x8, got shape {arr.shape}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"samples must be a positive integer, got {num_samples!r}")
        if scale != "auto":
            try:
                s = float(scale)
            except (TypeError, ValueError):
                raise InputError(f"scale must be 'auto' or an integer, got {scale!r}") from None
            if s != int(s) or not 1 <= s <= MAX_SCALE:
                raise InputError(f"scale must be an integer in 1..{MAX_SCALE}, got {scale}")
        for name, m in (("mask", mask), ("damage", damage)):
            if m is not None and np.asarray(m).shape != arr.shape[:2]:
                raise InputError(
                    f"{name} must be the photo's size {arr.shape[1]}x{arr.shape[0]}, got shape {np.asarray(m).shape}"
                )
        if arr.dtype not in (np.uint8, np.uint16):
            arr = np.clip(arr.astype(np.float32), 0.0, 1.0)
        return np.ascontiguousarray(arr)

    def __call__(
        self,
        photo: np.ndarray,
        *,
        faces: Sequence[Any] | None = None,
        which: str | int | Sequence[int] = "all",
        num_samples: int = 1,
        seeds: Sequence[int] | int | None = None,
        scale: int | str = "auto",
        mask: np.ndarray | None = None,
        damage: np.ndarray | None = None,
        require_faces: bool = False,
        reference_faces: str | int | Sequence[int] = "best",
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> RestoreOutput:
        """Restore the chosen faces of ``photo`` ``(H, W, 3)`` and paste them over its upscaled background.

        Args:
            faces: detections (``box``, ``score``, ``landmarks``) to use instead of detecting; ``which``: the faces
                to restore (:func:`frgd.restore.faces.choose_faces`: all, largest, center or numbers like ``1,3``).
            num_samples / seeds: one output photo per seed (:func:`normalize_seeds`: ``None`` random, ``k`` ->
                ``k, k+1, ...``); every face uses the same seeds.
            mask: photo-sized ``(H, W)`` float in ``[0, 1]`` (1 = faces may change there), warped into every crop.
            damage: photo-sized ``(H, W)`` float in ``[0, 1]`` (1 = the photo is damaged there: a scratch, a stain):
                the photo is filled there before anything else (:func:`frgd.diffusion.damage.repair_image`, so the
                detector, the background and every face see the repaired photo), and every face's restorer is told
                where (``FaceRequest.damage``, warped into its crop: FRGD takes the prior's estimate there).
            require_faces: raise :class:`InputError` when no face is found (else the output is the background).
            reference_faces: which restored faces the restorer's references go to (:func:`choose_reference_faces`:
                ``"best"``, ``"all"`` or face numbers); the others are restored without them.
        """
        from ..diffusion.sampling.pipeline import normalize_seeds

        t0 = time.perf_counter()
        img = self.check_inputs(photo, num_samples, scale, mask, damage)
        damage01 = None if damage is None else _unit_mask(damage)
        if damage01 is not None:
            from ..diffusion.damage import repair_image

            img = repair_image(img, damage01, cancel=cancel)
        seed_list = normalize_seeds(seeds, num_samples)
        check_cancel(cancel)
        size = self.restorer.crop_size
        rejected: list[Any] = []  # the candidates under the floor, for the message below
        found = self.detect(img, progress, cancel, rejected) if faces is None else align_faces(img, faces, size)
        chosen = choose_faces(found, which)
        if require_faces and not chosen:
            raise InputError(self.no_face_message(rejected) if faces is None else "no face detected in the photo")
        t_detect = time.perf_counter() - t0
        refs = self.reference_choice(chosen, reference_faces)
        if refs.note:
            logger.warning("%s", refs.note)
        if scale == "auto":
            natives = [f.crop.native_scale for f in chosen]
            photo_scale, wanted = faces_scale(natives, img.shape[:2]), faces_scale(natives)
            if photo_scale < wanted:
                logger.info("auto scale %dx: the smallest face would need %dx, above %d MP; give the scale to force it",
                            photo_scale, wanted, AUTO_MAX_PIXELS // 1_000_000)  # fmt: skip
        else:
            photo_scale = int(scale)
        mask01 = None if mask is None else _unit_mask(mask)

        units = self.restorer.progress_units(num_samples)
        total = len(chosen) * units + 1
        report(progress, 0, total, f"{len(chosen)} face(s)")
        restored: list[RestoredFace] = []
        t_restore = time.perf_counter()
        for j, face in enumerate(chosen):
            check_cancel(cancel)
            with_refs = face.number in refs.numbers
            request = FaceRequest(
                mask=None if mask01 is None else _crop_mask(mask01, face.crop),
                references=None if with_refs else [],
                damage=None if damage01 is None else crop_damage(damage01, face.crop),
            )

            def face_progress(done: int, tot: int, msg: str, j: int = j, face: PhotoFace = face) -> None:
                report(progress, j * units + round(units * done / max(tot, 1)), total,
                       f"face {face.number} ({j + 1}/{len(chosen)}): {msg}")  # fmt: skip

            samples = self.restorer.restore(img, face, request, seed_list, progress=face_progress, cancel=cancel)
            sim = None if refs.similarities is None else refs.similarities.get(face.number)
            restored.append(RestoredFace(face, samples, with_refs, sim))
            report(progress, (j + 1) * units, total, f"face {face.number} ({j + 1}/{len(chosen)})")
        t_restore = time.perf_counter() - t_restore

        check_cancel(cancel)
        t_sr = time.perf_counter()
        background, sr_name = upscale_photo(
            img, photo_scale, self.sr_model, device=self.device, tile=self.tile, cancel=cancel
        )
        t_sr = time.perf_counter() - t_sr
        images = [
            paste_faces(
                background,
                [(r.crop, r.samples[k].image, r.samples[k].paste_mask) for r in restored],
                photo_scale,
                self.feather,
            )  # fmt: skip
            for k in range(len(seed_list))
        ]
        report(progress, total, total, "done")
        params = {
            "method": self.restorer.method,
            "model": self.restorer.name,
            **self.restorer.params(),
            "num_samples": len(seed_list),
            "scale": photo_scale,
            "sr_model": sr_name,
            "faces": [r.number for r in restored],
            "min_score": self.min_score,
            "reference_faces": list(refs.numbers),
            "reference_note": refs.note,
            "masked": mask is not None,
            "damage": None if damage01 is None else round(float(marked(damage01).mean()), 6),
        }
        return RestoreOutput(
            images=images,
            seeds=seed_list,
            faces=restored,
            background=background,
            scale=photo_scale,
            sr_model=sr_name,
            method=self.restorer.method,
            model=self.restorer.name,
            identity_changed=identity_changed(s.method for r in restored for s in r.samples),
            timings={"detect": t_detect, "restore": t_restore, "upscale": t_sr, "total": time.perf_counter() - t0},
            params=params,
        )


def _unit_mask(mask: np.ndarray) -> np.ndarray:
    """A photo mask as float32 in ``[0, 1]`` (uint8 / uint16 / 0..255 floats scaled)."""
    m = np.asarray(mask)
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255.0
    if m.dtype == np.uint16:
        return m.astype(np.float32) / 65535.0
    m = m.astype(np.float32)
    return np.clip(m / 255.0 if m.max() > 1.0 else m, 0.0, 1.0)


def _warp_damage(damage: np.ndarray, affine: np.ndarray, size: tuple[int, int], footprint: float) -> np.ndarray:
    """``damage`` (:func:`frgd.io.marked`: above one half, uint8 above 127) warped by the 2x3
    ``affine`` into a ``size`` ``(w, h)`` frame -> ``{0, 1}`` float32 (bilinear, at least half damaged).
    ``footprint``: source px per destination px; above 1 the damage is widened by it first, so a one-pixel scratch is
    not lost between the samples of the warp."""
    import cv2

    hard = marked(damage).astype(np.uint8)
    step = int(np.ceil(max(float(footprint), 1.0)))
    if step > 1:
        hard = cv2.dilate(hard, np.ones((step, step), np.uint8))
    m = cv2.warpAffine(hard.astype(np.float32), np.asarray(affine, np.float64), size, flags=cv2.INTER_LINEAR)
    return (m >= 0.5).astype(np.float32)


def frame_damage(damage: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A damage layer ``(H, W)`` (float in ``[0, 1]`` or uint8 0..255) in the frame of the 2x3 ``affine`` (source ->
    frame), ``size`` ``(w, h)`` -> ``{0, 1}`` float32 ``(h, w)``: :func:`_warp_damage`, widened first by the source
    pixels per frame pixel when the frame is coarser than the source. The one rule of :func:`crop_damage` (photo ->
    a face's crop) and :func:`photo_damage` (crops -> photo)."""
    a = np.asarray(affine, np.float64)
    footprint = 1.0 / max(float(np.sqrt(abs(np.linalg.det(a[:, :2])))), 1e-6)  # source px per frame px
    return _warp_damage(damage, a, (int(size[0]), int(size[1])), footprint)


def crop_damage(damage01: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """The photo's damage ``(H, W)`` (float in ``[0, 1]`` or uint8 0..255) as a ``{0, 1}`` float32 mask in the face's
    crop frame ``(S, S)`` (:func:`frame_damage` by the face's affine: a face larger than its crop has its damage
    widened first by the crop's footprint in photo pixels)."""
    return frame_damage(damage01, crop.affine, (crop.size, crop.size))


def photo_damage(shape: tuple[int, int], layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """The faces' damage in the photo: ``layers`` are ``(damage, inverse)`` pairs, a crop-frame damage ``(S, S)`` in
    ``[0, 1]`` and its face's 2x3 crop -> photo affine; -> ``(H, W)`` ``{0, 1}`` float32, their union
    (:func:`frame_damage`, the mirror of :func:`crop_damage`: a face smaller than its crop widened first by its
    footprint), or ``None`` when nothing is marked."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), np.float32)
    for damage, inverse in layers:
        if not marked(damage).any():
            continue
        out = np.maximum(out, frame_damage(damage, inverse, (w, h)))
    return out if out.any() else None


def _crop_mask(mask01: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """The photo mask ``(H, W)`` in the face's crop frame ``(S, S)`` (the face's one affine, bilinear)."""
    import cv2

    m = cv2.warpAffine(mask01, crop.affine, (crop.size, crop.size), flags=cv2.INTER_LINEAR)
    return np.clip(m, 0.0, 1.0)


__all__ = [
    "DEFAULT_FEATHER",
    "DEFAULT_SR_MODEL",
    "AUTO_MAX_PIXELS",
    "MAX_SCALE",
    "REFERENCE_FACES",
    "REFERENCE_MATCH_MARGIN",
    "NO_UPSCALE",
    "FacePipeline",
    "RestoreOutput",
    "ReferenceChoice",
    "RestoredFace",
    "auto_scale",
    "crop_damage",
    "faces_scale",
    "fitting_scale",
    "frame_damage",
    "background_model",
    "choose_reference_faces",
    "paste_faces",
    "photo_damage",
    "upscale_photo",
]
