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

from ..io import from_float, marked, to_float
from ..jobs import CancelToken, ProgressFn, check_cancel, report

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
    """``sweeps`` Jacobi sweeps of the discrete Laplace equation at the pixels where ``known == 0`` (each becomes the
    mean of its four neighbours, a neighbour past the border being the pixel itself); known pixels are kept exactly.
    Only the hole pixels are computed (gathered by index), so a thin scratch costs its own pixels, not the image's."""
    b, c, h, w = x.shape
    bi, yi, xi = torch.nonzero(known[:, 0] < 0.5, as_tuple=True)
    if bi.numel() == 0:
        return x
    base = bi * (h * w)
    at = base + yi * w + xi
    nbrs = [base + yi * w + (xi - 1).clamp_min(0), base + yi * w + (xi + 1).clamp_max(w - 1),
            base + (yi - 1).clamp_min(0) * w + xi, base + (yi + 1).clamp_max(h - 1) * w + xi]  # fmt: skip
    flat = x.permute(1, 0, 2, 3).reshape(c, b * h * w).clone()
    for _ in range(sweeps):
        flat[:, at] = 0.25 * (flat[:, nbrs[0]] + flat[:, nbrs[1]] + flat[:, nbrs[2]] + flat[:, nbrs[3]])
    return flat.reshape(c, b, h, w).permute(1, 0, 2, 3).contiguous()


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


REPAIR_TILE = 128
"""Core side of the windows a large photo's damage is filled in (:func:`repair_image`); windows without damage cost
nothing."""
REPAIR_MARGIN = 32
"""Context around each window's core. A harmonic fill depends only on the known pixels bordering the hole, so a
scratch or a stain narrower than this is filled as the whole photo would fill it, to within rounding (tested)."""
REPAIR_BATCH = 32
"""Windows filled in one batch."""


def repair_image(
    image: np.ndarray,
    damage: np.ndarray,
    tile: int = REPAIR_TILE,
    margin: int = REPAIR_MARGIN,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """``image`` ``(H, W, 3)`` (uint8, uint16 or float in ``[0, 1]``) with the pixels where ``damage`` ``(H, W)`` (float
    in ``[0, 1]``, or uint8 0..255) exceeds one half filled by :func:`fill_damage`; the same dtype.

    The damage's bounding box is cut into cores of at most ``tile`` px (:func:`frgd.sr.tiling.tile_bounds`); each core
    with damage is filled from a window of the original photo, ``tile + 2 * margin`` px square around it (shifted
    inside at the photo's edges, so all windows have one size and are filled in batches), and only the core is
    written back: a photo-wide crease costs the windows along it, not the whole photo. ``progress`` is told the
    windows filled; ``cancel`` stops it between batches (:class:`frgd.jobs.Cancelled`: a large stain on a 12 MP photo
    takes tens of seconds on a CPU).
    """
    from ..sr.tiling import tile_bounds

    img = np.asarray(image)
    d = np.asarray(damage)
    if d.shape != img.shape[:2]:
        raise ValueError(f"damage must be the image's size {img.shape[:2]}, got {d.shape}")
    hard = marked(d)
    if not hard.any():
        return img
    h, w = hard.shape
    ys, xs = np.nonzero(hard)
    by0, by1 = int(ys.min()), int(ys.max()) + 1
    bx0, bx1 = int(xs.min()), int(xs.max()) + 1
    wh, ww = min(h, tile + 2 * margin), min(w, tile + 2 * margin)
    jobs = []  # (core box, window origin)
    for cy0, cy1 in tile_bounds(by1 - by0, tile):
        for cx0, cx1 in tile_bounds(bx1 - bx0, tile):
            y0, y1, x0, x1 = by0 + cy0, by0 + cy1, bx0 + cx0, bx0 + cx1
            if hard[y0:y1, x0:x1].any():
                wy0, wx0 = min(max(0, y0 - margin), h - wh), min(max(0, x0 - margin), w - ww)
                jobs.append(((y0, y1, x0, x1), (wy0, wx0)))
    out = img.copy()
    for k in range(0, len(jobs), REPAIR_BATCH):
        check_cancel(cancel)
        report(progress, k, len(jobs), "filling the marked damage")
        chunk = jobs[k : k + REPAIR_BATCH]
        boxes = [to_float(img[wy0 : wy0 + wh, wx0 : wx0 + ww]) for _, (wy0, wx0) in chunk]
        masks = [hard[wy0 : wy0 + wh, wx0 : wx0 + ww] for _, (wy0, wx0) in chunk]
        t = torch.from_numpy(np.ascontiguousarray(np.stack(boxes).transpose(0, 3, 1, 2)))
        m = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        filled = fill_damage(t, m).numpy().transpose(0, 2, 3, 1)
        for ((y0, y1, x0, x1), (wy0, wx0)), f in zip(chunk, filled):
            out[y0:y1, x0:x1] = from_float(f[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0], img.dtype)
    report(progress, len(jobs), len(jobs), "filling the marked damage")
    return out


__all__ = [
    "DAMAGE_COVER",
    "FILL_SWEEPS",
    "REPAIR_BATCH",
    "REPAIR_MARGIN",
    "REPAIR_TILE",
    "damage_at",
    "damage_target",
    "fill_damage",
    "repair_image",
]
