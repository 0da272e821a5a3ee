"""Tiled inference: identical to untiled for local networks, seam-free blending, progress, cancel, memory helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from frgd.errors import Cancelled, InputError
from frgd.jobs import CancelToken
from frgd.sr.tiling import TileResume, choose_tile, padded_tiles, tile_bounds, tiled_upscale


@pytest.mark.parametrize(
    "size,tile,overlap,blend",
    [((37, 53), 16, 8, 4), ((37, 53), 20, 6, 2), ((64, 48), 32, 10, 10), ((31, 29), 8, 6, 2), ((37, 53), 16, 5, 0)],
)
def test_tiled_equals_untiled_when_overlap_covers_receptive_field(tiny_srvgg, size, tile, overlap, blend) -> None:
    net = tiny_srvgg(3)  # five 3x3 convolutions: receptive-field radius 5 input pixels
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
    out = tiled_upscale(net, x, 4, tile=tile, overlap=overlap, blend=blend)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 1e-4


def test_too_small_overlap_is_detectably_different(tiny_srvgg) -> None:
    """The equality above is not vacuous: with 1 px of context the tile borders differ."""
    net = tiny_srvgg(3)
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(x)
    out = tiled_upscale(net, x, 4, tile=16, overlap=1, blend=0)
    assert (out - ref).abs().max().item() > 1e-2


def test_blend_weights_partition_unity_and_hide_seams() -> None:
    """Each tile adds its own constant: the result must be a smooth cross-fade, not a step, and sum weights to 1."""
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape)
        return F.interpolate(t, scale_factor=2, mode="nearest") * 0 + float(len(calls))

    x = torch.zeros(1, 3, 40, 40)
    out = tiled_upscale(fn, x, 2, tile=20, overlap=8, blend=8)
    assert len(calls) == 4
    assert out.min() >= 1.0 - 1e-6 and out.max() <= 4.0 + 1e-6  # convex combination of the tiles' values
    # far from the borders each tile's own value survives
    assert torch.allclose(out[0, 0, 2, 2], torch.tensor(1.0)) and torch.allclose(out[0, 0, -3, -3], torch.tensor(4.0))
    # across the vertical border of tiles 1|2 (a step of 1.0) the largest jump between neighbours is a ramp step
    row = out[0, 0, 5]
    max_jump = (row[1:] - row[:-1]).abs().max().item()
    band_px = 8 * 2
    assert max_jump < 1.0 * math.pi / (2 * band_px) + 1e-4


def test_uint8_output_matches_rounded_untiled(tiny_srvgg) -> None:
    net = tiny_srvgg(3, 3)
    x = torch.rand(1, 3, 30, 34, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = (net(x).clamp(0, 1) * 255).round()
    out = tiled_upscale(net, x, 4, tile=12, overlap=8, out_dtype=torch.uint8)
    assert out.dtype == torch.uint8
    assert (out.float() - ref).abs().max().item() <= 1.0


def test_progress_per_tile_and_cancel_between_tiles() -> None:
    seen = []
    x = torch.rand(1, 3, 30, 45)
    fn = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    tiled_upscale(fn, x, 2, tile=15, overlap=4, progress=lambda d, t, m: seen.append((d, t, m)))
    assert [s[0] for s in seen] == list(range(1, 7)) and all(s[1] == 6 for s in seen)
    assert seen[-1][2] == "tile 6/6"

    token = CancelToken()
    calls = []

    def cancelling(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        token.cancel()
        return fn(t)

    with pytest.raises(Cancelled):
        tiled_upscale(cancelling, x, 2, tile=15, overlap=4, cancel=token)
    assert len(calls) == 1


def _stopping_after(fn, token: CancelToken, n: int):
    """``fn`` that cancels ``token`` while it runs its ``n``-th tile (so that tile is thrown away, as a network
    stopped inside a tile by :func:`frgd.sr.cancel.cancel_checkpoints` is), and a list of the tiles it ran."""
    calls: list[tuple[int, ...]] = []

    def wrapped(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        if len(calls) == n:
            token.cancel()
            token.raise_if_cancelled()
        return fn(t)

    return wrapped, calls


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.uint8])
def test_a_stopped_upscale_resumes_at_its_next_tile_bit_identically(tiny_srvgg, out_dtype) -> None:
    """Oracle: the uninterrupted run. Stopped inside every tile in turn (the last tile of a row included, whose row is
    finalised only after it) and run again with the same :class:`TileResume`, the result is bit-identical, each tile
    runs exactly once more than the stopped one, and progress goes on from the tiles already done."""
    net = tiny_srvgg(3)
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(4))
    kw = dict(tile=16, overlap=8, blend=4, out_dtype=out_dtype)
    whole = tiled_upscale(net, x, 4, **kw)
    total = len(tile_bounds(37, 16)) * len(tile_bounds(53, 16))
    assert total == 12
    for stop in range(1, total + 1):
        token, resume = CancelToken(), TileResume()
        first, calls = _stopping_after(net, token, stop)
        with pytest.raises(Cancelled):
            tiled_upscale(first, x, 4, cancel=token, resume=resume, **kw)
        assert resume.done == stop - 1 and len(calls) == stop
        assert resume.nbytes > 0 or stop == 1
        counted, again = _stopping_after(net, CancelToken(), 0)
        seen: list[int] = []
        out = tiled_upscale(counted, x, 4, resume=resume, progress=lambda d, t, m, seen=seen: seen.append(d), **kw)
        assert torch.equal(out, whole), f"stopped in tile {stop}"
        assert len(again) == total - (stop - 1)
        assert seen == list(range(stop - 1 if stop > 1 else 1, total + 1))
        assert resume.resumed == (stop > 1) and resume.skipped == stop - 1
        assert resume.done == 0 and resume.out is None and resume.nbytes == 0, "a finished run keeps nothing"


def test_a_resume_stopped_twice_and_one_of_another_layout_or_tag_start_over(tiny_srvgg) -> None:
    net = tiny_srvgg(3)
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(6))
    whole = tiled_upscale(net, x, 4, tile=16, overlap=8)
    resume = TileResume().for_tag("a")
    for stop in (3, 2):  # tiles 1-2, then 3 of the second run: 3 tiles kept
        token = CancelToken()
        fn, _ = _stopping_after(net, token, stop)
        with pytest.raises(Cancelled):
            tiled_upscale(fn, x, 4, tile=16, overlap=8, cancel=token, resume=resume)
    assert resume.done == 3 and resume.resumed == 1
    assert torch.equal(tiled_upscale(net, x, 4, tile=16, overlap=8, resume=resume), whole)

    token = CancelToken()
    fn, _ = _stopping_after(net, token, 4)
    with pytest.raises(Cancelled):
        tiled_upscale(fn, x, 4, tile=16, overlap=8, cancel=token, resume=resume)
    assert resume.for_tag("a").done == 3
    calls = []
    other = tiled_upscale(lambda t: calls.append(1) or net(t), x, 4, tile=20, overlap=8, resume=resume)  # new layout
    assert len(calls) == 4 and torch.equal(other, tiled_upscale(net, x, 4, tile=20, overlap=8))
    with pytest.raises(Cancelled):
        token = CancelToken()
        fn, _ = _stopping_after(net, token, 4)
        tiled_upscale(fn, x, 4, tile=16, overlap=8, cancel=token, resume=resume)
    assert resume.for_tag("b").done == 0 and resume.nbytes == 0, "another model's tiles are forgotten"


def test_tile_bounds_have_no_slivers() -> None:
    b = tile_bounds(100, 96)
    assert b == [(0, 50), (50, 100)]
    assert tile_bounds(7, 100) == [(0, 7)]
    assert sum(hi - lo for lo, hi in tile_bounds(1001, 64)) == 1001


def test_choose_tile_from_memory_cap() -> None:
    assert choose_tile(100, 200, 1000.0, 1e9, 16) == 200  # fits: no tiling
    t = choose_tile(3000, 4000, 20_000.0, 1e9, 16)
    assert t % 8 == 0 and (t + 32) ** 2 * 20_000 <= 1e9 and (t + 40) ** 2 * 20_000 > 1e9
    assert choose_tile(3000, 4000, 1e9, 1e6, 16) == 32  # floor


def test_bad_arguments() -> None:
    fn = lambda t: t  # noqa: E731
    with pytest.raises(InputError):
        tiled_upscale(fn, torch.rand(3, 8, 8), 1)
    with pytest.raises(InputError):
        tiled_upscale(fn, torch.rand(1, 3, 8, 8), 0)
    with pytest.raises(InputError, match="returned"):
        tiled_upscale(fn, torch.rand(1, 3, 8, 8), 2)


def test_shipped_frgd_sr_tiles_exactly_with_its_default_overlap() -> None:
    """The registry reads each arch's receptive radius, so default tiling of our shipped model is seam-free."""
    from frgd.sr.registry import get_upscaler
    from frgd.sr.upscale import UpscalePipeline

    up = get_upscaler("frgd-sr", 2)
    assert up.receptive_radius == up.module.receptive_radius > 0
    x = torch.rand(1, 3, 50, 70, generator=torch.Generator().manual_seed(3))
    pipe = UpscalePipeline(up)
    whole = pipe(x, tile=0).image
    tiled = pipe(x, tile=24).image
    assert (whole - tiled).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "size,tile,overlap", [((37, 53), 16, 8), ((30, 45), 15, 4), ((20, 20), 32, 8), ((9, 70), 16, 0)]
)
def test_padded_tiles_are_the_boxes_tiled_upscale_runs(size, tile, overlap) -> None:
    """:func:`padded_tiles` (used by the time estimate) lists exactly the inputs ``fn`` sees, in order."""
    x = torch.arange(size[0] * size[1], dtype=torch.float32).reshape(1, 1, *size)
    seen = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        y0, x0 = divmod(int(t[0, 0, 0, 0].item()), size[1])
        seen.append((y0, y0 + t.shape[-2], x0, x0 + t.shape[-1]))
        return t

    tiled_upscale(fn, x, 1, tile=tile, overlap=overlap, blend=0)
    assert seen == padded_tiles(*size, tile, overlap) and len(seen) >= 1


@pytest.mark.parametrize("name,scale", [("lanczos", 2), ("bicubic", 3)])
def test_interpolation_tiles_at_most_its_fastest_side_and_stays_seam_free(name, scale) -> None:
    """Interpolation resizes with dense weight matrices (time per pixel grows with the tile's side), so its automatic
    tile is capped at INTERP_MAX_TILE even where memory would take the whole photo; the tiles join without seams.
    A network's automatic tile is still sized by memory alone."""
    from frgd.sr.registry import INTERP_MAX_TILE, get_upscaler
    from frgd.sr.upscale import UpscalePipeline

    pipe = UpscalePipeline(name, scale)
    h, w = 300, INTERP_MAX_TILE * 2 + 40
    assert pipe.resolve_tile(h, w, "auto") == INTERP_MAX_TILE < w, "memory alone would take the whole photo"
    assert pipe.resolve_tile(h, w, 0) == w and pipe.resolve_tile(h, w, 96) == 96, "an explicit tile is kept"
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    tiled = pipe(x, tile="auto")
    assert tiled.n_tiles == 2 * 3 and tiled.tile == INTERP_MAX_TILE
    assert (tiled.image - pipe(x, tile=0).image).abs().max().item() < 1e-5
    net = UpscalePipeline(get_upscaler("frgd-sr", 2))
    assert net.upscaler.max_tile is None and net.resolve_tile(h, w, "auto") == w
