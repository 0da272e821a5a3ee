"""Damage: pixels of a degraded face that carry no information about it (a scratch, a crease, a stain, a tear).

A real old photo is often damaged as well as small, blurred or noisy. The sampler, the prior and the content target all
read the input, so a scratch the user has not marked is drawn back into every sample (the model was never shown one
and takes it for part of the face). A *damage mask* marks those pixels; the sampler then treats them as missing:

1. the input is **filled** there from the undamaged pixels around them (:func:`fill_damage`: a harmonic fill, the
   smoothest surface that meets the known pixels at the damage's border), at the input's own resolution, so the
   conditioning, the prior's estimate and the prior-share estimate see a face without the scratch;
2. at the content scale (:mod:`frgd.diffusion.content`), the content target inside the damage is the prior's estimate
   of the filled face (:func:`damage_target`), never the fill itself where a prior is available, so the content
   guidance and the back-projection pull the damaged region towards what the prior predicts.

The mask is in the aligned crop frame, ``(B, 1, S, S)`` float in ``[0, 1]`` like the sampler's ``mask`` (1 = damaged);
:func:`damage_at` brings it to any other size, counting a pixel damaged when any part of it is. A whole photo's damage
(``frgd enhance --damage``, :class:`frgd.restore.FacePipeline`) is first filled in the photo (:func:`repair_image`),
so the background, the detector and every restorer see the repaired photo.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..io import to_float, to_uint8

DAMAGE_COVER = 0.02
"""A pixel of a smaller grid (the input, the content scale) counts as damaged when at least this share of its area is
damaged in the crop-frame mask: a one-pixel scratch at 128 px still marks every 16 px input pixel it crosses."""
FILL_SWEEPS = 40
"""Jacobi sweeps of the harmonic fill at each pyramid level (each level starts from the coarser level's fill, so a
hole of any size converges: its width at the coarsest level is a pixel or two)."""


def damage_at(damage: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """The damage mask ``(B, 1, S, S)`` as a hard ``{0, 1}`` mask ``(B, 1, h, w)`` at ``hw``: a pixel is damaged when
    at least :data:`DAMAGE_COVER` of its area is (area downscale), or, upscaling, when its nearest source pixel is."""
    d = damage.float().clamp(0, 1)
    if tuple(d.shape[-2:]) == tuple(hw):
        return (d > 0.5).float()
    if hw[0] <= d.shape[-2] and hw[1] <= d.shape[-1]:
        return (F.interpolate((d > 0.5).float(), size=hw, mode="area") >= DAMAGE_COVER).float()
    return (F.interpolate(d, size=hw, mode="nearest") > 0.5).float()


def _smooth_step(x: torch.Tensor, known: torch.Tensor, sweeps: int) -> torch.Tensor:
    """``sweeps`` Jacobi sweeps of the discrete Laplace equation inside ``known == 0`` (edge-replicated borders);
    known pixels are kept exactly."""
    kernel = x.new_tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]]).view(1, 1, 3, 3)
    kernel = kernel.expand(x.shape[1], 1, 3, 3)
    for _ in range(sweeps):
        avg = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
        x = known * x + (1 - known) * avg
    return x


def fill_damage(image: torch.Tensor, damage: torch.Tensor, sweeps: int = FILL_SWEEPS) -> torch.Tensor:
    """``image`` ``(B, C, h, w)`` with its damaged pixels (``damage`` ``(B or 1, 1, h, w)``, 1 = damaged, at the
    image's size) replaced by a harmonic fill of the undamaged ones; undamaged pixels are returned unchanged.

    Coarse to fine: the known pixels are averaged down a pyramid (halving until the damage is gone or the image is
    4 px), the coarsest level's holes take the mean of its known pixels, and each finer level starts its holes from
    the coarser fill upsampled and relaxes them with :func:`_smooth_step`. A fully damaged image becomes the mean of
    nothing known, 0.5 grey; an undamaged one is returned as is.
    """
    known = 1.0 - (damage.to(image) > 0.5).float().expand(image.shape[0], 1, *image.shape[-2:])
    if bool((known > 0.5).all()):
        return image
    return _fill(image.float(), known, int(sweeps)).to(image.dtype)


def _fill(x: torch.Tensor, known: torch.Tensor, sweeps: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    holes = known < 0.5
    if not bool(holes.any()):
        return x
    if min(h, w) <= 4 or bool(holes.all()):
        n = known.sum(dim=(2, 3), keepdim=True)
        mean = (x * known).sum(dim=(2, 3), keepdim=True) / n.clamp_min(1.0)
        mean = torch.where(n > 0, mean, torch.full_like(mean, 0.5))
        coarse = known * x + (1 - known) * mean
        return _smooth_step(coarse, known, sweeps) if min(h, w) > 1 else coarse
    hw2 = ((h + 1) // 2, (w + 1) // 2)
    wsum = F.interpolate(known, size=hw2, mode="area")
    x2 = F.interpolate(x * known, size=hw2, mode="area") / wsum.clamp_min(1e-6)
    known2 = (wsum > 0.0).float()
    x2 = _fill(known2 * x2, known2, sweeps)
    up = F.interpolate(x2, size=(h, w), mode="bilinear", align_corners=False)
    return _smooth_step(known * x + (1 - known) * up, known, sweeps)


def damage_target(target: torch.Tensor, prior_c: torch.Tensor | None, damage_c: torch.Tensor) -> torch.Tensor:
    """The content target ``(B, 3, h, w)`` with its damaged pixels (``damage_c`` ``(B or 1, 1, h, w)`` at the content
    scale) taken from the prior's estimate there ``prior_c`` (the target itself without a prior: the filled input)."""
    if prior_c is None:
        return target
    d = damage_c.to(target)
    return target + d * (prior_c.to(target) - target)


def repair_image(image: np.ndarray, damage: np.ndarray, margin: int = 16) -> np.ndarray:
    """``image`` ``(H, W, 3)`` (uint8, uint16 or float in ``[0, 1]``) with the pixels where ``damage`` ``(H, W)`` (float
    in ``[0, 1]``, or uint8 0..255) exceeds one half filled by :func:`fill_damage`; the same dtype. Only the damage's
    bounding box and ``margin`` px around it are computed (a large photo with one scratch costs that box)."""
    img = np.asarray(image)
    d = np.asarray(damage)
    if d.shape != img.shape[:2]:
        raise ValueError(f"damage must be the image's size {img.shape[:2]}, got {d.shape}")
    hard = d > (127 if d.dtype == np.uint8 else 0.5)
    if not hard.any():
        return img
    ys, xs = np.nonzero(hard)
    y0, y1 = max(0, ys.min() - margin), min(img.shape[0], ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(img.shape[1], xs.max() + 1 + margin)
    box = to_float(img[y0:y1, x0:x1])
    t = torch.from_numpy(np.ascontiguousarray(box.transpose(2, 0, 1)))[None]
    m = torch.from_numpy(hard[y0:y1, x0:x1].astype(np.float32))[None, None]
    filled = fill_damage(t, m)[0].numpy().transpose(1, 2, 0)
    out = img.copy()
    if img.dtype == np.uint8:
        out[y0:y1, x0:x1] = to_uint8(filled)
    elif img.dtype == np.uint16:
        out[y0:y1, x0:x1] = np.round(np.clip(filled, 0, 1) * 65535.0).astype(np.uint16)
    else:
        out[y0:y1, x0:x1] = filled.astype(img.dtype)
    return out


__all__ = ["DAMAGE_COVER", "FILL_SWEEPS", "damage_at", "damage_target", "fill_damage", "repair_image"]
