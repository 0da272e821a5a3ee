"""GFPGAN pane: detect faces, align to 512, restore with GFPGANv1Clean, paste back over the SR-upscaled photo.

Weights are the official TencentARC checkpoints (manifest entries ``gfpgan-v1.4`` / ``gfpgan-v1.3``; their
``params_ema`` state dict) or a local file. The faces go through the network as RGB in ``[-1, 1]`` (like the
official ``GFPGANer``); the decoder noise is drawn from a seeded generator so results are reproducible.

The background is upscaled by the general SR pane (:class:`frgd.sr.upscale.UpscalePipeline`). With
``bg_model="auto"`` it is ``realesrgan-x4plus`` when running on CUDA at a scale of at most 4 and its converted
weights are present (the official demo also only uses Real-ESRGAN on GPU: on CPU a large photo takes many minutes),
else MATLAB bicubic.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..archs.gfpganv1_clean_arch import OFFICIAL_CONFIG, GFPGANv1Clean
from ..devices import resolve_device
from ..errors import FRGDError, InputError
from ..io import to_float
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from ..tensor import image_to_tensor, tensor_to_image

logger = logging.getLogger(__name__)

VERSIONS = {"1.4": "gfpgan-v1.4", "1.3": "gfpgan-v1.3"}

_MODEL_CACHE: dict[tuple[str, str], GFPGANv1Clean] = {}
_MODEL_LOCK = threading.Lock()


def gfpgan_weights_path(version: str = "1.4", weights: str | Path | None = None) -> Path:
    """The checkpoint to load: ``weights`` if given (must exist), else the manifest entry of ``version``.

    Raises :class:`frgd.errors.MissingWeightsError` with the download URL and the ``frgd weights import`` command.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise InputError(f"GFPGAN weights file not found: {p}")
        return p
    if version not in VERSIONS:
        raise InputError(f"unknown GFPGAN version {version!r}; choose {' or '.join(VERSIONS)}")
    from ..weights import weights_path

    return weights_path(VERSIONS[version])


def load_gfpgan(
    version: str = "1.4", weights: str | Path | None = None, device: torch.device | str = "cpu"
) -> GFPGANv1Clean:
    """Official-config :class:`GFPGANv1Clean` with ``params_ema`` loaded (strict), eval mode, cached per file/device."""
    path = gfpgan_weights_path(version, weights)
    dev = resolve_device(device)
    key = (str(path.resolve()), str(dev))
    with _MODEL_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        from ..weights import load_state_dict

        sd = load_state_dict(path)  # picks params_ema (EMA generator) first in official checkpoints
        model = GFPGANv1Clean.from_config(OFFICIAL_CONFIG)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise FRGDError(f"{path} is not a GFPGANv1Clean (v1.3/v1.4) checkpoint: {first}") from err
        model = model.to(dev).eval().requires_grad_(False)
        _MODEL_CACHE.clear()  # keep one model in memory (330 MB)
        _MODEL_CACHE[key] = model
        logger.info("loaded GFPGAN from %s on %s", path, dev)
        return model


@dataclass
class GFPGANOutput:
    """Result of :class:`GFPGANPipeline`.

    Attributes:
        image: ``(1, 3, sH, sW)`` float32 in ``[0, 1]``: restored faces pasted over the upscaled photo.
        faces: the :class:`frgd.faces.detect.DetectedFace` that were restored (input-image coordinates).
        crops: the aligned :class:`frgd.faces.align.FaceCrop` (``S x S``, ``S`` = model size, 512 for the official).
        restored: the restored faces, ``(S, S, 3)`` float32 RGB in ``[0, 1]``.
        scale: output pixels per input pixel; bg_model: the background upscaler used.
    """

    image: torch.Tensor
    faces: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    restored: list[np.ndarray] = field(default_factory=list)
    scale: int = 1
    bg_model: str = ""


def _default_bg(device: torch.device, scale: int) -> str:
    """``bg_model="auto"``: Real-ESRGAN x4plus on CUDA when converted and ``scale <= 4`` (its range), else bicubic."""
    if device.type == "cuda" and scale <= 4:
        from ..weights import find_files

        if find_files("realesrgan-x4plus") is not None:
            return "realesrgan-x4plus"
    return "bicubic"


class GFPGANPipeline:
    """Whole-photo GFPGAN restoration.

    Args:
        version: ``"1.4"`` or ``"1.3"`` (manifest weights), ignored when ``weights`` or ``model`` is given.
        weights: path to a local GFPGAN checkpoint (``.pth`` with ``params_ema``, or safetensors).
        device: ``auto|cpu|cuda|mps``.
        bg_model: background upscaler name (:func:`frgd.sr.registry.available_upscalers`) or ``"auto"``.
        model: an already built :class:`GFPGANv1Clean` (tests, the editor's cache); its ``out_size`` sets the
            alignment size.
    """

    def __init__(
        self,
        version: str = "1.4",
        weights: str | Path | None = None,
        device: torch.device | str = "cpu",
        bg_model: str = "auto",
        model: GFPGANv1Clean | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval() if model is not None else load_gfpgan(version, weights, self.device)
        self.name = f"gfpgan-v{version}" if model is None and weights is None else "gfpgan"
        if weights is not None:
            self.name = f"gfpgan ({Path(weights).name})"
        self.bg_model = bg_model  # "auto" is resolved per call: it depends on the scale
        self.size = int(self.model.out_size)

    def check_inputs(self, image: np.ndarray | torch.Tensor, scale: int, weight: float) -> np.ndarray:
        """Return the image as ``(H, W, 3)`` float32 in ``[0, 1]``; raise :class:`InputError` on bad arguments."""
        if isinstance(image, torch.Tensor):
            if image.ndim != 4 or image.shape[:2] != (1, 3):
                raise InputError(f"expected a (1, 3, H, W) tensor, got {tuple(image.shape)}")
            img = tensor_to_image(image, np.float32)
        elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3:
            img = to_float(image)
        else:
            raise InputError(
                f"expected an (H, W, 3) image or a (1, 3, H, W) tensor, got {getattr(image, 'shape', None)}"
            )
        if min(img.shape[:2]) < 16:
            raise InputError(f"image too small: {img.shape[1]}x{img.shape[0]}")
        if not 1 <= int(scale) <= 8:
            raise InputError(f"scale must be 1..8, got {scale}")
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"weight must be in [0, 1], got {weight}")
        return np.ascontiguousarray(img, dtype=np.float32)

    @torch.inference_mode()
    def restore_crop(self, crop: np.ndarray, seed: int | None = 0) -> np.ndarray:
        """One aligned face ``(S, S, 3)`` float [0, 1] -> restored ``(S, S, 3)`` float32 [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32))[None].to(self.device)
        x = x * 2.0 - 1.0
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            out, _ = self.model(x, return_rgb=False, randomize_noise=True)
        out = (out.float().clamp(-1, 1) + 1.0) / 2.0
        return out[0].permute(1, 2, 0).cpu().numpy()

    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        scale: int = 2,
        faces: list | None = None,
        which: str = "all",
        weight: float = 1.0,
        seed: int | None = 0,
        tile: int | str | None = "auto",
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> GFPGANOutput:
        """Restore every (selected) face of ``image`` and paste it over the photo upscaled ``scale`` times.

        ``faces``: precomputed detections (skips MTCNN). ``which``: ``all``/``largest``/``center``/indices.
        ``weight``: blend of restored and aligned input face (1 = GFPGAN only). ``seed``: decoder noise.
        """
        from ..faces.align import align_face, paste_back
        from ..faces.detect import detect_faces, select
        from .upscale import UpscalePipeline

        img = self.check_inputs(image, scale, weight)
        h, w = img.shape[:2]
        check_cancel(cancel)
        if faces is None:
            faces = detect_faces(img, device="cpu")
        faces = select(faces, which, image_shape=(h, w))
        total = len(faces) + 1
        report(progress, 0, total, f"{len(faces)} face(s)")
        crops, restored = [], []
        for i, face in enumerate(faces):
            check_cancel(cancel)
            crop = align_face(img, face.landmarks, size=self.size)
            out = self.restore_crop(crop.image, seed=None if seed is None else seed + i)
            if weight < 1.0:
                out = weight * out + (1.0 - weight) * crop.image
            crops.append(crop)
            restored.append(out.astype(np.float32))
            report(progress, i + 1, total, f"face {i + 1}/{len(faces)}")

        check_cancel(cancel)
        x = image_to_tensor(img)
        bg_model = _default_bg(self.device, int(scale)) if self.bg_model == "auto" else self.bg_model
        bg = UpscalePipeline(bg_model, scale=int(scale), device=self.device)(x, tile=tile, cancel=cancel)
        canvas = tensor_to_image(bg.image, np.float32)
        for crop, face_img in zip(crops, restored):
            canvas = paste_back(canvas, crop, face_img, canvas_scale=float(scale))
        report(progress, total, total, "done")
        return GFPGANOutput(
            image=image_to_tensor(canvas),
            faces=list(faces),
            crops=crops,
            restored=restored,
            scale=int(scale),
            bg_model=bg_model,
        )


__all__ = ["GFPGANOutput", "GFPGANPipeline", "VERSIONS", "gfpgan_weights_path", "load_gfpgan"]
