"""Cancel *inside* a network call: forward pre-hooks that check a :class:`frgd.jobs.CancelToken` before every layer.

:func:`frgd.sr.tiling.tiled_upscale` checks ``cancel`` between tiles, but one Real-ESRGAN x4plus tile takes tens of
seconds on a 2-core CPU. :func:`cancel_checkpoints` registers a forward pre-hook on every convolution / linear layer
of a module (RRDBNet: 5 per dense block, 351 in all; SRVGGNetCompact: one per conv; EDSRLite: two per residual
block) that calls :func:`frgd.jobs.check_cancel`, so :class:`frgd.errors.Cancelled` is raised at the next layer.

Bound: the time from ``cancel()`` to ``Cancelled`` is at most the longest stretch of work between two checked layers.
For RRDBNet that is one 64->64 3x3 convolution at 4x resolution (``conv_up2`` / ``conv_hr``: 16 * 36.9 k
multiply-accumulates per *input* pixel of the padded tile, 3.3 % of the tile's work); in the body (92 % of the work)
a check comes every 0.1-0.6 % of a tile. :func:`measure_cancel_latency` measures it.

The hooks only read the token: outputs are bit-identical with and without them, and they are removed on exit (also
when ``Cancelled`` or any other error leaves the block), so the module is reusable. While they are installed, every
forward of the module checks that token (do not share one module between concurrent jobs with different tokens).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..errors import Cancelled
from ..jobs import CancelToken, check_cancel
from .tiling import tiled_upscale

logger = logging.getLogger(__name__)

CHECKPOINT_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
"""Layers that get a cancel check before they run (the units of work of the SR networks)."""


def checkpoint_layers(module: nn.Module, types: tuple[type[nn.Module], ...] = CHECKPOINT_TYPES) -> list[nn.Module]:
    """The sub-modules of ``module`` (itself included) that :func:`cancel_checkpoints` hooks, in definition order."""
    return [m for m in module.modules() if isinstance(m, types)]


@contextlib.contextmanager
def cancel_checkpoints(
    module: nn.Module | None, cancel: CancelToken | None, types: tuple[type[nn.Module], ...] = CHECKPOINT_TYPES
) -> Iterator[int]:
    """Check ``cancel`` before every layer of ``types`` in ``module`` while the block runs; yields the hook count.

    A no-op (yields 0) when ``module`` or ``cancel`` is ``None``. Hooks are removed on exit, whatever the exit.
    """
    if module is None or cancel is None:
        yield 0
        return

    def hook(_mod: nn.Module, _args: Any) -> None:
        check_cancel(cancel)

    # prepended: the check runs before any other pre-hook of the layer (e.g. a benchmark's or a test's)
    handles = [m.register_forward_pre_hook(hook, prepend=True) for m in checkpoint_layers(module, types)]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def measure_cancel_latency(
    up: Any,
    size: tuple[int, int] = (200, 200),
    delays: tuple[float, ...] = (1.0,),
    worst_layer: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Seconds from ``cancel()`` to :class:`Cancelled` for ``up`` (a :class:`frgd.sr.registry.Upscaler`) on one
    ``size`` (H, W) tile, run as :class:`frgd.sr.upscale.UpscalePipeline` runs it (a benchmark).

    For each of ``delays`` a timer thread cancels that many seconds after the tile starts. With ``worst_layer``
    (a sub-module name of ``up.module``, e.g. ``"conv_up2"`` of RRDBNet), one more run is held just after that
    layer's check passed until another thread has cancelled: the latency of the unchecked stretch starting there.
    Returns ``{"tile_seconds", "latencies", "worst_layer_latency", "checkpoints"}``; a latency is NaN when the tile
    finished first (e.g. cancelled after the last checked layer: the next tile's check would catch it).
    """
    h, w = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))

    def run(token: CancelToken | None) -> None:
        with cancel_checkpoints(up.module, token):
            tiled_upscale(up.run, x, up.scale, tile=0, cancel=token, device=up.device)

    t0 = time.perf_counter()
    run(None)
    tile_seconds = time.perf_counter() - t0

    def one(delay: float, layer: nn.Module | None = None) -> float:
        token = CancelToken()
        stamp: list[float] = []
        reached = threading.Event()

        def fire() -> None:
            if layer is not None:
                if not reached.wait(timeout=600.0):  # the layer never ran (the run failed): no cancel
                    return
            else:
                time.sleep(delay)
            stamp.append(time.perf_counter())
            token.cancel()

        def hold(_m: nn.Module, _a: Any) -> None:  # after the layer's (prepended) check: wait for the cancel
            reached.set()
            deadline = time.monotonic() + 60.0
            while not token.cancelled and time.monotonic() < deadline:
                time.sleep(1e-4)

        handle = layer.register_forward_pre_hook(hold) if layer is not None else None
        th = threading.Thread(target=fire, daemon=True)
        th.start()
        try:
            run(token)
        except Cancelled:
            end = time.perf_counter()
        else:
            end = float("nan")  # finished before the cancel
        finally:
            if handle is not None:
                handle.remove()
        th.join()
        return end - stamp[0] if stamp else float("nan")

    latencies = [one(d) for d in delays]
    worst = None
    if worst_layer is not None:
        assert up.module is not None
        worst = one(0.0, up.module.get_submodule(worst_layer))
    n = len(checkpoint_layers(up.module)) if up.module is not None else 0
    res = {"tile_seconds": tile_seconds, "latencies": latencies, "worst_layer_latency": worst, "checkpoints": n}
    logger.info("cancel latency of %s on a %dx%d tile: %s", up.name, h, w, res)
    return res
