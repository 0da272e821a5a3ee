"""Measured run-time estimates of the upscalers, before a long job starts (re-exported by :mod:`frgd.sr.registry`).

The network is timed, not guessed, and at the size it will really run: the tile layout of
:class:`frgd.sr.upscale.UpscalePipeline` (auto tile, default overlap: :func:`frgd.sr.tiling.padded_tiles`) gives the
largest padded input box; the multiply-accumulates of every convolution on that box are counted on a meta-device
copy (no compute), then the network runs on a random input of that box for at most ``budget_s`` seconds and is
stopped through the cancel hooks of :mod:`frgd.sr.cancel`. The tile's time (:class:`TileRate`) is the time up to the
end of the first convolution (what precedes it, such as a bicubic base, and first-call costs) plus the rest of the
convolution work at the speed measured after it; a tile that finishes within the budget is timed whole.
The estimate is that time per pixel summed over the padded boxes, so the overlap's pixels count.

Why not a small probe scaled by pixels: per-pixel speed depends on the input size. On a 2-core CPU our frgd-sr runs
13.5 us/px at 32-128 px but 32 us/px at 496 px (activations outgrow the caches), while Real-ESRGAN x4plus is far
slower per pixel on small inputs (hundreds of layers with little work between thread synchronisations). For the same
reason there is no separate warm-up call: on a 2-core CPU shared with other jobs one x4plus call on a 32 px input
took 10 s (one thread synchronisation per layer), more than the probe; the probe's first layers carry the first-call
costs instead (the estimate errs a little high). Budget: ``budget_s`` (default 2 s) plus building the model, per
``(name, scale, device, torch threads, box)``, cached in-process.

Not counted: loading the model, blending the tiles (a few per cent), and a change of load on the machine between the
probe and the job (the probe measures the machine as loaded at that moment).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import resolve_device
from ..errors import Cancelled
from ..jobs import CancelToken
from .cancel import cancel_checkpoints
from .tiling import overlap_for_radius, padded_tiles, resolve_tile

# No import of .registry or .upscale here (not even for types): the registry re-exports this module's estimate, and
# the import graph has no cycles (tests/test_import_graph.py). Upscalers are duck-typed :class:`Upscaler` objects.
Upscaler = Any
UpscalerFactory = Callable[[torch.device], Any]

logger = logging.getLogger(__name__)

COUNT_SIDE = 32
"""Side of the square input that counts convolution work when the meta-device copy cannot run the network."""
PROBE_BUDGET_S = 2.0
"""Seconds the real-size probe may run before it is stopped and extrapolated."""


@dataclass(frozen=True)
class TileRate:
    """A measured network call on one ``box`` (H, W) input: ``tile_seconds`` for the whole call, extrapolated from
    the share ``fraction`` of its convolution work that ran in ``probe_seconds`` (1: the call was timed whole)."""

    box: tuple[int, int]
    tile_seconds: float
    fraction: float
    probe_seconds: float

    @property
    def seconds_per_pixel(self) -> float:
        return self.tile_seconds / (self.box[0] * self.box[1])


_SHELLS: dict[tuple[str, int, str], Any] = {}
"""Model-free copies of the upscalers (their tile-layout attributes) per (name, scale, device)."""
_RATES: dict[tuple[str, int, str, int, int, int], TileRate] = {}
"""Measured rates per (name, scale, device, torch threads, box height, box width)."""
_LOCK = threading.Lock()


def clear_estimate_cache() -> None:
    """Forget every measured :class:`TileRate` (e.g. after the machine's load changed)."""
    with _LOCK:
        _SHELLS.clear()
        _RATES.clear()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> float:
    """Multiply-accumulates of one call of ``m`` that produced ``out``."""
    return float(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])


def _meta_conv_macs(module: nn.Module, h: int, w: int) -> float | None:
    """Convolution multiply-accumulates of ``module`` on a ``(1, 3, h, w)`` input, run on a meta-device copy (no
    compute, no hooks of the original); ``None`` when the copy cannot run there."""
    import copy

    total = [0.0]
    try:
        meta = copy.deepcopy(module).to("meta")
        for m in meta.modules():
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(lambda m, _a, out: total.__setitem__(0, total[0] + _conv_macs(m, out)))
        with torch.inference_mode():
            meta(torch.empty(1, 3, h, w, device="meta"))
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
        logger.debug("meta-device count failed (%s); counting on a small input", err)
        return None
    return total[0]


def measure_tile_rate(up: Upscaler, box: tuple[int, int], budget_s: float | None = None, seed: int = 0) -> TileRate:
    """Time ``up.run`` on a random ``(1, 3, *box)`` input; on CPU stop it after ``budget_s`` seconds (default
    :data:`PROBE_BUDGET_S`) and extrapolate by the share of convolution work done (see the module docstring).
    Without convolutions (interpolation) or off the CPU (asynchronous kernels) the call is timed whole. The module is
    left as it was (no hooks)."""
    budget_s = PROBE_BUDGET_S if budget_s is None else float(budget_s)
    h, w = (int(v) for v in box)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)).to(up.device)
    convs = [m for m in up.module.modules() if isinstance(m, nn.Conv2d)] if up.module is not None else []
    partial = bool(convs) and up.device.type == "cpu"
    macs = [0.0]
    last = [0.0]
    first: list[float] = []  # (end time, work) of the first convolution

    def count(m: nn.Module, _a: Any, out: torch.Tensor) -> None:
        macs[0] += _conv_macs(m, out)
        last[0] = time.perf_counter()
        if not first:
            first.extend((last[0], macs[0]))

    total = _meta_conv_macs(up.module, h, w) if partial and up.module is not None else 0.0
    handles = [c.register_forward_hook(count) for c in convs]
    try:
        with torch.inference_mode():
            if total is None:  # fully convolutional: every conv output scales with the input area
                up.run(torch.rand(1, 3, COUNT_SIDE, COUNT_SIDE).to(up.device))
                total, macs[0] = macs[0] * (h * w) / COUNT_SIDE**2, 0.0
                first.clear()
            token = CancelToken()
            timer = threading.Timer(budget_s, token.cancel)
            t0 = time.perf_counter()
            if partial:
                timer.start()
            try:
                with cancel_checkpoints(up.module if partial else None, token):
                    up.run(x)
                _sync(up.device)
                end = time.perf_counter()
                return TileRate((h, w), end - t0, 1.0, end - t0)
            except Cancelled:
                pass
            finally:
                timer.cancel()
    finally:
        for hd in handles:
            hd.remove()
    if not first or total <= 0:  # stopped before the first conv finished: the budget, a lower bound of the tile
        return TileRate((h, w), budget_s, 1.0, budget_s)
    # what ran before the first conv finished (e.g. frgd-sr's bicubic base, first-call costs) is timed as it is; the
    # rest of the convolution work is extrapolated at the speed of the convolutions after it
    first_end, first_macs = first
    head = first_end - t0
    if macs[0] > first_macs:
        rest = (last[0] - first_end) * (total - first_macs) / (macs[0] - first_macs)
    else:
        rest = head * (total - first_macs) / first_macs
    return TileRate((h, w), head + rest, macs[0] / total, last[0] - t0)


def _rate_and_boxes(
    key: tuple[str, int], build: UpscalerFactory, device: torch.device, h: int, w: int, tile: int | str | None
) -> tuple[TileRate, list[tuple[int, int, int, int]]]:
    """The measured rate at the largest padded box of an ``h`` x ``w`` photo (cached) and the photo's padded boxes."""
    skey = (*key, str(device))
    with _LOCK:  # one probe at a time: concurrent probes would time each other
        up = None
        if skey not in _SHELLS:
            up = build(device)
            _SHELLS[skey] = dataclasses.replace(up, run=_layout_only, module=None)  # keeps no model alive
        shell = _SHELLS[skey]
        overlap = overlap_for_radius(shell.receptive_radius)
        boxes = padded_tiles(h, w, resolve_tile(h, w, tile, shell, overlap=overlap), overlap)
        y0, y1, x0, x1 = max(boxes, key=lambda b: (b[1] - b[0]) * (b[3] - b[2]))
        rkey = (*skey, torch.get_num_threads(), y1 - y0, x1 - x0)
        if rkey not in _RATES:
            up = up or build(device)
            _RATES[rkey] = measure_tile_rate(up, (y1 - y0, x1 - x0))
            logger.info("probe of %s x%d on %s: %s", key[0], key[1], device, _RATES[rkey])
        return _RATES[rkey], boxes


def _layout_only(x: torch.Tensor) -> torch.Tensor:
    """``run`` of the cached model-free upscaler copies: they size tiles, they never upscale."""
    raise RuntimeError("this Upscaler copy only describes the tile layout; build one with get_upscaler to run it")


def estimate_seconds(
    key: tuple[str, int],
    build: UpscalerFactory,
    height: int,
    width: int,
    device: Any = "cpu",
    tile: int | str | None = "auto",
) -> float:
    """Seconds the network calls of :class:`frgd.sr.upscale.UpscalePipeline` (``tile``, default overlap) will take
    for a ``height`` x ``width`` input on ``device`` with the upscaler ``build(device)`` (cached per ``key``, e.g.
    ``(name, scale)``): the measured :class:`TileRate` per pixel times the pixels of the padded tiles. The public
    entry point is :func:`frgd.sr.registry.estimate_upscale_seconds`."""
    dev = resolve_device(device)
    rate, boxes = _rate_and_boxes(key, build, dev, int(height), int(width), tile)
    return float(rate.seconds_per_pixel * sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes))
