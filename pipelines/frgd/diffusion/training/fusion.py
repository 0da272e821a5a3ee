"""Fusion supervision: teach the denoiser to keep known content outside a mask and generate inside it.

Design (exactly what :mod:`frgd.diffusion.training.train` does)
------------------------------------------------------
Mask convention: ``M = 1`` **generate here**, ``M = 0`` **keep the known content**. The conditioning tensor is
``cond = [degraded (3), M (1), known * (1 - M) (3)]`` (:func:`build_cond`; layout in
:mod:`frgd.archs.frgd_unet_arch`). During training the known content is the clean target ``x0`` itself.

Per sample, independently (seeded by the data pipeline, :func:`sample_fusion_mask` draws it):

* with probability ``1 - p_fuse`` (default 0.5): **plain restoration**, ``M = 1`` everywhere, known = 0.
* with probability ``p_fuse`` a fusion mask is drawn; its kind is
    - ``checker`` with probability ``p_checker`` (0.25): **checkerboard fusion**, square cells of a random size
      (log-uniform integer in ``[checker_min, checker_max]`` = 2..64 px at 128, scaled with the image size) and a random
      phase (offset in ``[0, 2 * cell)`` on each axis); which colour is "generate" is random;
    - ``free`` otherwise: **masked fusion** with a random mask: 1-4 brush strokes (random walks of thick lines),
      1-3 ellipses, or a face-region mask from the five landmarks (an eye, both eyes, nose, mouth, lower face,
      the face oval, or everything outside the face oval), optionally the union of two of these; masks covering
      less than 1% or more than 95% of the image are redrawn;
  and independently of the kind, with probability ``p_noisy`` (0.3) the fused sample uses **noisy fusion**: the known
  content arrives noised to the current timestep, ``q(x_t | x0) = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, which is
  exactly the training ``x_t`` outside the mask, so ``cond[:, 4:7] = x_t * (1 - M)``. This is the tensor a RePaint-
  style sampler pastes outside the mask at step ``t``; with clean fusion (``noisy = False``) ``cond[:, 4:7]`` is the
  clean known content ``x0 * (1 - M)``.

``x_t`` itself is always the ordinary forward noising of the target everywhere (outside the mask that equals what a
sampler gets when it re-injects ``q(x_t | known)``), and the target (``v`` or ``eps``) is the ordinary one.

Loss weighting (:func:`fusion_loss_weights`): per pixel ``w = w_gen * M + w_keep * (1 - M) + w_seam * band``, where
``band`` marks pixels within ``seam_px`` of the mask edge (1 on both sides; checkerboards have no band, every pixel
would be a seam), defaults ``w_gen = 1``, ``w_keep = 1``, ``w_seam = 1`` (seams count double). The per-sample weights
are normalised to mean 1 so fused and plain samples contribute the same total weight, and the optional min-SNR
timestep weight multiplies on top. Outside the mask the loss teaches the model to reproduce the given content (clean
fusion: trivially from the conditioning channel; noisy fusion: by denoising consistently with it); inside, it
generates from the degraded face and the identity; the seam band teaches it to harmonise the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...faces.align import FACE_REGIONS, FACE_SIZE, face_region_mask, template

FUSION_KINDS = ("none", "free", "checker")


@dataclass(frozen=True)
class FusionConfig:
    """Probabilities and sizes of the fusion supervision (see the module docstring)."""

    p_fuse: float = 0.5
    p_noisy: float = 0.3
    p_checker: float = 0.25
    checker_min: int = 2
    checker_max: int = 64
    w_gen: float = 1.0
    w_keep: float = 1.0
    w_seam: float = 1.0
    seam_px: int = 3

    @classmethod
    def from_dict(cls, d: dict | None) -> FusionConfig:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown fusion config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass
class FusionSample:
    """One drawn mask: ``mask`` ``(H, W)`` float32 in {0, 1} (1 = generate) and its kind / noisy flag."""

    mask: np.ndarray
    kind: str
    noisy: bool


def _to_numpy_rng(generator: np.random.Generator | torch.Generator | int | None) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        return np.random.default_rng(seed)
    return np.random.default_rng(generator)


def checkerboard_mask(size: tuple[int, int], cell: int, phase: tuple[int, int] = (0, 0), invert: bool = False):
    """``(H, W)`` float32 checkerboard with square cells of ``cell`` px shifted by ``phase`` = (dy, dx)."""
    h, w = size
    yy = (np.arange(h)[:, None] + phase[0]) // cell
    xx = (np.arange(w)[None, :] + phase[1]) // cell
    m = ((yy + xx) % 2).astype(np.float32)
    return 1.0 - m if invert else m


def _brush_strokes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    s = min(h, w)
    for _ in range(int(rng.integers(1, 5))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        width = int(max(1, round(rng.uniform(0.04, 0.15) * s)))
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(int(rng.integers(2, 7))):
            angle += rng.normal(0, 0.8)
            length = rng.uniform(0.08, 0.3) * s
            nx = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            cv2.line(m, (int(x), int(y)), (int(nx), int(ny)), 1, width, lineType=cv2.LINE_8)
            x, y = nx, ny
    return m.astype(np.float32)


def _ellipses(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    s = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        c = (int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.9) * h))
        axes = (int(max(1, rng.uniform(0.05, 0.35) * s)), int(max(1, rng.uniform(0.05, 0.35) * s)))
        cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return m.astype(np.float32)


def _free_mask(rng: np.random.Generator, h: int, w: int, landmarks: np.ndarray) -> np.ndarray:
    def one() -> np.ndarray:
        kind = rng.choice(3, p=[0.35, 0.25, 0.4])
        if kind == 0:
            return _brush_strokes(rng, h, w)
        if kind == 1:
            return _ellipses(rng, h, w)
        region = FACE_REGIONS[int(rng.integers(len(FACE_REGIONS)))]
        soft = face_region_mask((h, w), landmarks, region, feather=0.0, scale=float(rng.uniform(0.8, 1.4)))
        return (soft > 0.5).astype(np.float32)

    for _ in range(8):
        m = one()
        if rng.random() < 0.25:
            m = np.maximum(m, one())
        cover = float(m.mean())
        if 0.01 <= cover <= 0.95:
            return m
    return m


def sample_fusion_mask(
    rng: np.random.Generator,
    size: tuple[int, int],
    cfg: FusionConfig | None = None,
    landmarks: np.ndarray | None = None,
) -> FusionSample:
    """Draw one sample's fusion mask (see the module docstring). ``landmarks`` ``(5, 2)`` in ``size`` pixels
    (default: the 128 template scaled to ``size``)."""
    cfg = cfg or FusionConfig()
    h, w = size
    if landmarks is None:
        landmarks = template(FACE_SIZE) * np.array([w / FACE_SIZE, h / FACE_SIZE])
    if rng.random() >= cfg.p_fuse:
        return FusionSample(np.ones((h, w), np.float32), "none", False)
    noisy = bool(rng.random() < cfg.p_noisy)
    if rng.random() < cfg.p_checker:
        scale = min(h, w) / FACE_SIZE
        lo = max(1, int(round(cfg.checker_min * scale)))
        hi = max(lo, int(round(cfg.checker_max * scale)))
        cell = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.999)) - 1e-9)))
        cell = int(np.clip(cell, lo, hi))
        phase = (int(rng.integers(0, 2 * cell)), int(rng.integers(0, 2 * cell)))
        return FusionSample(checkerboard_mask((h, w), cell, phase, invert=bool(rng.random() < 0.5)), "checker", noisy)
    return FusionSample(_free_mask(rng, h, w, landmarks), "free", noisy)


def sample_fusion_masks(
    batch: int,
    generator: np.random.Generator | torch.Generator | int | None,
    cfg: FusionConfig | None = None,
    size: tuple[int, int] = (FACE_SIZE, FACE_SIZE),
    landmarks: np.ndarray | None = None,
) -> torch.Tensor:
    """``(B, 1, H, W)`` float32 fusion masks (1 = generate) for a batch; ``landmarks`` ``(B, 5, 2)`` or ``None``."""
    rng = _to_numpy_rng(generator)
    masks = [
        sample_fusion_mask(rng, size, cfg, None if landmarks is None else np.asarray(landmarks[i])).mask
        for i in range(batch)
    ]
    return torch.from_numpy(np.stack(masks))[:, None]


def seam_band(mask: torch.Tensor, px: int) -> torch.Tensor:
    """``(B, 1, H, W)`` 1 where a pixel is within ``px`` of the mask edge (either side), else 0."""
    if px <= 0:
        return torch.zeros_like(mask)
    k = 2 * px + 1
    hard = (mask > 0.5).float()
    dil = F.max_pool2d(hard, k, stride=1, padding=px)
    ero = -F.max_pool2d(-hard, k, stride=1, padding=px)
    return (dil - ero).clamp(0, 1)


def fusion_loss_weights(mask: torch.Tensor, kinds_checker: torch.Tensor | None, cfg: FusionConfig) -> torch.Tensor:
    """Per-pixel loss weights ``(B, 1, H, W)``, mean 1 per sample (see the module docstring).

    ``kinds_checker`` ``(B,)`` bool: checkerboard samples get no seam band.
    """
    w = cfg.w_gen * mask + cfg.w_keep * (1 - mask)
    if cfg.w_seam > 0:
        band = seam_band(mask, cfg.seam_px)
        if kinds_checker is not None:
            band = band * (~kinds_checker.bool()).to(band.dtype).view(-1, 1, 1, 1)
        w = w + cfg.w_seam * band
    return w / w.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
