"""Upscaler registry of the general SR pane: one name -> a callable ``(1, 3, H, W)`` -> ``(1, 3, sH, sW)``.

Names:

* ``bicubic`` - MATLAB ``imresize`` bicubic (:func:`frgd.metrics.imresize.imresize_torch`, the kernel and
  coordinate mapping the SR benchmarks use to make their LR images), computed in float32 without 8-bit rounding.
  Chosen over ``torch.nn.functional.interpolate(mode="bicubic")`` (a = -0.75, different border handling) so that
  "bicubic" means the same thing here as in the published tables. It runs as two dense (banded) matmuls per tile,
  which BLAS makes fast enough; tiling keeps the matrices small.
* ``lanczos`` - MATLAB ``lanczos3`` kernel through the same code.
* ``realesrgan-x4plus`` - Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters; slow on CPU).
* ``realesr-animevideov3`` - Real-ESRGAN animevideov3 x4 (SRVGGNetCompact, 0.6 M parameters; fast).
* ``frgd-sr`` - our PSNR model (``frgd.sr.ours.load_frgd_sr``).

The Real-ESRGAN weights are converted once from the ncnn release (``frgd weights convert NAME``) and then loaded from
the cache as safetensors. A scale other than a network's native one is reached by running the network and resizing
its output with MATLAB bicubic (antialiased) to exactly ``scale`` times the input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import FRGDError, InputError

if TYPE_CHECKING:  # torch is imported lazily so that listing names (CLI --help) stays fast
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

_NEURAL = {
    # name: (native scales, working bytes per input pixel in float32 used to size tiles). `frgd bench sr` on CPU
    # measured 17.9 kB (x4plus), 1.4-1.7 kB (animevideov3) and 2.1 kB (frgd-sr x4) per input pixel
    # (docs/results/bench_sr_cpu*.json); the values here add margin.
    "realesrgan-x4plus": ((4,), 24_000),
    "realesr-animevideov3": ((4,), 3_000),
    "frgd-sr": ((2, 3, 4), 4_000),
}
_INTERP = {"bicubic": "bicubic", "lanczos": "lanczos3"}
MAX_INTERP_SCALE = 8


def available_upscalers() -> list[str]:
    """Every registered name (whether or not its weights are present; see :func:`upscaler_status`)."""
    return [*_INTERP, *_NEURAL]


@dataclass
class Upscaler:
    """An upscaler bound to a device.

    ``run`` works on tensors already on ``device``; ``__call__`` takes them from anywhere and returns the result on
    the input's device. Outputs are clamped to ``[0, 1]``. ``tileable``: the function is local (finite receptive
    field), so :func:`frgd.sr.tiling.tiled_upscale` may split it. ``bytes_per_pixel``: peak float32 working memory
    per input pixel, used to choose tile sizes. ``receptive_radius``: in input pixels (``None``: large/unknown).
    """

    name: str
    scale: int
    run: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    tileable: bool = True
    bytes_per_pixel: float = 4_000.0
    receptive_radius: int | None = None
    module: nn.Module | None = field(default=None, repr=False)
    native_scale: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, 3, H, W)`` float in ``[0, 1]`` -> ``(1, 3, scale*H, scale*W)`` on ``x.device``."""
        import torch

        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{self.name}: expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
        with torch.inference_mode():
            y = self.run(x.to(self.device, torch.float32))
        return y.to(x.device)


def _interp_upscaler(name: str, scale: int, device: torch.device) -> Upscaler:
    from ..metrics.imresize import imresize_torch

    method = _INTERP[name]

    def run(x: torch.Tensor) -> torch.Tensor:
        if scale == 1:
            return x.float().clamp(0.0, 1.0)
        h, w = x.shape[-2:]
        return imresize_torch(x.float(), output_shape=(scale * h, scale * w), method=method).clamp_(0.0, 1.0)

    radius = 2 if method == "bicubic" else 3
    return Upscaler(name, scale, run, device, tileable=True, bytes_per_pixel=40.0 * scale * scale,
                    receptive_radius=radius, native_scale=None)  # fmt: skip


def _to_scale(net_out: torch.Tensor, h: int, w: int, scale: int) -> torch.Tensor:
    from ..metrics.imresize import imresize_torch

    if net_out.shape[-2:] == (scale * h, scale * w):
        return net_out
    return imresize_torch(net_out.float(), output_shape=(scale * h, scale * w), method="bicubic")


def _module_upscaler(name: str, module: nn.Module, native: int, scale: int, device: torch.device) -> Upscaler:
    module = module.to(device).eval()
    module.requires_grad_(False)

    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = module(x)
        return _to_scale(y.float(), h, w, scale).clamp_(0.0, 1.0)

    _, bpp = _NEURAL.get(name, ((native,), 8_000))
    radius = getattr(module, "receptive_radius", None)  # None (e.g. RRDBNet): large, tiles use a generous overlap
    if radius is not None and scale != native:
        # the antialiased bicubic resize of the output reaches 2 / scale input pixels further (+1 for sub-pixel phase)
        radius += math.ceil(2 / scale) + 1
    return Upscaler(name, scale, run, device, tileable=True, bytes_per_pixel=float(bpp), receptive_radius=radius,
                    module=module, native_scale=native)  # fmt: skip


def load_realesrgan(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The converted Real-ESRGAN module ``name`` from the weights cache (float32, eval).

    Raises :class:`frgd.errors.MissingWeightsError` (with the ``frgd weights convert`` command) when absent.
    """
    from ..devices import resolve_device
    from .ncnn_convert import load_converted

    return load_converted(name, resolve_device(device))


def _frgd_sr(scale: int, device: torch.device) -> nn.Module:
    try:
        from .ours import load_frgd_sr
    except ImportError as err:
        raise FRGDError(f"the frgd-sr upscaler is not available in this installation ({err})") from err
    model = load_frgd_sr(scale, device)
    return model


def get_upscaler(name: str, scale: int | None = None, device: torch.device | str = "cpu") -> Upscaler:
    """Build the upscaler ``name`` for ``scale`` (``None``: the network's native scale; 4 for interpolation).

    Raises :class:`InputError` for an unknown name or scale, :class:`MissingWeightsError` when weights are absent.
    """
    from ..devices import resolve_device

    key = name.strip().lower()
    dev = resolve_device(device)
    if key in _INTERP:
        s = 4 if scale is None else int(scale)
        if not 1 <= s <= MAX_INTERP_SCALE:
            raise InputError(f"{key}: scale must be 1..{MAX_INTERP_SCALE}, got {scale}")
        return _interp_upscaler(key, s, dev)
    if key not in _NEURAL:
        raise InputError(f"unknown upscaler {name!r}; choose one of {', '.join(available_upscalers())}")
    natives, _ = _NEURAL[key]
    s = natives[-1] if scale is None else int(scale)
    if s < 1 or s > max(natives):
        raise InputError(f"{key}: scale must be between 1 and {max(natives)}, got {scale}")
    if key == "frgd-sr":
        native = s if s in natives else min(n for n in natives if n >= s)
        return _module_upscaler(key, _frgd_sr(native, dev), native, s, dev)
    native = natives[0]
    return _module_upscaler(key, load_realesrgan(key, dev), native, s, dev)


def upscaler_status(name: str) -> str:
    """``"ready"`` or a one-line reason why :func:`get_upscaler` would fail for ``name`` (cheap: no model is built
    for Real-ESRGAN; their converted files, or the wheel they are converted from on first use, must be present)."""
    key = name.strip().lower()
    if key in _INTERP:
        return "ready"
    if key not in _NEURAL:
        return f"unknown upscaler {name!r}"
    if key == "frgd-sr":
        try:
            get_upscaler(key, device="cpu")
        except FRGDError as err:
            return str(err)
        return "ready"
    from ..weights import find_files, get_entry, missing_message, source_path

    entry = get_entry(key)
    if find_files(key) is not None or (entry.source and source_path(entry.source) is not None):
        return "ready"
    return missing_message(entry)
