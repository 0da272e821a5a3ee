"""Tiled inference for upscalers: bounded memory, seam-free blending, progress and cancel between tiles.

Layout (per axis, in input pixels): the image is cut into *core* tiles of ``tile`` pixels. Each network call sees
its core grown by ``overlap`` context pixels on every side (clipped at the image border). Two neighbouring outputs
are cross-faded over a band of ``blend`` pixels centred on their shared core border with a raised-cosine ramp; the two
weights sum to one (and separable products of them sum to one at corners), so no normalisation buffer is needed.

Exactness: a tile's output is identical to the untiled output wherever its whole receptive field lies inside the
tile's input. The blended value at a pixel uses tiles whose input reaches at least ``overlap - blend / 2`` pixels
beyond it, so for a network with receptive-field radius ``R <= overlap - blend / 2`` (input pixels) the tiled output
equals the untiled one up to float rounding. For larger receptive fields (RRDBNet) the differences are tiny and the
cross-fade hides them.

Memory: the output is written into one preallocated buffer (``out_dtype`` float32, float16 or uint8: a 16000x12000
RGB image is 2.3 GB / 1.15 GB / 0.58 GB); accumulation happens in a float32 strip one tile row high, which is
rounded into the output as soon as it is final.

Resume: a run stopped by its ``cancel`` (a job that gave its lane to another, :mod:`frgd_studio.model.jobs`) keeps its
finished tiles in a :class:`TileResume`; run again with it on the same input and layout, it goes on at the next tile
and its output is bit-identical to an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from ..jobs import CancelToken, ProgressFn, check_cancel, report

logger = logging.getLogger(__name__)

UpscaleFn = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_OVERLAP = 16
MIN_TILE = 32
FINALIZE_ROWS = 256


DEFAULT_CPU_MEM_CAP = 1.0e9
"""Working-memory budget for one tile on CPU (bytes); the output buffer comes on top."""


def overlap_for_radius(radius: int | None) -> int:
    """Context pixels per tile side for a receptive radius (input pixels): enough for exact tiling when it is known
    (with the default blend band, ``overlap / 2``, tiling is exact for ``R <= 3/4 * overlap``), else 16."""
    if radius is None:
        return DEFAULT_OVERLAP
    ov = max(4, math.ceil(4 * radius / 3))
    return ov + ov % 2


def memory_cap(device: torch.device, mem_cap: float | None = None) -> float:
    """Bytes one tile may use: ``mem_cap`` if given, else half the free memory of a CUDA device or 1 GB on CPU."""
    if mem_cap:
        return float(mem_cap)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.5 * free
    return DEFAULT_CPU_MEM_CAP


def resolve_tile(
    h: int,
    w: int,
    tile: int | str | None,
    upscaler: Any,
    overlap: int,
    mem_cap: float | None = None,
    fp16: bool = True,
) -> int:
    """Core tile side for an ``h`` x ``w`` input to ``upscaler`` (a :class:`frgd.sr.registry.Upscaler`: its
    ``tileable``, ``bytes_per_pixel`` and ``device``): ``tile`` itself, the whole image for ``0``/``None`` or an
    untileable upscaler, or for ``"auto"`` :func:`choose_tile` under :func:`memory_cap` (``fp16`` on CUDA: half the
    activation memory), at most the upscaler's ``max_tile`` (interpolation: larger tiles are slower)."""
    if tile in (None, 0) or not upscaler.tileable:
        return max(h, w)
    if tile == "auto":
        bpp = upscaler.bytes_per_pixel
        if fp16 and upscaler.device.type == "cuda":
            bpp *= 0.5  # fp16 activations
        side = choose_tile(h, w, bpp, memory_cap(upscaler.device, mem_cap), overlap)
        return min(side, upscaler.max_tile) if upscaler.max_tile else side
    return int(tile)


def choose_tile(height: int, width: int, bytes_per_pixel: float, mem_cap_bytes: float, overlap: int) -> int:
    """Largest core tile (multiple of 8, >= 32) whose padded input fits ``mem_cap_bytes`` of activations.

    ``bytes_per_pixel``: the network's peak working memory per *input* pixel. Returns ``max(height, width)``
    (no tiling) when the whole image fits.
    """
    if height * width * bytes_per_pixel <= mem_cap_bytes:
        return max(height, width)
    side = int(math.sqrt(mem_cap_bytes / max(bytes_per_pixel, 1e-9))) - 2 * overlap
    return max(MIN_TILE, side // 8 * 8)


def tile_bounds(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into ``ceil(length / tile)`` near-equal cores (no sliver at the end)."""
    n = max(1, math.ceil(length / tile))
    edges = [round(i * length / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def padded_span(lo: int, hi: int, length: int, overlap: int) -> tuple[int, int]:
    """The input span a core span ``[lo, hi)`` of an axis of ``length`` pixels is run with: ``overlap`` context
    pixels on each side, clipped at the border."""
    return max(0, lo - overlap), min(length, hi + overlap)


def padded_tiles(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The input boxes ``(y0, y1, x0, x1)`` :func:`tiled_upscale` feeds the network, in call order: each core tile of
    :func:`tile_bounds` grown by :func:`padded_span` (one box when it all fits)."""
    tile, overlap = (int(tile) if tile else max(height, width)), max(0, int(overlap))
    ys, xs = tile_bounds(height, tile), tile_bounds(width, tile)
    if len(ys) * len(xs) == 1:
        return [(0, height, 0, width)]
    return [
        (*padded_span(y0, y1, height, overlap), *padded_span(x0, x1, width, overlap)) for y0, y1 in ys for x0, x1 in xs
    ]


@dataclass(eq=False)
class TileResume:
    """Where a stopped :func:`tiled_upscale` was, so that the next run on the same input goes on from there.

    Pass one object to every run of one upscale. ``tag`` names what makes the tiles (e.g. the model; :meth:`for_tag`
    forgets tiles another one made); the layout (input shape, scale, tiles, overlap, blend, output dtype, device) is
    checked by :func:`tiled_upscale`, which starts over when it differs. It holds the output buffer and the float32
    strip being accumulated (:attr:`nbytes`) until :meth:`reset` or until the object is dropped.
    """

    tag: str = ""
    layout: tuple | None = None
    done: int = 0
    """Tiles finished (their outputs are in :attr:`out` or :attr:`strip`)."""
    rows_final: int = 0
    """Tile rows whose output rows are final in :attr:`out` (the strip moved on past them)."""
    strip_top: int = 0
    out: torch.Tensor | None = None
    strip: torch.Tensor | None = None
    resumed: int = 0
    """Runs that went on from a previous one's tiles."""
    skipped: int = 0
    """Tiles those runs did not run again."""

    def reset(self) -> None:
        """Forget every finished tile (and free the buffers)."""
        self.layout, self.done, self.rows_final, self.strip_top, self.out, self.strip = None, 0, 0, 0, None, None

    def for_tag(self, tag: str) -> TileResume:
        """This object, its tiles forgotten when they were made under another ``tag``."""
        if tag != self.tag:
            self.reset()
            self.tag = tag
        return self

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept buffers."""
        return sum(t.numel() * t.element_size() for t in (self.out, self.strip) if t is not None)


def _ramp_up(n: int, device: torch.device) -> torch.Tensor:
    """``n`` raised-cosine weights rising from ~0 to ~1 (pixel centres); ``ramp + flip(ramp) == 1``."""
    t = (torch.arange(n, dtype=torch.float64, device=device) + 0.5) / n
    return (0.5 - 0.5 * torch.cos(math.pi * t)).float()


def _axis_weight(lo: int, hi: int, core_lo: int, core_hi: int, length: int, half_band: int, s: int) -> torch.Tensor:
    """Output-resolution weights along one axis for a tile whose output covers input ``[lo, hi)``."""
    w = torch.zeros((hi - lo) * s)
    start, stop = core_lo - (half_band if core_lo > 0 else 0), core_hi + (half_band if core_hi < length else 0)
    w[(start - lo) * s : (stop - lo) * s] = 1.0
    if core_lo > 0 and half_band:
        n = 2 * half_band * s
        a = (core_lo - half_band - lo) * s
        w[a : a + n] = _ramp_up(n, w.device)
    if core_hi < length and half_band:
        n = 2 * half_band * s
        a = (core_hi - half_band - lo) * s
        w[a : a + n] = _ramp_up(n, w.device).flip(0)
    return w


def _to_out_dtype(x: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    if out_dtype == torch.uint8:
        return (x.clamp(0, 1) * 255.0).round_().to(torch.uint8)
    return x.to(out_dtype)


def tiled_upscale(
    fn: UpscaleFn,
    x: torch.Tensor,
    scale: int,
    tile: int | None = 256,
    overlap: int = DEFAULT_OVERLAP,
    blend: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    out_dtype: torch.dtype = torch.float32,
    resume: TileResume | None = None,
) -> torch.Tensor:
    """Run ``fn`` tile by tile over ``x`` ``(1, C, H, W)`` and return ``(1, C_out, scale*H, scale*W)``.

    ``fn`` maps ``(1, C, h, w)`` -> ``(1, C_out, scale*h, scale*w)`` on ``device`` (default ``x.device``).
    ``tile``: core tile side in input pixels (``None`` or ``0``: one tile). ``overlap``: context pixels added on
    every side. ``blend``: cross-fade band (even, ``<= overlap``; default ``overlap // 2``). ``dtype``:
    ``torch.float16`` runs ``fn`` under CUDA autocast (ignored on CPU, where float32 is used). The result lives on
    ``x.device`` in ``out_dtype`` (uint8 results are ``round(clamp(y, 0, 1) * 255)``).
    Reports ``progress(done, total, "tile i/n")`` after each tile; ``cancel`` is checked before each tile (to stop
    *inside* a tile, wrap the call in :func:`frgd.sr.cancel.cancel_checkpoints` of the network, as
    :class:`frgd.sr.upscale.UpscalePipeline` does). The boxes fed to ``fn`` are :func:`padded_tiles`.
    ``resume``: a :class:`TileResume` kept across runs of the same upscale; a run stopped by ``cancel`` leaves its
    finished tiles there and the next run goes on at the next tile (reporting ``progress`` of the tiles done so far
    first); a finished run resets it.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise InputError(f"tiled_upscale expects a (1, C, H, W) tensor, got {tuple(x.shape)}")
    if scale < 1 or int(scale) != scale:
        raise InputError(f"scale must be a positive integer, got {scale}")
    _, _, H, W = x.shape
    tile = int(tile) if tile else max(H, W)
    if tile < 1:
        raise InputError(f"tile must be positive, got {tile}")
    overlap = max(0, int(overlap))
    blend = overlap // 2 if blend is None else int(blend)
    blend -= blend % 2
    if blend > overlap or (blend > tile and tile < max(H, W)):  # one tile (e.g. a 1x1 image) needs no blending
        raise InputError(f"blend ({blend}) must not exceed overlap ({overlap}) or tile ({tile})")
    ys, xs = tile_bounds(H, tile), tile_bounds(W, tile)
    min_core = min(min(b - a for a, b in ys), min(b - a for a, b in xs))
    half = min(blend // 2, min_core // 2)
    if half != blend // 2:
        logger.debug("blend band reduced to %d px to fit %d px tiles", 2 * half, min_core)
    run_device = torch.device(device) if device is not None else x.device
    autocast = (
        torch.autocast("cuda", dtype=dtype)
        if dtype in (torch.float16, torch.bfloat16) and run_device.type == "cuda"
        else contextlib.nullcontext()
    )

    total = len(ys) * len(xs)
    if total == 1:  # one tile: no blending buffers (and nothing to resume)
        if resume is not None:
            resume.reset()
        check_cancel(cancel)
        with torch.inference_mode(), autocast:
            res = fn(x.to(run_device))
        if res.shape[-2:] != (H * scale, W * scale):
            raise InputError(f"upscaler returned {tuple(res.shape)} for a {H}x{W} input at scale {scale}")
        report(progress, 1, 1, "tile 1/1")
        return _to_out_dtype(res.float().to(x.device), out_dtype)
    s = int(scale)
    # the run's state (output buffer, float32 strip accumulating output rows [strip_top, ...), tiles and rows done)
    # lives in one TileResume: the caller's, which a stopped run leaves it in, or a throwaway one
    st = resume if resume is not None else TileResume()
    layout = (tuple(x.shape), s, tile, overlap, half, out_dtype, str(x.device), str(run_device))
    if st.layout != layout:
        st.reset()
        st.layout = layout
    elif st.done:
        st.resumed += 1
        st.skipped += st.done
        logger.debug("resuming a tiled upscale at tile %d/%d", st.done + 1, total)
        report(progress, st.done, total, f"tile {st.done}/{total}")
    for row, (y0, y1) in enumerate(ys):
        if row < st.rows_final:
            continue
        py0, py1 = padded_span(y0, y1, H, overlap)
        # output rows touched by this tile row: [row_lo, row_hi) in input pixels
        row_lo = y0 - half if y0 > 0 else 0
        row_hi = y1 + half if y1 < H else H
        for col, (x0, x1) in enumerate(xs):
            if row * len(xs) + col < st.done:  # finished by an earlier run (resume)
                continue
            check_cancel(cancel)
            px0, px1 = padded_span(x0, x1, W, overlap)
            inp = x[:, :, py0:py1, px0:px1].to(run_device, non_blocking=True)
            with torch.inference_mode(), autocast:
                res = fn(inp)
            if res.shape[-2:] != ((py1 - py0) * s, (px1 - px0) * s):
                raise InputError(
                    f"upscaler returned {tuple(res.shape)} for a {py1 - py0}x{px1 - px0} tile at scale {s}"
                )
            res = res.float().to(x.device)
            if st.out is None:
                c_out = res.shape[1]
                st.out = torch.empty((1, c_out, H * s, W * s), dtype=out_dtype, device=x.device)
                max_core = max(b - a for a, b in ys)
                st.strip = torch.zeros((1, c_out, (max_core + 2 * half) * s, W * s), device=x.device)
            strip = st.strip
            assert strip is not None
            wy = _axis_weight(py0, py1, y0, y1, H, half, s).to(x.device)
            wx = _axis_weight(px0, px1, x0, x1, W, half, s).to(x.device)
            # keep only the part of the tile output that carries weight
            ry0, ry1 = (row_lo - py0) * s, (row_hi - py0) * s
            cx_lo = x0 - half if x0 > 0 else 0
            cx_hi = x1 + half if x1 < W else W
            rx0, rx1 = (cx_lo - px0) * s, (cx_hi - px0) * s
            part = res[:, :, ry0:ry1, rx0:rx1] * wy[ry0:ry1, None]  # separable weights: no (h, w) weight map
            part.mul_(wx[None, rx0:rx1])
            sy = (row_lo - st.strip_top) * s
            strip[:, :, sy : sy + part.shape[2], cx_lo * s : cx_hi * s] += part
            st.done += 1  # no cancel check between the tile's sum and this count: a stopped run's state is whole
            report(progress, st.done, total, f"tile {st.done}/{total}")
        # rows above the next tile row's band are final
        out, strip = st.out, st.strip
        assert out is not None and strip is not None
        final_hi = (y1 - half) if y1 < H else H
        n_final = (final_hi - st.strip_top) * s
        top = st.strip_top * s
        for r0 in range(0, n_final, FINALIZE_ROWS):  # in row chunks: the dtype conversion needs temporaries
            r1 = min(n_final, r0 + FINALIZE_ROWS)
            out[:, :, top + r0 : top + r1] = _to_out_dtype(strip[:, :, r0:r1], out_dtype)
        rest = strip[:, :, n_final:].clone()
        strip.zero_()
        strip[:, :, : rest.shape[2]] = rest
        st.strip_top, st.rows_final = final_hi, row + 1
    out = st.out
    assert out is not None
    st.reset()
    return out
