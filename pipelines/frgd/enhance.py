"""Whole-photo FRGD enhancement: detect -> align -> restore with FRGD -> paste back over the SR-upscaled photo.

:class:`EnhancePipeline` wraps a :class:`frgd.diffusion.sampling.pipeline.FRGDPipeline`:

1. detect faces (MTCNN, :mod:`frgd.faces`) and pick them (``all``, ``largest``, ``"0,2"``);
2. align each face at its *native* resolution (``round(128 * native_scale)`` px, at least 16, when the face is
   smaller than the 128 template, so content guidance compares with what the photo really contains), and the reference
   photos' largest faces at 128;
3. sample ``N`` restorations per face with :class:`FRGDPipeline` (same seeds for every face: output ``k`` uses seed
   ``k`` for all faces);
4. upscale the whole photo with the general SR pane (:func:`frgd.sr.registry.get_upscaler`) by ``scale`` (``auto``:
   the integer scale at which the smallest selected face's 128 crop maps at 1:1, clamped to ``1..8``), so there is no
   sharp face on a blurred body, and paste every restored face back (feathered).

:meth:`EnhancePipeline.enhance_aligned` is the ``--aligned`` mode: an aligned crop in, the 128 crops out.
Outputs are float32 ``(H, W, 3)`` numpy images in ``[0, 1]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .diffusion.sampling.pipeline import DEFAULT_SCHEDULER, DEFAULT_STEPS, FRGDOutput, FRGDPipeline
from .errors import InputError, MissingWeightsError
from .io import to_float
from .jobs import CancelToken, ProgressFn, check_cancel, report
from .tensor import image_to_tensor

logger = logging.getLogger(__name__)

DEFAULT_SR_MODEL = "auto"
"""``auto``: ``realesrgan-x4plus`` when its converted weights are installed and the scale is at most 4, else
``lanczos`` (MATLAB lanczos3, always available offline)."""
FRGD_MODEL_NAME = "frgd-128"
MAX_AUTO_SCALE = 8
MIN_NATIVE_CROP = 16
"""Smallest native-resolution crop used as the degraded input (tiny faces are aligned at least this big)."""


def to_float01(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8/uint16/float -> float32 in ``[0, 1]`` (:func:`frgd.io.to_float` with a shape check)."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) RGB image, got shape {arr.shape}")
    return to_float(arr)


def native_crop_size(native_scale: float, size: int = 128) -> int:
    """Side of the crop that holds a face at its native resolution: ``round(size * native_scale)`` in
    ``[MIN_NATIVE_CROP, size]`` (``native_scale`` = source px per px of a ``size`` crop)."""
    return int(min(size, max(MIN_NATIVE_CROP, round(size * native_scale))))


def auto_scale(native_scale: float) -> int:
    """Integer photo scale at which a face crop with ``native_scale`` source px per crop px maps 1:1.

    ``native_scale`` < 1 means the face is smaller than the crop; the scale is ``round(1 / native_scale)`` in ``1..8``.
    """
    if native_scale <= 0 or not math.isfinite(native_scale):
        return 1
    return int(min(MAX_AUTO_SCALE, max(1, round(1.0 / native_scale))))


@dataclass
class EnhancedFace:
    """One restored face: ``index`` in the detection list, its ``crop`` (native-resolution :class:`FaceCrop`), the
    ``result`` of the sampler (``images`` ``(N,3,128,128)``) and the ``content_size`` used."""

    index: int
    crop: Any
    result: FRGDOutput
    content_size: int | None
    detection: Any = None


@dataclass
class EnhanceOutput:
    """Whole-photo result.

    ``images``: one ``(H*scale, W*scale, 3)`` float32 ``[0, 1]`` image per sample (``seeds[k]`` made ``images[k]``);
    ``faces``: per restored face; ``scale``: photo scale used; ``sr_model``: the general SR model of the background.
    """

    images: list[np.ndarray]
    seeds: list[int]
    faces: list[EnhancedFace]
    scale: float
    sr_model: str
    timings: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def default_model_dir() -> Path:
    """The installed ``frgd-128`` model folder (``frgd.weights``); :class:`MissingWeightsError` when absent."""
    from .weights import weights_path

    try:
        path = weights_path(FRGD_MODEL_NAME)
    except MissingWeightsError as err:
        raise MissingWeightsError(f"{err}; or pass --model DIR with a trained FRGD model folder") from None
    return path if path.is_dir() else path.parent


def load_frgd_pipeline(
    model_dir: str | Path | None = None, device: str | torch.device = "auto", dtype: torch.dtype = torch.float32
) -> FRGDPipeline:
    """Load an FRGD model folder (default: the installed ``frgd-128``) as an :class:`FRGDPipeline`."""
    path = default_model_dir() if model_dir is None else Path(model_dir)
    if model_dir is not None and not path.is_dir():
        raise InputError(f"FRGD model folder not found: {path}")
    return FRGDPipeline.from_pretrained(path, device=device, dtype=dtype)


def resolve_sr_model(name: str, scale: int) -> str:
    """``auto`` -> ``realesrgan-x4plus`` if installed and ``scale <= 4``, else ``lanczos``; other names unchanged."""
    if name != "auto":
        return name
    if scale <= 4:
        from .sr.registry import upscaler_status

        if upscaler_status("realesrgan-x4plus") == "ready":
            return "realesrgan-x4plus"
    return "lanczos"


class EnhancePipeline:
    """Detect, align, restore (FRGD) and paste back faces of a whole photo over an SR-upscaled background."""

    def __init__(
        self,
        frgd: FRGDPipeline,
        *,
        sr_model: str = DEFAULT_SR_MODEL,
        detector_device: str | torch.device = "cpu",
        detect_fn=None,
    ) -> None:
        self.frgd = frgd
        self.sr_model = sr_model
        self.detector_device = detector_device
        self._detect_fn = detect_fn

    @property
    def size(self) -> int:
        return self.frgd.size

    # ------------------------------------------------------------------ building blocks
    def detect(self, img: np.ndarray) -> list:
        """Detected faces of ``img`` ``(H, W, 3)``, largest first (``frgd.faces.detect_faces``)."""
        if self._detect_fn is not None:
            return list(self._detect_fn(img))
        from .faces import detect_faces

        return detect_faces(img, device=self.detector_device)

    def reference_crops(self, references: Sequence[np.ndarray], aligned: bool = False) -> list[torch.Tensor]:
        """``(1,3,S,S)`` aligned reference crops: each photo's largest face, or resized as-is if ``aligned``."""
        from .faces import align_face

        out = []
        for i, ref in enumerate(references):
            arr = to_float01(ref)
            if aligned:
                t = image_to_tensor(arr, self.frgd.device)
                if t.shape[-1] != self.size or t.shape[-2] != self.size:
                    mode = "area" if min(t.shape[-2:]) > self.size else "bicubic"
                    kw = {} if mode == "area" else {"align_corners": False}
                    t = torch.nn.functional.interpolate(t, size=(self.size, self.size), mode=mode, **kw).clamp(0, 1)
                out.append(t)
                continue
            faces = self.detect(np.ascontiguousarray(arr))
            if not faces:
                raise InputError(f"no face found in reference photo {i + 1}; use a clearer photo of the person")
            face = max(faces, key=lambda f: f.size)
            crop = align_face(arr, face.landmarks, self.size)
            out.append(image_to_tensor(crop.image, self.frgd.device))
        return out

    def upscale(self, img: np.ndarray, scale: int, sr_model: str | None = None) -> np.ndarray:
        """The photo ``(H, W, 3)`` float32 upscaled by integer ``scale`` with the general SR pane (tiled) -> float32."""
        if scale == 1:
            return img.copy()
        from .sr.upscale import UpscalePipeline

        up = UpscalePipeline(resolve_sr_model(sr_model or self.sr_model, scale), scale, device=self.frgd.device)
        res = up(image_to_tensor(img, self.frgd.device))
        out = res.image[0].detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
        return np.ascontiguousarray(out, dtype=np.float32)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, image: np.ndarray, num_samples: int, scale: float | str, mask: np.ndarray | None) -> None:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
            raise InputError(f"expected an (H, W, 3) RGB photo at least 8x8, got shape {arr.shape}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"samples must be a positive integer, got {num_samples!r}")
        if scale != "auto":
            try:
                s = float(scale)
            except (TypeError, ValueError):
                raise InputError(f"scale must be 'auto' or an integer, got {scale!r}") from None
            if s != int(s) or not 1 <= s <= MAX_AUTO_SCALE:
                raise InputError(f"scale must be an integer in 1..{MAX_AUTO_SCALE}, got {scale}")
        if mask is not None:
            m = np.asarray(mask)
            if m.ndim != 2:
                raise InputError(f"mask must be a single-channel (H, W) image, got shape {m.shape}")

    # ------------------------------------------------------------------ aligned mode
    def enhance_aligned(
        self,
        crop: np.ndarray,
        *,
        references: Sequence[np.ndarray] = (),
        references_aligned: bool = True,
        mask: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        **sample_kwargs: Any,
    ) -> FRGDOutput:
        """``--aligned`` mode: ``crop`` ``(h, w, 3)`` aligned face (any size, the template) -> :class:`FRGDOutput`.

        ``mask``: ``(h', w')`` in ``[0, 1]`` (1 = may change), resized to 128; ``sample_kwargs`` go to the sampler.
        """
        arr = to_float01(crop)
        deg = image_to_tensor(arr, self.frgd.device)
        refs = self.reference_crops(references, aligned=references_aligned) if references else None
        m = None if mask is None else self._mask_tensor(mask)
        return self.frgd(deg, references=refs, mask=m, progress=progress, cancel=cancel, **sample_kwargs)

    def _mask_tensor(self, mask: np.ndarray) -> torch.Tensor:
        m = np.asarray(mask, dtype=np.float32)
        if m.ndim == 3:
            m = m[..., 0]
        if m.max() > 1.0:
            m = m / 255.0
        if m.shape != (self.size, self.size):
            m = cv2.resize(m, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy((m > 0.5).astype(np.float32))[None, None].to(self.frgd.device)

    # ------------------------------------------------------------------ whole photo
    def __call__(
        self,
        image: np.ndarray,
        *,
        references: Sequence[np.ndarray] = (),
        references_aligned: bool = False,
        identity_strength: float = 0.5,
        num_samples: int = 1,
        seeds: Sequence[int] | int | None = None,
        steps: int = DEFAULT_STEPS,
        scheduler: str = DEFAULT_SCHEDULER,
        scale: float | str = "auto",
        faces: str | int | Sequence[int] = "all",
        mask: np.ndarray | None = None,
        feather: float = 0.1,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> EnhanceOutput:
        """Enhance every selected face of ``image`` ``(H, W, 3)`` and return ``num_samples`` whole photos.

        ``mask``: optional photo-sized ``(H, W)`` mask (1 = faces may change there); it is warped into every face crop.
        ``feather``: paste-back soft edge as a fraction of the crop (see :func:`frgd.faces.paste_back`).
        """
        from .diffusion.sampling.pipeline import normalize_seeds
        from .faces import align_face, paste_back, select

        t0 = time.perf_counter()
        self.check_inputs(image, num_samples, scale, mask)
        img = to_float01(image)
        h, w = img.shape[:2]
        mask01 = None
        if mask is not None:
            mask01 = np.asarray(mask, np.float32)
            if mask01.shape != (h, w):
                raise InputError(f"mask must be the photo's size {w}x{h}, got {mask01.shape[1]}x{mask01.shape[0]}")
            if mask01.max() > 1:
                mask01 = mask01 / 255.0
        seed_list = normalize_seeds(seeds, num_samples)
        check_cancel(cancel)
        detected = self.detect(np.ascontiguousarray(img))
        chosen = select(detected, faces, image_shape=(h, w))
        if not chosen:
            raise InputError("no face detected in the photo; for an already aligned face crop use --aligned")
        refs = self.reference_crops(references, aligned=references_aligned) if references else None
        crops128 = [align_face(img, f.landmarks, self.size) for f in chosen]
        if scale == "auto":
            photo_scale = auto_scale(min(c.native_scale for c in crops128))
        else:
            photo_scale = int(float(scale))

        results: list[EnhancedFace] = []
        paste_masks: list[np.ndarray | None] = []  # per face, the photo mask in its 128 crop (None: no mask)
        total = len(chosen) * steps
        for j, (face, c128) in enumerate(zip(chosen, crops128)):
            check_cancel(cancel)
            if c128.native_scale < 1.0:  # face smaller than the template: align at native resolution
                n_px = native_crop_size(c128.native_scale, self.size)
                crop = align_face(img, face.landmarks, n_px)
                content_size = n_px if n_px < self.size else None
            else:
                crop, content_size = c128, None
            deg = image_to_tensor(crop.image, self.frgd.device)
            m = paste_mask = None
            if mask01 is not None:
                mc = cv2.warpAffine(mask01, c128.affine, (self.size, self.size), flags=cv2.INTER_LINEAR)
                m = torch.from_numpy((mc > 0.5).astype(np.float32))[None, None].to(self.frgd.device)
                to_128 = _scaled_affine(crop.affine, self.size / crop.size)
                paste_mask = np.clip(
                    cv2.warpAffine(mask01, to_128, (self.size, self.size), flags=cv2.INTER_LINEAR), 0, 1
                )

            def face_progress(done: int, tot: int, msg: str, j: int = j) -> None:
                report(progress, j * steps + done, total, f"face {j + 1}/{len(chosen)}: {msg}")

            res = self.frgd(
                deg,
                references=refs,
                identity_strength=identity_strength,
                num_samples=num_samples,
                seeds=seed_list,
                steps=steps,
                scheduler=scheduler,
                mask=m,
                content_size=content_size,
                progress=face_progress,
                cancel=cancel,
            )
            results.append(
                EnhancedFace(index=face.index, crop=crop, result=res, content_size=content_size, detection=face)
            )
            paste_masks.append(paste_mask)

        check_cancel(cancel)
        t_sr = time.perf_counter()
        sr_name = resolve_sr_model(self.sr_model, photo_scale)
        canvas = self.upscale(img, photo_scale, sr_name)
        t_sr = time.perf_counter() - t_sr
        images = []
        for k in range(num_samples):
            out = canvas.copy()
            for r, pm in zip(results, paste_masks):
                face_img = r.result.images[k].permute(1, 2, 0).numpy().astype(np.float32)
                out = paste_back(out, r.crop, face_img, canvas_scale=photo_scale, feather=feather, mask=pm)
            images.append(out)
        total_s = time.perf_counter() - t0
        params = {
            "identity_strength": float(identity_strength),
            "num_samples": num_samples,
            "steps": steps,
            "scheduler": scheduler,
            "scale": photo_scale,
            "sr_model": sr_name,
            "faces": [r.index for r in results],
            "masked": mask is not None,
            "references": len(references),
        }
        return EnhanceOutput(
            images=images,
            seeds=seed_list,
            faces=results,
            scale=photo_scale,
            sr_model=sr_name,
            timings={"upscale": t_sr, "total": total_s},
            params=params,
        )


def _scaled_affine(affine: np.ndarray, factor: float) -> np.ndarray:
    """``affine`` (photo -> crop px) followed by a pixel-centre-exact crop resize by ``factor``."""
    from .faces import compose_affine
    from .faces.align import resize_affine

    return compose_affine(resize_affine(factor), affine) if factor != 1.0 else np.asarray(affine, np.float64)


__all__ = [
    "DEFAULT_SR_MODEL",
    "EnhanceOutput",
    "EnhancePipeline",
    "EnhancedFace",
    "auto_scale",
    "default_model_dir",
    "load_frgd_pipeline",
    "resolve_sr_model",
    "to_float01",
]
