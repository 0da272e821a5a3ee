"""MATLAB-compatible ``imresize`` (numpy, bit-exact for uint8 bicubic) and a batched torch variant.

MATLAB's algorithm (``imresize.m``): for each dimension, output pixel ``x`` (1-based) maps to input coordinate
``u = x / scale + 0.5 * (1 - 1 / scale)``; the kernel is evaluated at ``u - j`` for the ``ceil(width) + 2`` input pixels
``j`` starting at ``floor(u - width / 2)``. When downscaling with antialiasing the kernel is stretched by ``1 / scale``
(``h(x) = scale * k(scale * x)``). Weights are normalised to sum to one and all-zero weight columns are dropped.
The dimension with the smaller scale is resized first (rows first when equal), and integer inputs are rounded (half
away from zero) and saturated after **each** pass.

Borders: out-of-range indices are *replicated* by default (``border="replicate"``): that is what reproduces the
official SR benchmark LR files (Set5/Set14 ``LR_bicubic``) bit for bit; ``imresize.m``'s mirror padding
(``border="symmetric"``) differs from them by up to 11 grey levels along the borders when downscaling (the
antialiased kernel reaches 4-8 pixels out). For upscaling the two differ only in the outermost output pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported by imresize_torch only: the numpy metrics (and `frgd --help`) stay light
    import torch

__all__ = ["imresize", "imresize_torch", "resize_weights", "KERNELS"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's cubic convolution kernel (Keys, a = -0.5), support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _triangle(x: np.ndarray) -> np.ndarray:
    """Bilinear (triangle) kernel, support [-1, 1]."""
    return (x + 1) * ((x >= -1) & (x < 0)) + (1 - x) * ((x >= 0) & (x <= 1))


def _box(x: np.ndarray) -> np.ndarray:
    """Box kernel, support [-0.5, 0.5)."""
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _lanczos(a: int) -> Callable[[np.ndarray], np.ndarray]:
    def k(x: np.ndarray) -> np.ndarray:
        # MATLAB: (a*sin(pi*x).*sin(pi*x/a) + eps) ./ ((pi^2*x.^2)/a + eps), zero outside |x| < a
        return (
            (a * np.sin(np.pi * x) * np.sin(np.pi * x / a) + np.finfo(np.float64).eps)
            / ((np.pi**2 * x**2) / a + np.finfo(np.float64).eps)
            * (np.abs(x) < a)
        )

    return k


KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "bicubic": (_cubic, 4.0),
    "bilinear": (_triangle, 2.0),
    "box": (_box, 1.0),
    "lanczos2": (_lanczos(2), 4.0),
    "lanczos3": (_lanczos(3), 6.0),
}


def resize_weights(
    in_length: int,
    out_length: int,
    scale: float,
    method: str = "bicubic",
    antialiasing: bool = True,
    border: str = "replicate",
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions``: ``(weights, indices)``, both ``(out_length, P)``; indices are 0-based and in range."""
    if method not in KERNELS:
        raise ValueError(f"unknown imresize method {method!r}; choose from {sorted(KERNELS)}")
    kernel, width = KERNELS[method]
    if scale < 1 and antialiasing:

        def h(x: np.ndarray) -> np.ndarray:
            return scale * kernel(scale * x)

        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(p, dtype=np.float64)[None, :]  # 1-based
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    if border == "symmetric":
        aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])  # 0-based mirror
        idx = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    elif border == "replicate":
        idx = np.clip(indices.astype(np.int64) - 1, 0, in_length - 1)
    else:
        raise ValueError(f"unknown border mode {border!r}; use 'replicate' or 'symmetric'")
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def _output_shape(in_shape: tuple[int, int], scale: float | None, output_shape) -> tuple[tuple[int, int], tuple]:
    if output_shape is not None:
        out = (int(output_shape[0]), int(output_shape[1]))
        scales = (out[0] / in_shape[0], out[1] / in_shape[1])
        if scale is not None:
            scales = (float(scale), float(scale))
        return out, scales
    if scale is None:
        raise ValueError("imresize needs scale or output_shape")
    s = float(scale)
    # ceil(in * scale) as MATLAB, tolerant of 1/3-style float error (255 * (1/3) = 85.00000000000001)
    out = tuple(int(math.ceil(n * s - 1e-9)) for n in in_shape)
    return out, (s, s)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(H, W[, C])`` so both sides are multiples of ``scale`` (bottom/right), as MATLAB ``modcrop``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    method: str = "bicubic",
    antialiasing: bool = True,
    border: str = "replicate",
) -> np.ndarray:
    """MATLAB ``imresize(img, scale, method)``.

    ``img``: ``(H, W)`` or ``(H, W, C)``, uint8 (rounded and saturated to uint8 after each pass, like MATLAB; bit-exact
    with the official SR benchmark LR images) or float (computed in float64, returned as the input float dtype,
    no clipping). ``output_shape`` ``(h, w)`` overrides the size computed from ``scale`` (``ceil(H * scale)``).
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize expects (H, W) or (H, W, C), got shape {arr.shape}")
    in_dtype = arr.dtype
    is_int = np.issubdtype(in_dtype, np.integer)
    if is_int and in_dtype != np.uint8:
        raise ValueError(f"imresize supports uint8 or float input, got {in_dtype}")
    out_shape, scales = _output_shape(arr.shape[:2], scale, output_shape)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    x = arr.astype(np.float64)
    for dim in order:
        if out_shape[dim] == x.shape[dim] and scales[dim] == 1.0:
            continue
        w, idx = resize_weights(x.shape[dim], out_shape[dim], scales[dim], method, antialiasing, border)
        xm = np.moveaxis(x, dim, 0)
        acc = np.zeros((w.shape[0],) + xm.shape[1:], dtype=np.float64)
        extra = (slice(None),) + (None,) * (xm.ndim - 1)
        for k in range(w.shape[1]):
            acc += w[:, k][extra] * xm[idx[:, k]]
        if is_int:
            acc = np.clip(np.floor(acc + 0.5), 0, 255)  # MATLAB rounds half away from zero (np.round: to even)
        x = np.moveaxis(acc, 0, dim)
    if is_int:
        return x.astype(np.uint8)
    return x.astype(in_dtype if np.issubdtype(in_dtype, np.floating) else np.float64)


def _weight_matrix(
    in_length: int, out_length: int, scale: float, method: str, antialiasing: bool, border: str
) -> np.ndarray:
    w, idx = resize_weights(in_length, out_length, scale, method, antialiasing, border)
    m = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), w.shape[1])
    np.add.at(m, (rows, idx.ravel()), w.ravel())
    return m


def imresize_torch(
    x: torch.Tensor,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    method: str = "bicubic",
    antialiasing: bool = True,
    quantize: bool = False,
    border: str = "replicate",
) -> torch.Tensor:
    """Batched MATLAB-style resize of ``(B, C, H, W)`` float tensors via two dense weight matmuls.

    Same weights as :func:`imresize`. ``quantize=True`` rounds to 1/255 steps after each pass (like uint8 MATLAB,
    up to float32 round-off). Not guaranteed bit-exact; use :func:`imresize` for benchmark LR images.
    """
    import torch

    if x.ndim != 4:
        raise ValueError(f"imresize_torch expects (B, C, H, W), got {tuple(x.shape)}")
    out_shape, scales = _output_shape((x.shape[-2], x.shape[-1]), scale, output_shape)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    y = x
    for dim in order:
        n_in = y.shape[-2 + dim]
        if out_shape[dim] == n_in and scales[dim] == 1.0:
            continue
        m = torch.from_numpy(_weight_matrix(n_in, out_shape[dim], scales[dim], method, antialiasing, border)).to(
            device=y.device, dtype=y.dtype
        )
        y = torch.einsum("oh,bchw->bcow", m, y) if dim == 0 else torch.einsum("ow,bchw->bcho", m, y)
        if quantize:
            y = torch.round(y.clamp(0, 1) * 255.0) / 255.0
    return y
