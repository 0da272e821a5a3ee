"""Training batches made entirely on the training device: degradations, fusion masks and reference identities.

The CPU data pipeline (:class:`frgd.diffusion.training.data.FacesDataset`) costs ~4.5 ms per item per core, so 16
cores feed at most 2-3 k items/s, about what an 8 M-parameter UNet eats on an H100. Here every face of the training
set sits on the device as ``uint8`` and one call of :meth:`GPUBatchMaker.make` draws a whole batch with a handful of
batched tensor ops (seeded by one ``torch.Generator`` on the device):

* **degradation** (the same families and ranges as :data:`frgd.degrade.DegradationConfig`, JPEG last): optional
  Gaussian blur at full resolution (isotropic or anisotropic, 21x21 per-sample kernels, one grouped conv), antialiased
  down-scaling by ``2..16`` (log-uniform; bicubic, bilinear or area; a share ``extreme_prob`` by ``24..64`` instead,
  the extreme inputs of :class:`frgd.degrade.DegradationConfig`) written as per-sample resampling matrices ``W``
  so ``x_lr = W x W^T`` is one batched matmul (the matrices are ``F.interpolate`` applied to an identity, so they
  equal torch's own resize exactly), optional isotropic blur at low resolution (order shuffled: blur before or after
  the downscale), Gaussian or Poisson noise (colour or grey), JPEG artefacts by exact 8x8 DCT quantisation with the
  IJG quality-scaled standard tables and 4:2:0 chroma (:func:`jpeg_dct`), and bicubic up-scaling back to 128 (again a
  matrix). Low-resolution images of different sizes share one ``64 x 64`` canvas whose pixels beyond the valid ``l x
  l`` corner replicate its last row/column (what a JPEG encoder pads with);
* **fusion masks** (:mod:`frgd.diffusion.training.fusion`): free masks (strokes, ellipses, face regions) from a bank
  drawn once on the CPU with the same generator code as the CPU pipeline, randomly mirrored; checkerboards drawn on
  the device (log-uniform cell 2..64 px, random phase and polarity); the noisy-fusion flag;
* **identity**: the precomputed embedding of another photo of the same person, or of a fixed augmentation of the
  face itself when the person has one photo (as :class:`FacesDataset` with embeddings does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...degrade import DegradationConfig
from ...errors import InputError
from ...faces.align import FACE_SIZE as FACE  # side of the training faces
from ...faces.align import template
from .fusion import FusionConfig, _free_mask

LR_MIN, LR_MAX = 2, 64
"""Low-resolution side range: ``round(128 / scale)`` for scales 64..2 (extreme inputs reach 2 px)."""
CANVAS = 64
"""Side of the shared low-resolution canvas (a multiple of 16 for 4:2:0 JPEG blocks)."""
BLUR_TAPS = 21
"""Side of the full-resolution blur kernels (sigma <= 3 needs 19)."""
DOWN_KERNELS = ("bicubic", "bilinear", "area")

# ITU T.81 Annex K tables (the IJG / libjpeg defaults), row-major.
JPEG_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
JPEG_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
]  # fmt: skip


_CPU = DegradationConfig()


@dataclass(frozen=True)
class GPUDegradation:
    """Ranges of the on-device degradation (probabilities per sample; see the module docstring). The defaults are
    those of the CPU pipeline (:class:`frgd.degrade.DegradationConfig`, one source); ``blur_after_prob`` is the
    chance that the blur comes after the downscale (the CPU pipeline's ``shuffle_order``)."""

    scale_range: tuple[float, float] = _CPU.scale_range
    extreme_prob: float = _CPU.extreme_prob
    extreme_scale_range: tuple[float, float] = _CPU.extreme_scale_range
    blur_prob: float = _CPU.blur_prob
    blur_after_prob: float = 0.5
    aniso_prob: float = _CPU.aniso_prob
    blur_sigma: tuple[float, float] = _CPU.blur_sigma
    noise_prob: float = _CPU.noise_prob
    noise_sigma: tuple[float, float] = _CPU.noise_sigma
    poisson_prob: float = _CPU.poisson_prob
    poisson_peak: tuple[float, float] = _CPU.poisson_peak
    gray_noise_prob: float = _CPU.gray_noise_prob
    jpeg_prob: float = _CPU.jpeg_prob
    jpeg_quality: tuple[int, int] = _CPU.jpeg_quality

    @classmethod
    def from_dict(cls, d: dict | None) -> GPUDegradation:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown degradation keys: {sorted(unknown)}")
        cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        for name in ("scale_range", "extreme_scale_range"):
            lo, hi = getattr(cfg, name)
            if not FACE / LR_MAX <= lo <= hi <= FACE / LR_MIN:
                raise InputError(f"{name} must lie in [{FACE / LR_MAX:g}, {FACE / LR_MIN:g}], got {(lo, hi)}")
        for name in (
            "extreme_prob",
            "blur_prob",
            "blur_after_prob",
            "aniso_prob",
            "noise_prob",
            "poisson_prob",
            "gray_noise_prob",
        ):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1]")
        if not 0.0 <= cfg.jpeg_prob <= 1.0 or not 1 <= cfg.jpeg_quality[0] <= cfg.jpeg_quality[1] <= 100:
            raise InputError("jpeg_prob must be in [0, 1] and jpeg_quality a range within 1..100")
        return cfg


# ------------------------------------------------------------------------------------------------ resampling


def resize_matrix(n_in: int, n_out: int, kernel: str) -> torch.Tensor:
    """``(n_out, n_in)`` float64 matrix ``W`` with ``W @ x == F.interpolate(x, n_out, kernel, antialias)`` along one
    axis (``align_corners=False``; antialiased when down-scaling bicubic/bilinear; ``area`` = box average)."""
    eye = torch.eye(n_in, dtype=torch.float64)[None, None]  # rows: the axis being resized
    if kernel == "area":
        out = F.interpolate(eye, size=(n_out, n_in), mode="area")
    elif kernel in ("bicubic", "bilinear"):
        out = F.interpolate(eye, size=(n_out, n_in), mode=kernel, align_corners=False, antialias=n_out < n_in)
    else:
        raise InputError(f"unknown resize kernel {kernel!r}")
    return out[0, 0]


def _replicate_index(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n)`` long: ``min(i, l_b - 1)`` (edge replication beyond each sample's valid length)."""
    i = torch.arange(n, device=lengths.device)[None]
    return torch.minimum(i, lengths[:, None] - 1)


def resampling_tables(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Down-scaling ``(K, L, CANVAS, FACE)`` and up-scaling ``(L, FACE, CANVAS)`` float32 matrix tables.

    ``down[k, l - LR_MIN]`` maps a 128 axis to ``l`` samples with kernel ``DOWN_KERNELS[k]`` and replicates row
    ``l - 1`` into rows ``l .. CANVAS - 1``; ``up[l - LR_MIN]`` maps the valid ``l`` samples of a canvas axis back to
    128 (bicubic, zero weight on the padding).
    """
    sizes = range(LR_MIN, LR_MAX + 1)
    down = torch.zeros(len(DOWN_KERNELS), len(sizes), CANVAS, FACE, dtype=torch.float64)
    up = torch.zeros(len(sizes), FACE, CANVAS, dtype=torch.float64)
    for j, l in enumerate(sizes):
        idx = torch.clamp(torch.arange(CANVAS), max=l - 1)
        for k, name in enumerate(DOWN_KERNELS):
            down[k, j] = resize_matrix(FACE, l, name)[idx]
        up[j, :, :l] = resize_matrix(l, FACE, "bicubic")
    return down.float().to(device), up.float().to(device)


def gaussian_matrices(sigma: torch.Tensor, lengths: torch.Tensor, taps: int = BLUR_TAPS) -> torch.Tensor:
    """``(B, CANVAS, CANVAS)`` isotropic Gaussian blur along one canvas axis, reflecting at each sample's valid length
    ``l`` (OpenCV/torch ``reflect``: ``... 2 1 | 0 1 2 ... l-1 | l-2 ...``), rows beyond ``l`` replicating row
    ``l - 1``. ``sigma <= 0`` gives the identity on the valid part."""
    b = sigma.shape[0]
    dev = sigma.device
    r = taps // 2
    d = torch.arange(-r, r + 1, device=dev, dtype=torch.float32)
    s = sigma.float().clamp_min(1e-6)[:, None]
    w = torch.exp(-0.5 * (d[None] / s) ** 2)
    w = torch.where((sigma > 0)[:, None], w, (d[None] == 0).float())
    w = w / w.sum(1, keepdim=True)  # (B, taps)
    rows = _replicate_index(lengths, CANVAS)  # (B, C)
    p = rows[:, :, None] + d.long()[None, None]  # (B, C, taps)
    period = (2 * (lengths - 1)).clamp_min(1)[:, None, None]
    p = torch.remainder(p, period)
    p = torch.where(p > (lengths - 1)[:, None, None], period - p, p)
    mat = torch.zeros(b, CANVAS, CANVAS, device=dev)
    mat.scatter_add_(2, p, w[:, None, :].expand(b, CANVAS, taps).contiguous())
    return mat


def gaussian_kernels(sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, taps: int = BLUR_TAPS):
    """``(B, taps, taps)`` rotated anisotropic Gaussian kernels summing to 1 (as :func:`frgd.degrade.gaussian_kernel`).
    Samples with ``sigma_x <= 0`` get the delta kernel (no blur)."""
    dev = sigma_x.device
    r = torch.arange(taps, device=dev, dtype=torch.float32) - (taps - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = c * xx[None] + s * yy[None]  # coordinates in the rotated frame
    v = -s * xx[None] + c * yy[None]
    sx = sigma_x.clamp_min(1e-6)[:, None, None]
    sy = sigma_y.clamp_min(1e-6)[:, None, None]
    k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    delta = ((xx == 0) & (yy == 0)).float()[None]
    k = torch.where((sigma_x > 0)[:, None, None], k, delta)
    return k / k.sum(dim=(1, 2), keepdim=True)


def blur_full(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur ``x`` ``(B, C, H, W)`` with one ``(B, k, k)`` kernel per sample (reflect padding), one grouped conv."""
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    xp = F.pad(x.reshape(1, b * c, h, w), (k // 2,) * 4, mode="reflect")
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)[:, None]
    return F.conv2d(xp, weight, groups=b * c).reshape(b, c, h, w)


# ---------------------------------------------------------------------------------------------------------- JPEG


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IJG quality scaling of the standard tables: ``(B, 8, 8)`` luma and chroma quantisers for ``quality`` 1..100."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None]
    out = []
    for base in (JPEG_LUMA, JPEG_CHROMA):
        t = torch.tensor(base, dtype=torch.float32, device=quality.device).reshape(1, 8, 8)
        out.append(torch.floor((t * scale + 50.0) / 100.0).clamp(1, 255))
    return out[0], out[1]


def _blocks_quantise(plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """DCT-quantise-dequantise-IDCT every 8x8 block of ``plane`` ``(B, H, W)`` (level-shifted) with ``(B, 8, 8)``."""
    b, h, w = plane.shape
    blocks = plane.reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # (B, h/8, w/8, 8, 8)
    coef = dct @ blocks @ dct.T
    t = table[:, None, None]
    coef = torch.round(coef / t) * t
    rec = dct.T @ coef @ dct
    return rec.permute(0, 1, 3, 2, 4).reshape(b, h, w)


def jpeg_dct(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Baseline JPEG round trip of ``x`` ``(B, 3, H, W)`` in ``[0, 1]`` (``H, W`` multiples of 16), per-sample
    ``quality`` ``(B,)``: 8-bit input, JFIF YCbCr, 4:2:0 chroma (2x2 box), exact 8x8 float DCT quantisation with the
    IJG tables, bilinear ("fancy") chroma up-sampling, 8-bit output. Returns ``(B, 3, H, W)`` in ``[0, 1]``."""
    b, _, h, w = x.shape
    if h % 16 or w % 16:
        raise InputError(f"jpeg_dct needs sides that are multiples of 16, got {h}x{w}")
    dct = _dct_matrix().to(x.device, torch.float32)
    rgb = torch.round(x.float().clamp(0, 1) * 255.0)
    r, g, bl = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128.0
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)  # (B, 2, H/2, W/2)
    qy, qc = quant_tables(quality)
    y = _blocks_quantise(y - 128.0, qy, dct) + 128.0
    cb = _blocks_quantise(chroma[:, 0] - 128.0, qc, dct)
    cr = _blocks_quantise(chroma[:, 1] - 128.0, qc, dct)
    chroma = F.interpolate(torch.stack([cb, cr], 1), size=(h, w), mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0], chroma[:, 1]
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return torch.round(out.clamp(0, 255)) / 255.0


# --------------------------------------------------------------------------------------------------- degradation


def _log_uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


class GPUDegrader:
    """Batched, seeded degradation of ``(B, 3, 128, 128)`` faces on their device (see the module docstring)."""

    def __init__(self, cfg: GPUDegradation | None = None, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg or GPUDegradation()
        self.device = torch.device(device)
        self.down, self.up = resampling_tables(self.device)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Degrade ``x`` ``(B, 3, 128, 128)`` in ``[0, 1]``; returns the degraded faces resized back to 128 and the
        per-sample parameters (``lr_size``, ``kernel``, ``blur_sigma``, ``blur_after``, ``noise_sigma``, ``jpeg_q``;
        0 where an op is off)."""
        c = self.cfg
        b = x.shape[0]
        dev = x.device

        def rand(*shape):
            return torch.rand(*shape, generator=gen, device=dev)

        u = rand(b, 16)
        extreme = u[:, 15] < c.extreme_prob
        scale = torch.where(
            extreme, _log_uniform(u[:, 0], *c.extreme_scale_range), _log_uniform(u[:, 0], *c.scale_range)
        )
        lr = torch.round(FACE / scale).long().clamp(LR_MIN, LR_MAX)
        kernel = (u[:, 1] * len(DOWN_KERNELS)).long().clamp_max(len(DOWN_KERNELS) - 1)
        blur_on = u[:, 2] < c.blur_prob
        after = blur_on & (u[:, 3] < c.blur_after_prob)
        before = blur_on & ~after
        aniso = before & (u[:, 4] < c.aniso_prob)
        s1 = _log_uniform(u[:, 5], *c.blur_sigma)
        s2 = torch.where(aniso, _log_uniform(u[:, 6], *c.blur_sigma), s1)
        theta = torch.where(aniso, (u[:, 7] * 2 - 1) * math.pi, torch.zeros_like(s1))
        noise_on = u[:, 8] < c.noise_prob
        poisson = noise_on & (u[:, 9] < c.poisson_prob)
        gray = u[:, 10] < c.gray_noise_prob
        sigma = c.noise_sigma[0] + u[:, 11] * (c.noise_sigma[1] - c.noise_sigma[0])
        peak = _log_uniform(u[:, 12], *c.poisson_peak)
        jpeg_on = u[:, 13] < c.jpeg_prob
        q = torch.floor(c.jpeg_quality[0] + u[:, 14] * (c.jpeg_quality[1] - c.jpeg_quality[0] + 1)).clamp(
            c.jpeg_quality[0], c.jpeg_quality[1]
        )

        y = x.float()
        if bool(before.any()):
            zero = torch.zeros_like(s1)
            k = gaussian_kernels(torch.where(before, s1, zero), torch.where(before, s2, zero), theta)
            y = blur_full(y, k)
        # down-scale (and optionally blur at low resolution) as one matrix per axis: A = G W
        a = self.down[kernel, lr - LR_MIN]  # (B, CANVAS, FACE)
        if bool(after.any()):
            g = gaussian_matrices(torch.where(after, s1, torch.zeros_like(s1)), lr)
            a = g @ a
        y = (a[:, None] @ y @ a[:, None].transpose(-1, -2)).clamp(0, 1)  # (B, 3, CANVAS, CANVAS)
        # noise
        if bool(noise_on.any()):
            n_col = torch.randn(b, 3, CANVAS, CANVAS, generator=gen, device=dev)
            n = torch.where(gray[:, None, None, None], n_col[:, :1].expand_as(n_col), n_col)
            gauss = y + n * sigma[:, None, None, None]
            pk = peak[:, None, None, None]
            lum = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]).clamp(0, 1)
            pois_col = torch.poisson(y * pk, generator=gen) / pk
            pois_gray = y + (torch.poisson(lum * pk, generator=gen) / pk - lum)
            pois = torch.where(gray[:, None, None, None], pois_gray, pois_col)
            noisy = torch.where(poisson[:, None, None, None], pois, gauss)
            y = torch.where(noise_on[:, None, None, None], noisy, y).clamp(0, 1)
            idx = _replicate_index(lr, CANVAS)  # re-pad the canvas from the (noisy) valid corner
            y = y.gather(2, idx[:, None, :, None].expand(b, 3, CANVAS, CANVAS))
            y = y.gather(3, idx[:, None, None, :].expand(b, 3, CANVAS, CANVAS))
        if bool(jpeg_on.any()):
            y = torch.where(jpeg_on[:, None, None, None], jpeg_dct(y, q), y)
        up = self.up[lr - LR_MIN]  # (B, FACE, CANVAS)
        out = (up[:, None] @ y @ up[:, None].transpose(-1, -2)).clamp(0, 1)
        params = {
            "lr_size": lr,
            "kernel": kernel,
            "blur_sigma": torch.where(blur_on, s1, torch.zeros_like(s1)),
            "blur_after": after,
            "noise_sigma": torch.where(noise_on & ~poisson, sigma, torch.zeros_like(sigma)),
            "jpeg_q": torch.where(jpeg_on, q, torch.zeros_like(q)),
        }
        return out, params


# ------------------------------------------------------------------------------------------------------- masks


def mask_bank(n: int, seed: int = 0, size: int = FACE) -> np.ndarray:
    """``(n, size, size)`` bool free fusion masks (strokes, ellipses, face regions) drawn with the CPU pipeline's own
    generator code around the template landmarks, seeded."""
    rng = np.random.default_rng([seed, 4242])
    lm = template(size)
    return np.stack([_free_mask(rng, size, size, lm) > 0.5 for _ in range(n)])


def checkerboards(u: torch.Tensor, cfg: FusionConfig, size: int = FACE) -> torch.Tensor:
    """``(B, 1, size, size)`` float checkerboards from uniforms ``u`` ``(B, 4)``: log-uniform integer cell in
    ``[checker_min, checker_max]`` (scaled with ``size``), phase in ``[0, 2 cell)`` per axis, random polarity."""
    scale = size / FACE
    lo = max(1, round(cfg.checker_min * scale))
    hi = max(lo, round(cfg.checker_max * scale))
    cell = torch.exp(math.log(lo) + u[:, 0] * (math.log(hi + 0.999) - math.log(lo))).floor().clamp(lo, hi)
    py = torch.floor(u[:, 1] * 2 * cell)
    px = torch.floor(u[:, 2] * 2 * cell)
    i = torch.arange(size, device=u.device, dtype=torch.float32)
    yy = torch.floor((i[None, :, None] + py[:, None, None]) / cell[:, None, None])
    xx = torch.floor((i[None, None, :] + px[:, None, None]) / cell[:, None, None])
    m = torch.remainder(yy + xx, 2)
    m = torch.where((u[:, 3] < 0.5)[:, None, None], 1 - m, m)
    return m[:, None]


# ------------------------------------------------------------------------------------------------------- batches


@dataclass
class FaceTensors:
    """The training set as device tensors.

    ``faces`` ``(N, 3, 128, 128)`` uint8; ``emb`` ``(N, D)`` float32 unit embeddings; ``aug_emb`` ``(N, K, D)`` (rows of
    faces whose identity has other photos may be zero); ``partners`` flat long tensor of face indices and
    ``partner_start``/``partner_count`` ``(N,)``: the *other* photos of each face's identity.
    """

    faces: torch.Tensor
    emb: torch.Tensor
    aug_emb: torch.Tensor
    partners: torch.Tensor
    partner_start: torch.Tensor
    partner_count: torch.Tensor

    @classmethod
    def build(
        cls, faces: np.ndarray, identities: np.ndarray, emb: np.ndarray, aug_emb: np.ndarray, device
    ) -> FaceTensors:
        """From ``faces`` ``(N, 128, 128, 3)`` uint8 RGB, integer ``identities`` ``(N,)`` and embeddings."""
        n = len(faces)
        order = np.argsort(identities, kind="stable")
        ids_sorted = identities[order]
        bounds = np.flatnonzero(np.diff(ids_sorted)) + 1
        groups = np.split(order, bounds)
        partners: list[int] = []
        start = np.zeros(n, np.int64)
        count = np.zeros(n, np.int64)
        for grp in groups:
            for i in grp:
                start[i] = len(partners)
                others = [int(j) for j in grp if j != i]
                count[i] = len(others)
                partners.extend(others)
        lonely = count == 0
        if lonely.any() and not np.any(aug_emb[lonely].reshape(int(lonely.sum()), -1), axis=1).all():
            raise InputError("faces whose identity has one photo need augmented-reference embeddings")
        dev = torch.device(device)
        return cls(
            faces=torch.from_numpy(np.ascontiguousarray(faces.transpose(0, 3, 1, 2))).to(dev),
            emb=torch.from_numpy(emb.astype(np.float32)).to(dev),
            aug_emb=torch.from_numpy(aug_emb.astype(np.float32)).to(dev),
            partners=torch.from_numpy(np.asarray(partners + [0], np.int64)).to(dev),
            partner_start=torch.from_numpy(start).to(dev),
            partner_count=torch.from_numpy(count).to(dev),
        )

    def __len__(self) -> int:
        return int(self.faces.shape[0])


@dataclass
class Batch:
    """One training batch (all on the device): ``target``/``degraded`` ``(B, 3, 128, 128)`` float32 ``[0, 1]``,
    ``mask`` ``(B, 1, 128, 128)`` (1 = generate), ``noisy``/``checker`` ``(B,)`` bool, ``identity`` ``(B, D)`` unit,
    ``index`` ``(B,)`` face indices, ``params`` the degradation parameters."""

    target: torch.Tensor
    degraded: torch.Tensor
    mask: torch.Tensor
    noisy: torch.Tensor
    checker: torch.Tensor
    identity: torch.Tensor
    index: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)


class GPUBatchMaker:
    """Draws :class:`Batch` es from :class:`FaceTensors` on their device (epoch permutations, seeded)."""

    def __init__(
        self,
        data: FaceTensors,
        degradation: GPUDegradation | None = None,
        fusion: FusionConfig | None = None,
        *,
        seed: int = 0,
        bank_size: int = 2048,
        flip: bool = True,
    ) -> None:
        self.data = data
        self.device = data.faces.device
        self.fusion = fusion or FusionConfig()
        self.degrader = GPUDegrader(degradation, self.device)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(seed))
        self.bank = torch.from_numpy(mask_bank(bank_size, seed)).to(self.device)
        self.flip = flip
        self._perm = torch.empty(0, dtype=torch.long, device=self.device)
        self._pos = 0
        self.epoch = 0

    def _indices(self, b: int) -> torch.Tensor:
        out = []
        while b > 0:
            if self._pos >= len(self._perm):
                self._perm = torch.randperm(len(self.data), generator=self.gen, device=self.device)
                self._pos = 0
                self.epoch += 1
            take = min(b, len(self._perm) - self._pos)
            out.append(self._perm[self._pos : self._pos + take])
            self._pos += take
            b -= take
        return torch.cat(out)

    @torch.no_grad()
    def make(self, batch_size: int) -> Batch:
        """One batch of ``batch_size`` faces (see :class:`Batch`)."""
        d = self.data
        dev = self.device
        b = int(batch_size)
        idx = self._indices(b)
        u = torch.rand(b, 12, generator=self.gen, device=dev)
        x = d.faces[idx].float() / 255.0
        if self.flip:
            x = torch.where((u[:, 0] < 0.5)[:, None, None, None], x.flip(-1), x)
        degraded, params = self.degrader(x, self.gen)
        # fusion: none / checker / free (bank, mirrored), and the noisy flag
        f = self.fusion
        fused = u[:, 1] < f.p_fuse
        checker = fused & (u[:, 2] < f.p_checker)
        free = fused & ~checker
        bank = self.bank[(u[:, 3] * len(self.bank)).long().clamp_max(len(self.bank) - 1)].float()[:, None]
        bank = torch.where((u[:, 4] < 0.5)[:, None, None, None], bank.flip(-1), bank)
        cb = checkerboards(u[:, 5:9], f)
        ones = torch.ones_like(cb)
        mask = torch.where(checker[:, None, None, None], cb, torch.where(free[:, None, None, None], bank, ones))
        noisy = fused & (u[:, 9] < f.p_noisy)
        # identity: another photo of the person, else an augmentation of this one
        cnt = d.partner_count[idx]
        pick = torch.floor(u[:, 10] * cnt.clamp_min(1)).long().clamp_max((cnt - 1).clamp_min(0))
        partner = d.partners[d.partner_start[idx] + pick]
        k = torch.floor(u[:, 11] * d.aug_emb.shape[1]).long().clamp_max(d.aug_emb.shape[1] - 1)
        ident = torch.where((cnt > 0)[:, None], d.emb[partner], d.aug_emb[idx, k])
        return Batch(
            target=x,
            degraded=degraded,
            mask=mask,
            noisy=noisy,
            checker=checker,
            identity=F.normalize(ident, dim=1),
            index=idx,
            params=params,
        )


__all__ = [
    "CANVAS",
    "DOWN_KERNELS",
    "Batch",
    "FaceTensors",
    "GPUBatchMaker",
    "GPUDegradation",
    "GPUDegrader",
    "checkerboards",
    "gaussian_kernels",
    "gaussian_matrices",
    "jpeg_dct",
    "mask_bank",
    "quant_tables",
    "resampling_tables",
    "resize_matrix",
]
