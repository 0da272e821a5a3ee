"""Find a photo's damage (scratches, cracks, spots, tears) with the damage detector, as a mask the user can edit.

:func:`detect_damage` turns a photo ``(H, W, 3)`` (uint8, uint16 or float in [0, 1]) into a
:class:`DamageDetection`: the per-pixel probability and the mask at the detector's threshold, in exactly the form of
``frgd enhance --damage`` and the editor's damage layer (``(H, W)`` uint8, 255 = damaged). The mask is a proposal:
a wrong mark on an eye costs more than a missed scratch (the restorers ignore the photo under a mark), so the
threshold is chosen on validation for precision first (:data:`THRESHOLD_BETA`) and the editor shows the marks for
the user to erase or add to before anything is filled.

Photos over :data:`WORK_PIXELS` are searched downscaled (area) and the probability is brought back up: a scratch in a
big scan is proportionally wider, and a 24 MP photo costs what a 2 MP one does. The network runs in tiles of
:data:`DETECT_TILE` px (:func:`frgd.sr.tiling.tiled_upscale` at scale 1: progress and cancel between tiles, bounded
memory).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..archs.scratch_unet_arch import ScratchUNet
from ..errors import InputError
from ..io import to_float
from ..jobs import CancelToken, ProgressFn

logger = logging.getLogger(__name__)

DAMAGE_WEIGHTS = "frgd-damage"
"""The detector's entry in the weights manifest (shipped in ``resources``)."""
ARCH = "ScratchUNet"
WORK_PIXELS = 2_000_000
"""Photos with more pixels are searched downscaled to this many."""
DETECT_TILE = 640
"""Core tile side (px at the working resolution)."""
DETECT_OVERLAP = 48
"""Context around each tile: about the network's receptive-field radius."""
THRESHOLD_BETA = 0.5
"""The threshold maximises the F-beta score of the validation masks with this beta: below 1, precision counts more."""
THRESHOLD_TIE = 0.002
"""Thresholds whose F-beta is within this of the best tie, and the highest of them wins: where marking more finds
as much damage as it adds false marks, fewer marks (a restorer ignores the photo under a mark)."""


def build_detector(config: dict[str, Any]) -> ScratchUNet:
    """A detector from a ``config.json`` dict."""
    from ..weights import build_from_config

    net = build_from_config(config, ScratchUNet, ARCH, ("channels",), "damage detector")
    net.threshold = float(config.get("threshold", 0.5))
    return net


def load_detector(directory: str | Path | None = None, device: torch.device | str = "cpu") -> ScratchUNet:
    """The installed detector (eval, float32, no gradients, ``threshold`` from its config); ``directory`` overrides
    it. :class:`frgd.errors.MissingWeightsError` when it is not installed."""
    from .. import weights

    d = Path(directory) if directory is not None else weights.weights_path(DAMAGE_WEIGHTS)
    net = weights.load_pretrained(d, build_detector, device=device).float()  # build_detector sets the threshold
    net.requires_grad_(False)
    return net


def save_detector(net: ScratchUNet, directory: str | Path, threshold: float, extra: dict[str, Any]) -> Path:
    """Write ``config.json`` (architecture, ``threshold``, ``extra``) and ``model.safetensors`` (float16)."""
    from .. import weights

    config = {"arch": ARCH, **net.config(), "threshold": float(threshold), **extra}
    return weights.save_pretrained(directory, net, config, dtype=torch.float16)


def logits(net: ScratchUNet, x: torch.Tensor) -> torch.Tensor:
    """``net`` on ``x`` ``(B, 3, H, W)`` of any size: reflect-padded to its multiple, cropped back.
    Returns ``(B, 1, H, W)`` logits."""
    m = net.multiple
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return net(x)[..., :h, :w]


@dataclass
class DamageDetection:
    """What :func:`detect_damage` found in a photo of ``(H, W)`` px."""

    probability: np.ndarray
    """``(H, W)`` float32 in [0, 1]."""
    mask: np.ndarray
    """``(H, W)`` uint8, 255 where ``probability`` exceeds ``threshold`` (the ``--damage`` image)."""
    threshold: float
    work_scale: float
    """The photo's size over the size it was searched at (1 for photos up to :data:`WORK_PIXELS`)."""

    @property
    def share(self) -> float:
        """The share of the photo marked."""
        return float((self.mask > 0).mean()) if self.mask.size else 0.0


def check_inputs(image: np.ndarray, threshold: float | None) -> None:
    """:class:`InputError` for anything but an ``(H, W, 3)`` photo of at least 2 px, or a threshold outside (0, 1)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) photo, got {getattr(image, 'shape', type(image))}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"the photo must be at least 2 px, got {image.shape[:2]}")
    if threshold is not None and not 0.0 < float(threshold) < 1.0:
        raise InputError(f"the threshold must be in (0, 1), got {threshold}")


@torch.no_grad()
def damage_probability(
    net: ScratchUNet,
    image: np.ndarray,
    *,
    work_pixels: int = WORK_PIXELS,
    tile: int = DETECT_TILE,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, float]:
    """``(probability (H, W) float32, work_scale)`` of ``image`` ``(H, W, 3)``; see the module's docstring."""
    from ..sr.tiling import tiled_upscale

    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(to_float(image).transpose(2, 0, 1)))[None]
    scale = max(1.0, math.sqrt(h * w / float(work_pixels)))
    if scale > 1.0:
        size = (max(2, round(h / scale)), max(2, round(w / scale)))
        x = F.interpolate(x, size=size, mode="area")
    device = next(net.parameters()).device
    x = x.to(device)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits(net, t))

    p = tiled_upscale(fn, x, 1, tile=tile, overlap=DETECT_OVERLAP, progress=progress, cancel=cancel)
    if scale > 1.0:
        p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
    return p[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32), scale


def detect_damage(
    image: np.ndarray,
    net: ScratchUNet | None = None,
    threshold: float | None = None,
    *,
    work_pixels: int = WORK_PIXELS,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> DamageDetection:
    """The damage of ``image`` ``(H, W, 3)``: the installed detector unless ``net`` is given, at its tuned threshold
    unless ``threshold`` is."""
    check_inputs(image, threshold)
    net = net if net is not None else load_detector()
    thr = float(threshold) if threshold is not None else float(getattr(net, "threshold", 0.5))
    prob, scale = damage_probability(net, image, work_pixels=work_pixels, progress=progress, cancel=cancel)
    mask = np.where(prob > thr, 255, 0).astype(np.uint8)
    logger.info("damage: %.2f%% of %dx%d marked (threshold %.2f, searched at 1/%.2f)", 100 * mask.mean() / 255,
                image.shape[1], image.shape[0], thr, scale)  # fmt: skip
    return DamageDetection(probability=prob, mask=mask, threshold=thr, work_scale=scale)


def mask_scores(prob: np.ndarray, truth: np.ndarray, threshold: float, beta: float = THRESHOLD_BETA) -> (
    dict[str, float]
):  # fmt: skip
    """Pixel precision, recall, F1, F-beta and IoU of ``prob > threshold`` against ``truth`` (both any shape, truth
    ``{0, 1}``), pooled over all pixels; 1.0 where a ratio's denominator is empty (nothing to find, nothing found)."""
    pred = np.asarray(prob) > threshold
    t = np.asarray(truth) > 0.5
    tp = float(np.logical_and(pred, t).sum())
    fp = float(np.logical_and(pred, ~t).sum())
    fn = float(np.logical_and(~pred, t).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    b2 = beta * beta

    def f(b: float) -> float:
        return (1 + b) * precision * recall / (b * precision + recall) if precision + recall else 0.0

    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f(1.0), 4),
        f"f{beta:g}": round(f(b2), 4),
        "iou": round(tp / (tp + fp + fn), 4) if tp + fp + fn else 1.0,
        "marked": round(float(pred.mean()), 5),
    }


def best_threshold(prob: np.ndarray, truth: np.ndarray, beta: float = THRESHOLD_BETA,
                   tie: float = THRESHOLD_TIE) -> float:  # fmt: skip
    """The threshold in 0.05..0.95 (steps of 0.05) with the highest F-beta of :func:`mask_scores`; of those within
    ``tie`` of it, the highest (:data:`THRESHOLD_TIE`)."""
    grid = [round(0.05 * k, 2) for k in range(1, 20)]
    score = {t: mask_scores(prob, truth, t, beta)[f"f{beta:g}"] for t in grid}
    top = max(score.values())
    return max(t for t in grid if score[t] >= top - tie)


__all__ = [
    "ARCH",
    "DAMAGE_WEIGHTS",
    "DETECT_OVERLAP",
    "DETECT_TILE",
    "THRESHOLD_BETA",
    "THRESHOLD_TIE",
    "WORK_PIXELS",
    "DamageDetection",
    "best_threshold",
    "build_detector",
    "check_inputs",
    "damage_probability",
    "detect_damage",
    "load_detector",
    "logits",
    "mask_scores",
    "save_detector",
]
