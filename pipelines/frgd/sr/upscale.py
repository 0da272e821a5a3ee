"""General SR pane: :class:`UpscalePipeline` runs a registry upscaler over a whole photo, tiled.

Usage::

    pipe = UpscalePipeline("realesr-animevideov3", device="auto")
    out = pipe(x)                 # x: (1, 3, H, W) float32 in [0, 1]
    out.image                     # (1, 3, 4H, 4W) float32 in [0, 1] (uint8 with out_dtype=torch.uint8)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from ..devices import describe_device, is_oom
from ..errors import FRGDError, InputError
from ..jobs import CancelToken, ProgressFn
from .cancel import cancel_checkpoints
from .registry import Upscaler, get_upscaler
from .tiling import TileResume, overlap_for_radius, resolve_tile, tile_bounds, tiled_upscale

logger = logging.getLogger(__name__)

MAX_INPUT_PIXELS = 64_000_000


@dataclass
class UpscaleOutput:
    """Result of :class:`UpscalePipeline`.

    Attributes:
        image: ``(1, 3, sH, sW)`` float32 in ``[0, 1]`` (or uint8 / float16 as requested), on the input's device.
        model: upscaler name; scale: factor; tile: core tile side used (input pixels); n_tiles: tiles run;
        overlap: context pixels per tile side; seconds: wall time; device: where the network ran.
    """

    image: torch.Tensor
    model: str
    scale: int
    tile: int
    n_tiles: int
    seconds: float
    device: str
    overlap: int = 0


class UpscalePipeline:
    """Upscale whole photos with one registry model (see :mod:`frgd.sr.registry`)."""

    def __init__(self, upscaler: Upscaler | str, scale: int | None = None, device: torch.device | str = "cpu") -> None:
        self.upscaler = upscaler if isinstance(upscaler, Upscaler) else get_upscaler(upscaler, scale, device)
        if scale is not None and isinstance(upscaler, Upscaler) and upscaler.scale != int(scale):
            raise InputError(f"upscaler {upscaler.name} has scale {upscaler.scale}, not {scale}")

    @property
    def scale(self) -> int:
        return self.upscaler.scale

    def check_inputs(self, x: torch.Tensor, tile: int | str | None, overlap: int) -> None:
        """Validate shapes, range and tiling arguments (raises :class:`InputError`)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise InputError(f"expected a (1, 3, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if not x.is_floating_point():
            raise InputError(f"expected a float tensor in [0, 1], got {x.dtype}")
        h, w = x.shape[-2:]
        if h < 1 or w < 1:
            raise InputError(f"empty image {w}x{h}")
        if h * w > MAX_INPUT_PIXELS:
            raise InputError(f"image too large to upscale: {w}x{h} > {MAX_INPUT_PIXELS} pixels")
        if tile not in (None, "auto") and (not isinstance(tile, int) or tile < 0):
            raise InputError(f"tile must be 'auto', 0 (no tiling) or a positive integer, got {tile!r}")
        if isinstance(tile, int) and 0 < tile < 16:
            raise InputError(f"tile must be at least 16 pixels, got {tile}")
        if overlap < 0:
            raise InputError(f"overlap must be >= 0, got {overlap}")

    def default_overlap(self) -> int:
        """Context pixels per tile side (:func:`frgd.sr.tiling.overlap_for_radius` of the receptive radius)."""
        return overlap_for_radius(self.upscaler.receptive_radius)

    def resolve_tile(
        self,
        h: int,
        w: int,
        tile: int | str | None = "auto",
        mem_cap: float | None = None,
        overlap: int | None = None,
        fp16: bool = True,
    ) -> int:
        """Core tile side for an ``h`` x ``w`` input: explicit, ``0``/``None`` = whole image, or from the memory cap
        (``fp16``: the network runs under CUDA autocast, half the activation memory); see
        :func:`frgd.sr.tiling.resolve_tile`."""
        ov = self.default_overlap() if overlap is None else overlap
        return resolve_tile(h, w, tile, self.upscaler, overlap=ov, mem_cap=mem_cap, fp16=fp16)

    def __call__(
        self,
        x: torch.Tensor,
        tile: int | str | None = "auto",
        overlap: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        out_dtype: torch.dtype = torch.float32,
        mem_cap: float | None = None,
        fp16: bool = True,
        resume: TileResume | None = None,
    ) -> UpscaleOutput:
        """Upscale ``x`` ``(1, 3, H, W)`` in ``[0, 1]``; see :class:`UpscaleOutput`.

        ``tile``: ``"auto"`` (from ``mem_cap`` bytes, default 1 GB on CPU / half the free GPU memory), ``0`` for
        no tiling, or a core tile side in input pixels. ``overlap``: context pixels per tile side (default
        :meth:`default_overlap`). ``fp16``: CUDA autocast (ignored on CPU).
        On a CUDA out-of-memory error the tile is halved and the image retried (down to 64 px).
        ``cancel`` is checked before every tile and, for network upscalers, before every layer of the network
        (:func:`frgd.sr.cancel.cancel_checkpoints`), so :class:`frgd.errors.Cancelled` comes within one layer.
        ``resume``: kept across runs of one upscale, a run stopped by ``cancel`` is gone on with at its next tile
        (:class:`frgd.sr.tiling.TileResume`; tiles of another upscaler are forgotten).
        """
        overlap = self.default_overlap() if overlap is None else int(overlap)
        self.check_inputs(x, tile, overlap)
        h, w = x.shape[-2:]
        t = self.resolve_tile(h, w, tile, mem_cap, overlap, fp16=fp16)
        up = self.upscaler
        dtype = torch.float16 if (fp16 and up.device.type == "cuda") else None
        t0 = time.perf_counter()
        while True:
            try:
                with cancel_checkpoints(up.module, cancel):
                    img = tiled_upscale(
                        up.run, x, up.scale, tile=t, overlap=overlap, progress=progress, cancel=cancel, dtype=dtype,
                        device=up.device, out_dtype=out_dtype,
                        resume=resume.for_tag(f"{up.name} x{up.scale}") if resume is not None else None,
                    )  # fmt: skip
                break
            except RuntimeError as err:
                if not is_oom(err):
                    raise
                if t <= 64:
                    msg = f"out of memory while upscaling with {up.name}; try --tile 64 or --device cpu"
                    raise FRGDError(msg) from err
                if up.device.type == "cuda":
                    torch.cuda.empty_cache()
                t = max(64, t // 2)
                logger.warning("out of memory; retrying with %d px tiles", t)
        n_tiles = len(tile_bounds(h, t)) * len(tile_bounds(w, t))
        return UpscaleOutput(
            image=img,
            model=up.name,
            scale=up.scale,
            tile=int(t),
            n_tiles=n_tiles,
            seconds=time.perf_counter() - t0,
            device=describe_device(up.device),
            overlap=overlap,
        )


def upscale_alpha(alpha, scale: int):
    """A photo's alpha ``(H, W)`` (any dtype of :func:`frgd.io.to_float`) upscaled ``scale`` times bicubically
    (tiled, so a large photo's stays within memory) to float32 ``(sH, sW)`` in ``[0, 1]``, the size of the photo's
    upscaled result; ``None`` without alpha. Every command that writes a photo's upscaled result keeps its
    transparency with it."""
    if alpha is None:
        return None
    from ..tensor import image_to_tensor

    a = image_to_tensor(alpha[:, :, None])
    bic = get_upscaler("bicubic", int(scale))
    a_up = tiled_upscale(bic.run, a, int(scale), tile=512, overlap=8, out_dtype=torch.float32)
    return a_up[0, 0].clamp(0, 1).numpy()
