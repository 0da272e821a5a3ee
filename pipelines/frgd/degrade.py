"""Seeded, pure degradation synthesis for training and evaluation.

A degradation is ``blur -> downscale -> noise -> JPEG`` (classic ``y = ((x * k) downscaled) + n`` then compression),
optionally with the first three in random order (``shuffle_order``; JPEG stays last, as in real photos), and
optionally resized back to the input size (``resize_back``, the FRGD conditioning input).

Two steps, both deterministic:

1. :func:`sample_params` draws every random choice from a ``numpy`` generator into a plain JSON-able ``dict``
   (scale, kernel, blur sigmas and angle, noise type/strength, JPEG quality, a seed for the noise field).
2. :func:`apply_degradation` applies such a dict to a ``(1, 3, H, W)`` tensor with torch ops (Gaussian blur by
   convolution, ``F.interpolate`` with antialiasing or MATLAB ``imresize``, noise from a seeded ``torch.Generator``)
   and JPEG via OpenCV on the CPU.

:func:`degrade_image` (numpy, one image) and :func:`degrade_batch` (torch, a batch with one seed per sample) wrap the
two. The recorded ``params`` replay the exact degradation with :func:`apply_degradation`; inputs are never modified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .tensor import image_to_tensor, tensor_to_image

KERNELS = ("bicubic", "bilinear", "area", "matlab")
"""Downscale kernels: antialiased torch ``interpolate`` (bicubic, bilinear), box average (area), MATLAB bicubic."""

OPS = ("blur", "downscale", "noise")
"""Ops whose order ``shuffle_order`` permutes; JPEG is always applied last."""

MAX_SCALE = 64.0
"""Largest downscale factor: a 128 px face down to 2 px (the extreme inputs below)."""
EXTREME_PROB = 0.15
"""Default share of training degradations at an extreme scale (:attr:`DegradationConfig.extreme_prob`)."""
EXTREME_SCALE_RANGE = (24.0, 64.0)
"""Default extreme scales: a 128 px face down to 5..2 px, where only the reference can tell who it is."""


@dataclass
class DegradationConfig:
    """Distribution of degradations. Probabilities are per image; ranges are inclusive ``(low, high)``.

    Scales are drawn log-uniformly from ``scale_range`` (or uniformly from ``scale_choices`` when given); the
    low-resolution size is ``max(1, round(H / scale))``. With probability ``extreme_prob`` the scale is drawn
    log-uniformly from ``extreme_scale_range`` instead (**extreme inputs**: a 128 px face at 5..2 px keeps its colours
    and layout but not who it is, so the denoiser's loss can only fall there by using the reference embedding; the
    identity path learns from them, see docs/training_rounds.md, "Extreme inputs"). Sigmas are in pixels of the image
    they are applied to; Gaussian noise sigmas are on the ``[0, 1]`` scale. Poisson noise uses ``peak`` photons at
    white (log-uniform).
    """

    scale_range: tuple[float, float] = (2.0, 16.0)
    scale_choices: tuple[float, ...] | None = None
    extreme_prob: float = EXTREME_PROB
    extreme_scale_range: tuple[float, float] = EXTREME_SCALE_RANGE
    kernels: tuple[str, ...] = ("bicubic", "bilinear", "area")
    kernel_probs: tuple[float, ...] | None = None
    blur_prob: float = 0.7
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    aniso_prob: float = 0.3
    blur_kernel_max: int = 21
    noise_prob: float = 0.6
    noise_sigma: tuple[float, float] = (1.0 / 255.0, 25.0 / 255.0)
    poisson_prob: float = 0.3
    poisson_peak: tuple[float, float] = (20.0, 1000.0)
    gray_noise_prob: float = 0.2
    jpeg_prob: float = 0.7
    jpeg_quality: tuple[int, int] = (10, 95)
    shuffle_order: bool = False
    resize_back: bool = True
    resize_back_kernel: str = "bicubic"
    name: str = "random"

    def __post_init__(self) -> None:
        for name in ("scale_range", "extreme_scale_range"):
            lo, hi = float(getattr(self, name)[0]), float(getattr(self, name)[1])
            if not (1.0 <= lo <= hi <= MAX_SCALE):
                raise InputError(f"{name} must satisfy 1 <= low <= high <= {MAX_SCALE:g}, got {(lo, hi)}")
            setattr(self, name, (lo, hi))
        if self.scale_choices is not None:
            self.scale_choices = tuple(float(s) for s in self.scale_choices)
            if not self.scale_choices or any(not (1.0 <= s <= MAX_SCALE) for s in self.scale_choices):
                raise InputError(f"scale_choices must be in [1, {MAX_SCALE:g}], got {self.scale_choices}")
        self.kernels = tuple(self.kernels)
        bad = [k for k in self.kernels if k not in KERNELS]
        if not self.kernels or bad:
            raise InputError(f"unknown downscale kernel(s) {bad}; choose from {KERNELS}")
        if self.kernel_probs is not None and len(self.kernel_probs) != len(self.kernels):
            raise InputError("kernel_probs must have one probability per kernel")
        names = (
            "extreme_prob",
            "blur_prob",
            "aniso_prob",
            "noise_prob",
            "poisson_prob",
            "gray_noise_prob",
            "jpeg_prob",
        )
        for name in names:
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {v}")
        q0, q1 = self.jpeg_quality
        if not (1 <= q0 <= q1 <= 100):
            raise InputError(f"jpeg_quality must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if self.blur_sigma[0] <= 0 or self.blur_sigma[0] > self.blur_sigma[1]:
            raise InputError(f"blur_sigma must be a positive (low, high) range, got {self.blur_sigma}")
        if not 0.0 <= self.noise_sigma[0] <= self.noise_sigma[1]:
            raise InputError(f"noise_sigma must be a (low, high) range with 0 <= low <= high, got {self.noise_sigma}")
        if not 0.0 < self.poisson_peak[0] <= self.poisson_peak[1]:
            raise InputError(f"poisson_peak must be a positive (low, high) range, got {self.poisson_peak}")
        if self.blur_kernel_max < 3:
            raise InputError("blur_kernel_max must be >= 3")
        if self.resize_back_kernel not in ("bicubic", "bilinear"):
            raise InputError("resize_back_kernel must be 'bicubic' or 'bilinear'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS = ("clean", "mild", "medium")


def fixed_degradation(scale: float, kind: str = "bicubic", preset: str = "clean", resize_back: bool = False) -> (
    DegradationConfig
):  # fmt: skip
    """Deterministic evaluation degradation: downscale by exactly ``scale`` with ``kind``.

    ``preset``: ``"clean"`` (downscale only), ``"mild"`` (Gaussian blur sigma 1.0 at full resolution, Gaussian noise
    sigma 5/255, JPEG quality 75) or ``"medium"`` (blur sigma 2.0, noise 10/255, JPEG 50). Noise is seeded by the seed
    passed to :func:`degrade_image`/:func:`degrade_batch`. The preset name is recorded in ``params["preset"]``.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown degradation preset {preset!r}; choose from {PRESETS}")
    blur, noise, q = {"clean": (None, None, None), "mild": (1.0, 5.0, 75), "medium": (2.0, 10.0, 50)}[preset]
    return DegradationConfig(
        scale_range=(float(scale), float(scale)),
        extreme_prob=0.0,
        kernels=(kind,),
        blur_prob=1.0 if blur else 0.0,
        blur_sigma=(blur or 1.0, blur or 1.0),
        aniso_prob=0.0,
        noise_prob=1.0 if noise else 0.0,
        noise_sigma=((noise or 0.0) / 255.0, (noise or 0.0) / 255.0),
        poisson_prob=0.0,
        gray_noise_prob=0.0,
        jpeg_prob=1.0 if q else 0.0,
        jpeg_quality=(q or 95, q or 95),
        shuffle_order=False,
        resize_back=resize_back,
        name=f"fixed-{preset}-x{scale:g}-{kind}",
    )


@dataclass
class Degraded:
    """Output of :func:`degrade_image`: ``lq`` ``(h, w, 3)`` float32 in ``[0, 1]`` and the sampled ``params``."""

    lq: np.ndarray
    params: dict[str, Any]


@dataclass
class DegradedBatch:
    """Output of :func:`degrade_batch`.

    ``lq``: ``(B, 3, H, W)`` float32 in ``[0, 1]`` when resized back, else a list of ``(3, h_i, w_i)`` tensors;
    ``scales``: ``(B,)`` float32 sampled scales; ``params``: one dict per sample.
    """

    lq: torch.Tensor | list[torch.Tensor]
    scales: torch.Tensor
    params: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------- sampling


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo) if hi <= lo else float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _blur_size(sigma: float, max_size: int) -> int:
    size = 2 * math.ceil(3.0 * sigma) + 1
    size = max(3, min(size, max_size))
    return size if size % 2 == 1 else size - 1


def sample_params(rng: np.random.Generator, cfg: DegradationConfig, size: tuple[int, int]) -> dict[str, Any]:
    """Draw one degradation for an image of ``size`` ``(H, W)``; returns a JSON-able dict for :func:`apply_degradation`.

    The number of draws is fixed per config (every branch consumes the same draws), so later choices do not shift
    when an earlier probability changes the outcome. A config without extreme inputs (``extreme_prob = 0``, e.g.
    :func:`fixed_degradation`) draws exactly what it drew before they existed.
    """
    h, w = int(size[0]), int(size[1])
    order = list(OPS)
    perm = rng.permutation(len(OPS))
    if cfg.shuffle_order:
        order = [OPS[i] for i in perm]
    order.append("jpeg")

    extreme = cfg.extreme_prob > 0 and rng.random() < cfg.extreme_prob
    if cfg.scale_choices:
        scale = float(cfg.scale_choices[int(rng.integers(len(cfg.scale_choices)))])
        rng.random()
    else:
        scale = _log_uniform(rng, *cfg.scale_range)
    if cfg.extreme_prob > 0:  # drawn whether or not this sample is extreme (a fixed number of draws)
        extreme_scale = _log_uniform(rng, *cfg.extreme_scale_range)
        scale = extreme_scale if extreme else scale
    probs = None if cfg.kernel_probs is None else np.asarray(cfg.kernel_probs, np.float64) / sum(cfg.kernel_probs)
    kernel = str(cfg.kernels[int(rng.choice(len(cfg.kernels), p=probs))])
    lr_size = (max(1, int(round(h / scale))), max(1, int(round(w / scale))))

    # blur: always draw the same numbers
    u_blur, u_aniso = rng.random(), rng.random()
    s_iso = _log_uniform(rng, *cfg.blur_sigma)
    s_x, s_y = _log_uniform(rng, *cfg.blur_sigma), _log_uniform(rng, *cfg.blur_sigma)
    theta = float(rng.uniform(-math.pi, math.pi))
    blur: dict[str, Any] | None = None
    if u_blur < cfg.blur_prob:
        if u_aniso < cfg.aniso_prob:
            blur = {"type": "aniso", "sigma_x": s_x, "sigma_y": s_y, "theta": theta}
            blur["size"] = _blur_size(max(s_x, s_y), cfg.blur_kernel_max)
        else:
            blur = {"type": "iso", "sigma": s_iso, "size": _blur_size(s_iso, cfg.blur_kernel_max)}

    # noise
    u_noise, u_poisson, u_gray = rng.random(), rng.random(), rng.random()
    sigma = _uniform(rng, *cfg.noise_sigma)
    peak = _log_uniform(rng, *cfg.poisson_peak)
    noise_seed = int(rng.integers(0, 2**62))
    noise: dict[str, Any] | None = None
    if u_noise < cfg.noise_prob:
        gray = bool(u_gray < cfg.gray_noise_prob)
        if u_poisson < cfg.poisson_prob:
            noise = {"type": "poisson", "peak": peak, "gray": gray, "seed": noise_seed}
        else:
            noise = {"type": "gaussian", "sigma": sigma, "gray": gray, "seed": noise_seed}

    # jpeg
    u_jpeg = rng.random()
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    jpeg = {"quality": quality} if u_jpeg < cfg.jpeg_prob else None

    return {
        "preset": cfg.name,
        "order": order,
        "size": [h, w],
        "scale": scale,
        "kernel": kernel,
        "lr_size": list(lr_size),
        "blur": blur,
        "noise": noise,
        "jpeg": jpeg,
        "resize_back": bool(cfg.resize_back),
        "resize_back_kernel": cfg.resize_back_kernel,
    }


# ---------------------------------------------------------------------------------------------------------- ops


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """``(size, size)`` float64 Gaussian summing to 1; anisotropic when ``sigma_y`` differs, rotated by ``theta``."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    xx, yy = np.meshgrid(r, r)
    pts = np.stack([xx, yy], axis=-1)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return k / k.sum()


def blur_tensor(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Convolve ``(B, C, H, W)`` with a ``(k, k)`` kernel per channel (reflect padding; replicate for tiny images)."""
    k = kernel.shape[0]
    pad = k // 2
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    weight = torch.from_numpy(kernel.astype(np.float32)).to(x.device, x.dtype)[None, None].expand(c, 1, k, k)
    return F.conv2d(xp, weight, groups=c)


def resize_tensor(x: torch.Tensor, size: tuple[int, int], kernel: str) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size`` ``(h, w)`` with an antialiased ``kernel`` (see :data:`KERNELS`)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if kernel == "area":
        return F.interpolate(x, size=size, mode="area")
    if kernel == "matlab":
        from .metrics.imresize import imresize_torch

        return imresize_torch(x, output_shape=size, method="bicubic")
    if kernel not in ("bicubic", "bilinear"):
        raise InputError(f"unknown resize kernel {kernel!r}")
    return F.interpolate(x, size=size, mode=kernel, align_corners=False, antialias=True)


def jpeg_tensor(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip (OpenCV, 4:2:0, on the CPU) of ``(B, 3, H, W)`` in ``[0, 1]``; 8-bit quantised result."""
    import cv2

    out = []
    for img in x.detach().clamp(0, 1).cpu():
        u8 = np.round(img.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
            raise RuntimeError("OpenCV JPEG encoding failed")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        out.append(torch.from_numpy(np.ascontiguousarray(dec)).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out).to(device=x.device, dtype=x.dtype)


def _noise(x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    gen = torch.Generator(device=x.device)
    gen.manual_seed(int(spec["seed"]))
    b, c, h, w = x.shape
    if spec["type"] == "gaussian":
        shape = (b, 1, h, w) if spec.get("gray") else (b, c, h, w)
        n = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype) * float(spec["sigma"])
        return x + n
    if spec["type"] == "poisson":
        peak = float(spec["peak"])
        if spec.get("gray"):
            lum = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).clamp(0, 1)
            noisy = torch.poisson((lum * peak).float(), generator=gen).to(x.dtype) / peak
            return x + (noisy - lum)
        return torch.poisson((x.clamp(0, 1) * peak).float(), generator=gen).to(x.dtype) / peak
    raise InputError(f"unknown noise type {spec['type']!r}")


def apply_degradation(x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Apply recorded ``params`` (from :func:`sample_params`) to ``x`` ``(1, 3, H, W)`` in ``[0, 1]``; pure.

    Returns ``(1, 3, H, W)`` when ``params["resize_back"]`` else ``(1, 3, h, w)``, float, clamped to ``[0, 1]``.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
    y = x.float() if x.dtype not in (torch.float32, torch.float64) else x
    size = tuple(x.shape[-2:])
    for op in params["order"]:
        if op == "blur" and params.get("blur"):
            b = params["blur"]
            if b["type"] == "aniso":
                k = gaussian_kernel(int(b["size"]), float(b["sigma_x"]), float(b["sigma_y"]), float(b["theta"]))
            else:
                k = gaussian_kernel(int(b["size"]), float(b["sigma"]))
            y = blur_tensor(y, k)
        elif op == "downscale":
            y = resize_tensor(y, tuple(params["lr_size"]), params["kernel"]).clamp(0, 1)
        elif op == "noise" and params.get("noise"):
            y = _noise(y, params["noise"]).clamp(0, 1)
        elif op == "jpeg" and params.get("jpeg"):
            y = jpeg_tensor(y, int(params["jpeg"]["quality"]))
    if params.get("resize_back"):
        y = resize_tensor(y, size, params.get("resize_back_kernel", "bicubic"))
    return y.clamp(0, 1)


# ------------------------------------------------------------------------------------------------------ wrappers


def degrade_image(img: np.ndarray, rng: np.random.Generator, cfg: DegradationConfig | None = None) -> Degraded:
    """Degrade one ``(H, W, 3)`` float32 ``[0, 1]`` image (uint8/uint16 accepted) with choices drawn from ``rng``.

    Returns :class:`Degraded` with ``lq`` ``(H, W, 3)`` (``cfg.resize_back``) or ``(h, w, 3)`` float32 in ``[0, 1]``.
    """
    cfg = cfg or DegradationConfig()
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"degrade_image expects an (H, W, 3) image, got shape {arr.shape}")
    params = sample_params(rng, cfg, arr.shape[:2])
    with torch.no_grad():
        y = apply_degradation(image_to_tensor(arr), params)
    return Degraded(lq=np.ascontiguousarray(tensor_to_image(y, np.float32)), params=params)


def degrade_batch(
    x: torch.Tensor, seeds: Sequence[int] | torch.Generator, cfg: DegradationConfig | None = None
) -> DegradedBatch:
    """Degrade a batch ``(B, 3, H, W)`` in ``[0, 1]``; sample ``i`` uses ``np.random.default_rng(seeds[i])``.

    With a ``torch.Generator``, one seed per sample is drawn from it (CPU). Ops run on ``x.device``; JPEG runs on
    the CPU. Same seeds -> identical output; ``x`` is not modified.
    """
    cfg = cfg or DegradationConfig()
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"degrade_batch expects (B, 3, H, W), got {tuple(x.shape)}")
    b = x.shape[0]
    if isinstance(seeds, torch.Generator):
        seed_list = [int(s) for s in torch.randint(0, 2**62, (b,), generator=seeds, device=seeds.device).tolist()]
    else:
        seed_list = [int(s) for s in seeds]
        if len(seed_list) != b:
            raise InputError(f"need one seed per sample: got {len(seed_list)} seeds for a batch of {b}")
    outs: list[torch.Tensor] = []
    params: list[dict[str, Any]] = []
    with torch.no_grad():
        for i, seed in enumerate(seed_list):
            p = sample_params(np.random.default_rng(seed), cfg, tuple(x.shape[-2:]))
            p["seed"] = seed
            outs.append(apply_degradation(x[i : i + 1], p)[0])
            params.append(p)
    scales = torch.tensor([p["scale"] for p in params], dtype=torch.float32)
    lq: torch.Tensor | list[torch.Tensor] = torch.stack(outs) if cfg.resize_back else outs
    return DegradedBatch(lq=lq, scales=scales, params=params)


__all__ = [
    "KERNELS",
    "PRESETS",
    "Degraded",
    "DegradedBatch",
    "DegradationConfig",
    "apply_degradation",
    "blur_tensor",
    "degrade_batch",
    "degrade_image",
    "fixed_degradation",
    "gaussian_kernel",
    "jpeg_tensor",
    "resize_tensor",
    "sample_params",
]
