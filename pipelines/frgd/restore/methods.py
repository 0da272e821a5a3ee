"""Face restorers: one class per method behind one base class (:class:`Restorer`) and one registry
(:data:`RESTORERS`).

A restorer turns one aligned face into samples (:class:`FaceSample`): :class:`FRGDRestorer` (identity-guided diffusion:
references, the identity slider, a mask, seeds, steps, scheduler) and :class:`frgd.sr.gfpgan.GFPGANRestorer`
(GFPGAN v1.3 / v1.4). A new method is one :class:`Restorer` subclass (``method``, ``name``, ``crop_size``, ``device``,
:meth:`Restorer.restore_crop`) plus one :data:`RESTORERS` entry (importing the registry loads no torch).
:func:`identity_changed` is the one rule for the provenance flag.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InputError, MissingWeightsError
from ..faces.align import FACE_SIZE
from ..io import marked, to_uint8
from ..jobs import CancelToken, ProgressFn
from .faces import PhotoFace, native_content

if TYPE_CHECKING:
    import torch

    from ..diffusion.sampling.pipeline import FRGDPipeline

logger = logging.getLogger(__name__)

FRGD_MODEL_NAME = "frgd-128"
"""The weights entry of the shipped FRGD model (the default of ``frgd enhance`` and the editor)."""


# ------------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class RestorerSpec:
    """One restoration method: ``target`` ``"module:Class"`` (imported on first use), ``generative``: its faces can
    look like another person than the input (the ``identity_changed`` flag), ``help`` for the CLI."""

    name: str
    target: str
    generative: bool
    help: str


RESTORERS: dict[str, RestorerSpec] = {
    "frgd": RestorerSpec(
        "frgd", "frgd.restore.methods:FRGDRestorer", True,
        "FRGD identity-guided diffusion (references, identity slider, mask, seeds, steps, scheduler)",
    ),
    "gfpgan": RestorerSpec(
        "gfpgan", "frgd.sr.gfpgan:GFPGANRestorer", True, "GFPGAN v1.3 / v1.4 (a generative face prior)"
    ),
}  # fmt: skip
"""Every restoration method by name (``frgd restore --method``, the editor's panes)."""


def restorer_class(method: str) -> type:
    """The restorer class of ``method`` (:data:`RESTORERS`); :class:`InputError` for an unknown one."""
    spec = RESTORERS.get(method)
    if spec is None:
        raise InputError(f"unknown restoration method {method!r}; choose one of {', '.join(RESTORERS)}")
    module, cls = spec.target.split(":")
    return getattr(importlib.import_module(module), cls)


def identity_changed(methods: Iterable[str | None]) -> bool:
    """THE ``identity_changed`` rule (CLI outputs and the editor alike): True when any face of the result was replaced
    by the output of a generative restorer (FRGD with or without a reference, GFPGAN; unknown methods count as
    generative); ``None`` entries (an untouched face, a plain upscale) do not count."""
    return any(m is not None and (m not in RESTORERS or RESTORERS[m].generative) for m in methods)


# ------------------------------------------------------------------------------------------------------ requests
@dataclass
class FaceRequest:
    """Per-face inputs of a restorer, all in the face's aligned crop frame (``S = crop_size``).

    Attributes:
        mask: ``(S, S)`` float in ``[0, 1]``, 1 = may change (FRGD samples inside ``mask > 0.5``); ``None``: the
            whole face. The samples' paste mask follows from it (:func:`union_paste_mask`).
        base: ``(S, S, 3)`` an earlier result kept outside the mask; ``None``: the aligned input crop.
        base_paste_mask: the paste mask of ``base`` (``None``: the whole crop); ignored without ``base``.
        references: aligned reference crops ``(h, w, 3)`` (FRGD); ``None``: the restorer's own.
        damage: ``(S, S)`` float in ``[0, 1]``, 1 = the input is damaged there (a scratch, a stain): every restorer
            gets its input filled there (:func:`frgd.diffusion.damage.repair_image`), FRGD also takes the prior's
            estimate as its content there (:mod:`frgd.diffusion.damage`); ``None``: no damage.
    """

    mask: np.ndarray | None = None
    base: np.ndarray | None = None
    base_paste_mask: np.ndarray | None = None
    references: Sequence[np.ndarray] | None = None
    damage: np.ndarray | None = None

    def damage_at(self, hw: tuple[int, int]) -> np.ndarray | None:
        """The damage as a ``{0, 1}`` float32 mask ``(h, w)`` at another size (a pixel is damaged when any part of
        it is, :func:`frgd.diffusion.damage.damage_at`); ``None`` without damage or when none is marked."""
        if self.damage is None or not marked(self.damage).any():
            return None
        import torch

        from ..diffusion.damage import damage_at

        d = torch.from_numpy(np.ascontiguousarray(self.damage, np.float32))[None, None]
        return damage_at(d, (int(hw[0]), int(hw[1])))[0, 0].numpy()

    def paste_mask(self) -> np.ndarray | None:
        """Where the samples of this request may differ from the input: ``None`` (the whole crop, feathered) or
        ``(S, S)`` float in ``[0, 1]``; with a ``base``, the union with its own paste mask."""
        if self.mask is None:
            return None
        mask = np.clip(np.asarray(self.mask, np.float32), 0.0, 1.0)
        if self.base is None:
            return mask
        return union_paste_mask(self.base_paste_mask, mask)


def union_paste_mask(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Paste mask covering both ``a`` and ``b`` (``None`` = the whole crop): ``None`` if either is, else the max."""
    if a is None or b is None:
        return None
    return np.maximum(np.asarray(a, np.float32), np.asarray(b, np.float32))


@dataclass
class FaceSample:
    """One restored face.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB, the aligned crop frame (``S`` = the restorer's ``crop_size``).
        seed: the seed that made it.
        method: the :data:`RESTORERS` name.
        paste_mask: ``(S, S)`` float in ``[0, 1]`` or ``None`` (the whole crop): where it may be pasted.
        identity_score: the identity meter's similarity to the reference (FRGD with a reference), else ``None``.
        verdict: the meter's line ("same person: likely (...)"), else ``None``.
        params: method parameters for provenance (model, steps, identity_meter, ...).
    """

    image: np.ndarray
    seed: int
    method: str
    paste_mask: np.ndarray | None = None
    identity_score: float | None = None
    verdict: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def identity_changed(self) -> bool:
        return identity_changed([self.method])


MONOCHROME_CHROMA = 2.0
"""A face crop whose mean chroma (per pixel, the largest distance of a channel from the mean of the three, in 8-bit
levels) is below this is black and white, and every restoration of it is made black and white too (its BT.601 luma):
a restorer must not tint a black-and-white photo (FRGD left up to 8-11 levels of colour on the faces of three shared
old photos turned grey; GFPGAN's own helper does the same). Sepia or colour faces are far above it (old photos of the
shared real set: 11-32 levels; faces128 val: 1 face of 1,745 below, itself a grey LFW photo)."""


def is_monochrome(img: np.ndarray) -> bool:
    """``img`` ``(H, W, 3)`` (uint8, uint16 or float [0, 1]) is black and white (:data:`MONOCHROME_CHROMA`)."""
    from ..io import to_float

    f = to_float(np.asarray(img))
    return float(np.abs(f - f.mean(axis=2, keepdims=True)).max(axis=2).mean()) * 255.0 < MONOCHROME_CHROMA


def keep_monochrome(crop: np.ndarray | None, samples: list[FaceSample]) -> list[FaceSample]:
    """THE black-and-white rule: when the input ``crop`` is monochrome (:func:`is_monochrome`), each sample's
    ``(S, S, 3)`` uint8 image becomes its BT.601 luma in all three channels (``params["monochrome"] = True``)."""
    if crop is None or not samples or not is_monochrome(crop):
        return samples
    import cv2

    out = []
    for smp in samples:
        grey = cv2.cvtColor(np.ascontiguousarray(smp.image), cv2.COLOR_RGB2GRAY)
        out.append(replace(smp, image=np.repeat(grey[..., None], 3, axis=2), params={**smp.params, "monochrome": True}))
    return out


# ------------------------------------------------------------------------------------------------------ protocol
class Restorer(abc.ABC):
    """A restoration method: what :class:`frgd.restore.FacePipeline` and the editor need of it. Subclasses set
    ``method`` (the :data:`RESTORERS` name), ``name`` (model name for provenance: ``frgd-128``, ``gfpgan-v1.4``),
    ``crop_size`` (side ``S`` of the aligned crop it restores: 128 for FRGD, the GFPGAN model's ``out_size``),
    ``device`` and, if it takes them, ``references``, and implement :meth:`restore_crop`."""

    method: ClassVar[str] = ""
    name: str = ""
    crop_size: int = FACE_SIZE
    device: Any = "cpu"
    references: Sequence[np.ndarray] = ()
    """Aligned reference crops of the person (FRGD); a method without references keeps none."""

    def content(self, photo: np.ndarray, face: PhotoFace) -> np.ndarray:
        """The restorer's input for ``face`` of ``photo`` (here the aligned crop)."""
        return face.crop.image

    def restore(
        self,
        photo: np.ndarray,
        face: PhotoFace,
        request: FaceRequest | None = None,
        seeds: Sequence[int] = (0,),
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[FaceSample]:
        """Restore ``face`` of ``photo`` ``(H, W, 3)`` (aligned at ``crop_size``): one sample per seed."""
        if face.crop.size != self.crop_size:
            raise InputError(
                f"{self.method} restores {self.crop_size} px crops, the face is aligned at {face.crop.size}"
            )
        request = request or FaceRequest()
        content = repair_content(self.content(photo, face), request)
        samples = self.restore_crop(
            content, request, list(seeds), crop=face.crop.image, progress=progress, cancel=cancel
        )  # fmt: skip
        return keep_monochrome(face.crop.image, samples)

    @abc.abstractmethod
    def restore_crop(
        self,
        content: np.ndarray,
        request: FaceRequest,
        seeds: Sequence[int],
        *,
        crop: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[FaceSample]:
        """Restore one face ``content`` ``(h, w, 3)``: one :class:`FaceSample` per seed. ``crop``: the aligned input
        crop ``(S, S, 3)`` (the default base), ``None`` for a face given as an aligned crop."""

    def progress_units(self, num_samples: int) -> int:
        """Progress steps of one :meth:`restore_crop` call."""
        return num_samples

    def reference_similarities(self, faces: Sequence[PhotoFace]) -> list[float] | None:
        """How much each face's aligned input looks like this restorer's references (cosine similarity), to decide
        which face they are of; ``None``: the method takes no references, or none are set."""
        return None

    def reference_min_similarity(self) -> float | None:
        """The similarity under which a face is "unlikely" the references' person (the identity meter's calibrated
        line for the encoder of :meth:`reference_similarities`); ``None``: no calibration."""
        return None

    def params(self) -> dict[str, Any]:
        """Method settings for provenance."""
        return {}


def repair_content(content: np.ndarray, request: FaceRequest) -> np.ndarray:
    """A restorer's input ``(h, w, 3)`` with the request's damage filled (:func:`frgd.diffusion.damage.repair_image`
    at the input's own size); ``content`` itself without damage."""
    d = request.damage_at(content.shape[:2])
    if d is None:
        return content
    from ..diffusion.damage import repair_image

    return repair_image(content, d)


def fit_crop(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` ``(h, w[, C])`` resized to ``(size, size)``: area when shrinking, bicubic when enlarging."""
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


# ------------------------------------------------------------------------------------------------------ FRGD
def default_model_dir() -> Path:
    """The installed ``frgd-128`` model folder (:mod:`frgd.weights`); :class:`MissingWeightsError` when absent."""
    from ..weights import weights_path

    try:
        path = Path(weights_path(FRGD_MODEL_NAME))
    except MissingWeightsError as err:
        raise MissingWeightsError(
            f"{err}; or use a trained FRGD model folder (--model DIR, or the editor's FRGD model folder)"
        ) from None
    return path if path.is_dir() else path.parent


def load_frgd_pipeline(
    model_dir: str | Path | None = None, device: Any = "auto", dtype: torch.dtype | None = None
) -> FRGDPipeline:
    """Load an FRGD model folder (default: the installed ``frgd-128``) as an
    :class:`frgd.diffusion.sampling.pipeline.FRGDPipeline` (its identity encoder loads on first use)."""
    import torch

    from ..diffusion.sampling.pipeline import FRGDPipeline

    path = default_model_dir() if model_dir is None else Path(model_dir)
    if model_dir is not None and not path.is_dir():
        raise InputError(f"FRGD model folder not found: {path}")
    return FRGDPipeline.from_pretrained(path, device=device, dtype=dtype or torch.float32)


class FRGDRestorer(Restorer):
    """FRGD: identity-guided diffusion on the 128 aligned crop (:class:`FRGDPipeline`).

    The face is given at its native resolution (:func:`frgd.restore.faces.native_content`); a model of another size
    than 128 (tiny test models) gets the mask, base and references resized and its samples resized back to 128,
    keeping "outside the mask equals the base" exact. The same ``seeds`` serve every face.
    """

    method: ClassVar[str] = "frgd"

    def __init__(
        self,
        pipe: FRGDPipeline,
        *,
        references: Sequence[np.ndarray] = (),
        identity_strength: float | None = None,
        steps: int | None = None,
        scheduler: str | None = None,
        harmonise: int | None = None,
        use_prior: bool = True,
        candidates: int = 1,
        identity_gradient: str | None = None,
        back_projection: bool | None = None,
        prior_share: float | None = None,
    ) -> None:
        from ..diffusion.content import check_share
        from ..diffusion.sampling.pipeline import BACK_PROJECTION
        from ..diffusion.sampling.schedulers import (
            DEFAULT_IDENTITY_STRENGTH,
            DEFAULT_SCHEDULER,
            DEFAULT_STEPS,
            IDENTITY_GRADIENT,
            RESAMPLE,
        )

        self.pipe = pipe
        self.references = list(references)
        self.identity_strength = float(DEFAULT_IDENTITY_STRENGTH if identity_strength is None else identity_strength)
        self.steps = int(DEFAULT_STEPS if steps is None else steps)
        self.scheduler = scheduler or DEFAULT_SCHEDULER
        self.harmonise = int(RESAMPLE if harmonise is None else harmonise)
        self.use_prior = bool(use_prior)
        """Start from the pipeline's prior estimate (when it has one) instead of the bicubic upscale."""
        self.candidates = int(candidates)
        """Candidates per sample; the one most like the reference is kept (needs a reference when > 1)."""
        self.identity_gradient = identity_gradient or IDENTITY_GRADIENT
        """How identity guidance takes its gradient: ``"denoiser"`` (the default) or ``"x0"`` (faster, more cracks)."""
        self.back_projection = BACK_PROJECTION if back_projection is None else bool(back_projection)
        """Bring whole faces back to the input at its own resolution (:func:`frgd.diffusion.sampling.guidance.
        back_project`)."""
        check_share(prior_share)
        self.prior_share = None if prior_share is None else float(prior_share)
        """The prior's share of a whole face's content target (:mod:`frgd.diffusion.content`); ``None``: estimated."""
        self.crop_size = FACE_SIZE

    @property
    def name(self) -> str:
        return str(self.pipe.name)

    @property
    def device(self) -> Any:
        return self.pipe.device

    def content(self, photo: np.ndarray, face: PhotoFace) -> np.ndarray:
        return native_content(photo, face.crop)

    def progress_units(self, num_samples: int) -> int:
        return self.steps

    def reference_similarities(self, faces: Sequence[PhotoFace]) -> list[float] | None:
        if not self.references or not faces:
            return None
        crops = self._crop_tensor([f.crop.image for f in faces])
        return [float(v) for v in self.pipe.reference_similarity(crops, self._crop_tensor(self.references))]

    def _crop_tensor(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Aligned crops ``(h, w, 3)`` at :attr:`crop_size` as one ``(N, 3, S, S)`` float tensor in ``[0, 1]``."""
        import torch

        from ..tensor import image_to_tensor

        return torch.cat([image_to_tensor(fit_crop(np.asarray(r), self.crop_size)) for r in crops])

    def reference_min_similarity(self) -> float | None:
        from ..identity.meter import load_calibrations

        cal = load_calibrations().get(self.pipe.identity_backend)
        return None if cal is None else float(cal.unlikely_threshold)

    def params(self) -> dict[str, Any]:
        return {
            "identity_strength": self.identity_strength,
            "steps": self.steps,
            "scheduler": self.scheduler,
            "harmonise": self.harmonise,
            "prior": self.pipe.prior_name if self.use_prior else None,
            "candidates": self.candidates,
            "identity_gradient": self.identity_gradient,
            "back_projection": self.back_projection,
            "prior_share": "auto" if self.prior_share is None else self.prior_share,
        }

    def restore_crop(
        self,
        content: np.ndarray,
        request: FaceRequest,
        seeds: Sequence[int],
        *,
        crop: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[FaceSample]:
        import torch

        from ..tensor import image_to_tensor, tensor_to_image

        pipe, size, c = self.pipe, int(self.pipe.size), self.crop_size
        refs_np = self.references if request.references is None else list(request.references)
        refs = self._crop_tensor(refs_np) if refs_np else None
        mask = None
        if request.mask is not None:
            m = fit_crop(np.ascontiguousarray(request.mask, np.float32), size)
            mask = torch.from_numpy(np.ascontiguousarray(m))[None, None].clamp(0, 1)
        base_img = crop if request.base is None else request.base
        base = image_to_tensor(fit_crop(base_img, size)) if base_img is not None and mask is not None else None
        dmg = request.damage_at((size, size))
        damage = None if dmg is None else torch.from_numpy(dmg)[None, None]
        out = pipe(
            image_to_tensor(content),
            references=refs,
            identity_strength=self.identity_strength,
            num_samples=len(seeds),
            seeds=list(seeds),
            steps=self.steps,
            scheduler=self.scheduler,
            harmonise=self.harmonise,
            use_prior=self.use_prior,
            candidates=self.candidates,
            identity_gradient=self.identity_gradient,
            back_projection=self.back_projection,
            prior_share=self.prior_share,
            mask=mask,
            base=base,
            damage=damage,
            progress=progress,
            cancel=cancel,
        )
        params = {**out.params, "method": self.method, "used_reference": refs is not None, "model_size": size}
        paste = request.paste_mask()
        samples = []
        for i, seed in enumerate(out.seeds):
            img = fit_crop(tensor_to_image(out.images[i : i + 1]), c)
            if mask is not None and size != c and base_img is not None:
                # the sampler keeps "outside the mask equals the base" at its size; keep it exact at 128 too
                img = np.where((np.asarray(request.mask) > 0.5)[..., None], img, to_uint8(base_img))
            meter = out.identity_meter
            samples.append(
                FaceSample(
                    image=np.ascontiguousarray(img),
                    seed=int(seed),
                    method=self.method,
                    paste_mask=paste,
                    identity_score=None if out.identity_scores is None else float(out.identity_scores[i]),
                    verdict=None if meter is None else meter.label(i),
                    params=params,
                )
            )
        return samples


__all__ = [
    "FRGD_MODEL_NAME",
    "MONOCHROME_CHROMA",
    "RESTORERS",
    "FRGDRestorer",
    "FaceRequest",
    "FaceSample",
    "Restorer",
    "RestorerSpec",
    "default_model_dir",
    "fit_crop",
    "identity_changed",
    "is_monochrome",
    "keep_monochrome",
    "load_frgd_pipeline",
    "repair_content",
    "restorer_class",
    "union_paste_mask",
]
