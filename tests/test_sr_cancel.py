"""Cancel inside a tile (forward pre-hooks), measured time estimates and the fast-alternative advice of the SR pane."""

from __future__ import annotations

import threading
import time
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frgd.archs.edsr_arch import EDSRLite
from frgd.archs.rrdbnet_arch import RRDBNet
from frgd.archs.srvgg_arch import SRVGGNetCompact
from frgd.errors import Cancelled
from frgd.jobs import CancelToken
from frgd.sr import estimate
from frgd.sr.cancel import cancel_checkpoints, checkpoint_layers
from frgd.sr.registry import (
    SR_METHODS,
    SRMethod,
    estimate_upscale_seconds,
    fast_alternative,
    get_upscaler,
    upscaler_status,
)
from frgd.sr.tiling import padded_tiles, tiled_upscale
from frgd.sr.upscale import UpscalePipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _img(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _tiny_rrdb(seed: int = 0) -> RRDBNet:
    """RRDBNet with 4 blocks of 8 features: 4 * 15 + 6 = 66 convolutions."""
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=4, num_grow_ch=4, scale=4).eval()


def _register(monkeypatch, name: str, net: nn.Module, macs: float = 0.0, scales: tuple[int, ...] = (4,)) -> None:
    """A table row ``name`` whose loader returns ``net`` (no weights: status ``ready``)."""
    row = SRMethod(name, name, scales, native=(4,), load=lambda n, native, dev: net, macs_per_pixel=macs)
    monkeypatch.setitem(SR_METHODS, name, row)


def _no_hooks(module: nn.Module) -> bool:
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in module.modules())


# --------------------------------------------------------------------------------------------- cancel hooks


def test_checkpoints_cover_every_conv_and_are_removed_on_any_error() -> None:
    net = _tiny_rrdb()
    n_conv = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    with cancel_checkpoints(net, CancelToken()) as n:
        assert n == n_conv == len(checkpoint_layers(net)) == 4 * 15 + 6
        assert sum(bool(m._forward_pre_hooks) for m in net.modules()) == n_conv
    assert _no_hooks(net)
    with pytest.raises(RuntimeError), cancel_checkpoints(net, CancelToken()):
        net(torch.rand(1, 5, 8, 8))  # wrong channel count: not a Cancelled, hooks must go anyway
    assert _no_hooks(net)
    with cancel_checkpoints(net, None) as n, cancel_checkpoints(None, CancelToken()) as m:
        assert n == m == 0 and _no_hooks(net)


def test_cancel_from_a_hook_stops_mid_tile_and_leaves_the_model_reusable(monkeypatch) -> None:
    """Cancel after the 2nd of 4 RRDB blocks of the first tile: Cancelled before block 3, no tile reported, no hook
    left, and the next run is bit-identical to a run that never had cancel support."""
    net = _tiny_rrdb()
    _register(monkeypatch, "tiny-rrdb", net)
    up = get_upscaler("tiny-rrdb", 4)
    pipe = UpscalePipeline(up)
    x = _img(36, 40)
    with torch.inference_mode():
        plain = tiled_upscale(up.run, x, 4, tile=16, overlap=pipe.default_overlap())  # no hooks at all
    token = CancelToken()
    blocks_done: list[int] = []
    handles = [b.register_forward_hook(lambda m, a, o, i=i: blocks_done.append(i)) for i, b in enumerate(net.body)]
    handles.append(net.body[1].register_forward_hook(lambda *a: token.cancel()))
    tiles: list[int] = []
    try:
        with pytest.raises(Cancelled):
            pipe(x, tile=16, cancel=token, progress=lambda d, t, m: tiles.append(d))
    finally:
        for h in handles:
            h.remove()
    assert blocks_done == [0, 1] and len(net.body) > len(blocks_done) and tiles == []
    assert _no_hooks(net)
    again = pipe(x, tile=16, cancel=CancelToken())
    assert again.n_tiles > 1 and torch.equal(again.image, plain)


def test_cancel_from_another_thread_mid_conv_stack(tiny_srvgg) -> None:
    """The GUI thread cancels while the worker is inside a tile: the worker stops at the next convolution."""
    net = tiny_srvgg(6)
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    mid = len(convs) // 2
    ran: list[int] = []
    for i, c in enumerate(convs):
        c.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
    reached, token = threading.Event(), CancelToken()

    def wait_for_cancel(_m: nn.Module, _a: tuple) -> None:  # runs after the (prepended) cancel check of convs[mid]
        reached.set()
        deadline = time.monotonic() + 10.0
        while not token.cancelled and time.monotonic() < deadline:
            time.sleep(0.001)

    convs[mid].register_forward_pre_hook(wait_for_cancel)
    gui = threading.Thread(target=lambda: reached.wait(10.0) and token.cancel())
    gui.start()
    with pytest.raises(Cancelled), cancel_checkpoints(net, token), torch.inference_mode():
        net(_img(16, 16))
    gui.join()
    assert token.cancelled and ran == list(range(mid + 1)) and len(convs) > mid + 1


def test_no_cancel_token_changes_nothing(tiny_srvgg, monkeypatch) -> None:
    """``cancel=None`` installs no hook and gives exactly the old tiled result; an idle token gives the same bits."""
    net = tiny_srvgg(6, 1)
    _register(monkeypatch, "tiny-vgg", net)
    up = get_upscaler("tiny-vgg", 4)
    pipe = UpscalePipeline(up)
    x = _img(30, 26, 2)
    with torch.inference_mode():
        old = tiled_upscale(up.run, x, 4, tile=16, overlap=pipe.default_overlap())
    seen: list[int] = []
    orig = nn.Module.register_forward_pre_hook
    monkeypatch.setattr(
        nn.Module, "register_forward_pre_hook", lambda self, *a, **k: seen.append(1) or orig(self, *a, **k)
    )
    assert torch.equal(pipe(x, tile=16).image, old) and seen == []
    assert torch.equal(pipe(x, tile=16, cancel=CancelToken()).image, old) and seen


def test_cancel_latency_benchmark_runs_and_cleans_up(tiny_srvgg, monkeypatch) -> None:
    from frgd.sr.cancel import measure_cancel_latency

    net = tiny_srvgg(6, 2)
    _register(monkeypatch, "tiny-vgg", net)
    res = measure_cancel_latency(get_upscaler("tiny-vgg", 4), (24, 24), delays=(0.0,), worst_layer="body.4")
    assert res["checkpoints"] == len(checkpoint_layers(net)) and res["tile_seconds"] > 0
    # cancelled at once: stops at the first layer (or the tile already ended: nan); via a layer: stops after it
    assert all(v != v or 0 <= v < 5.0 for v in res["latencies"]) and 0 <= res["worst_layer_latency"] < 5.0
    assert _no_hooks(net)


# -------------------------------------------------------------------------------------------- estimate


class _Clock:
    """Virtual time for :mod:`frgd.sr.estimate` (its ``time.perf_counter`` and ``threading.Timer``): only the sleeping
    layers advance it, by their nominal cost, so the estimate's arithmetic is checked exactly, whatever the machine's
    load (real sleeps on a loaded machine were 29 % off a 25 % tolerance)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[list] = []  # [deadline, fn]

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for t in [t for t in self.timers if t[0] <= self.now]:
            self.timers.remove(t)
            t[1]()

    def Timer(self, interval: float, fn):  # noqa: N802 - threading.Timer's name
        clock, entry = self, [0.0, fn]

        class _Timer:
            def start(self) -> None:
                entry[0] = clock.now + interval
                clock.timers.append(entry)

            def cancel(self) -> None:
                if entry in clock.timers:
                    clock.timers.remove(entry)

        return _Timer()


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(estimate, "time", types.SimpleNamespace(perf_counter=c.perf_counter))
    monkeypatch.setattr(estimate, "threading", types.SimpleNamespace(Timer=c.Timer))
    return c


class _SleepConv(nn.Conv2d):
    """A 1x1 convolution that takes ``per_pixel * pixels`` seconds (sleeps, or advances ``clock``): a layer of known
    cost."""

    def __init__(self, per_pixel: float, clock: _Clock | None = None) -> None:
        super().__init__(3, 3, 1)
        self.per_pixel = per_pixel
        self.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_meta:  # the estimate counts work on a meta copy: no time there
            cost = self.per_pixel * x.shape[-2] * x.shape[-1]
            self.clock.advance(cost) if self.clock else time.sleep(cost)
        return super().forward(x)


class _Sleepy(nn.Module):
    """``n`` sleeping layers then nearest x4: a network whose time per call is ``n * per_pixel * pixels``."""

    def __init__(self, n: int, per_pixel: float, clock: _Clock | None = None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(_SleepConv(per_pixel, clock) for _ in range(n)))
        self.calls = 0

    def seconds(self, pixels: int) -> float:
        return len(self.layers) * self.layers[0].per_pixel * pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.interpolate(self.layers(x), scale_factor=4, mode="nearest")


@pytest.fixture
def clean_estimates():
    estimate.clear_estimate_cache()
    yield
    estimate.clear_estimate_cache()


def _boxes(name: str, h: int, w: int, tile: int | str) -> list[tuple[int, int, int, int]]:
    pipe = UpscalePipeline(get_upscaler(name, 4))
    ov = pipe.default_overlap()
    return padded_tiles(h, w, pipe.resolve_tile(h, w, tile, overlap=ov), ov)


def test_estimate_times_the_network_on_the_real_tile_layout(monkeypatch, clean_estimates, clock) -> None:
    # about 30 ms per layer on the largest box, in virtual time: the estimate is the padded tiles' time exactly
    net = _Sleepy(4, 4e-6, clock)
    _register(monkeypatch, "sleepy", net)
    h, w, tile = 150, 230, 64
    secs = estimate_upscale_seconds("sleepy", 4, h, w, "cpu", tile=tile)
    assert net.calls == 1  # one probe on the largest padded box (finished within the budget)
    boxes = _boxes("sleepy", h, w, tile)
    truth = sum(net.seconds((y1 - y0) * (x1 - x0)) for y0, y1, x0, x1 in boxes)
    assert len(boxes) > 1 and secs == pytest.approx(truth, rel=1e-9)
    assert abs(secs - truth) < abs(secs - net.seconds(h * w))  # the overlap's pixels are counted
    assert estimate_upscale_seconds("sleepy", 4, h, w, "cpu", tile=tile) == secs and net.calls == 1  # cached
    assert estimate_upscale_seconds("sleepy", 4, 2 * h, 2 * w, "cpu", tile=tile) > 3 * secs


def test_probe_stops_at_its_budget_and_extrapolates(monkeypatch, clean_estimates, clock) -> None:
    """A tile longer than the budget is stopped through the cancel hooks after a few layers; the share of conv work
    done gives the whole tile's time, and the network is left without hooks."""
    net = _Sleepy(10, 2e-6, clock)  # 10 layers of 0.02 s (virtual) on a 100x100 box: 0.2 s per tile
    _register(monkeypatch, "sleepy", net)
    monkeypatch.setattr(estimate, "PROBE_BUDGET_S", 0.05)
    rate = estimate.measure_tile_rate(get_upscaler("sleepy", 4), (100, 100))
    truth = net.seconds(100 * 100)
    assert rate.fraction == pytest.approx(0.3) and rate.probe_seconds == pytest.approx(0.06) and _no_hooks(net)
    assert rate.tile_seconds == pytest.approx(truth, rel=1e-9), "3 of 10 layers ran: the rest is extrapolated"
    secs = estimate_upscale_seconds("sleepy", 4, 300, 400, "cpu", tile=128)
    pixels = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in _boxes("sleepy", 300, 400, 128))
    assert secs == pytest.approx(net.seconds(pixels), rel=1e-9)


def test_probe_is_stopped_by_a_real_timer(monkeypatch, clean_estimates) -> None:
    """The same in real time: the budget's timer thread stops the running network between its layers (only that is
    asserted: on a loaded machine sleeps and threads run late)."""
    net = _Sleepy(10, 5e-6)  # 10 layers of 0.05 s on a 100x100 box: 0.5 s per tile
    _register(monkeypatch, "sleepy", net)
    rate = estimate.measure_tile_rate(get_upscaler("sleepy", 4), (100, 100), budget_s=0.05)
    assert 0 < rate.fraction < 1 and rate.tile_seconds > 0 and _no_hooks(net)


def test_estimate_of_the_shipped_model_is_positive_and_probed_once(clean_estimates) -> None:
    """Same largest padded box (3 and 5 cores of 64 px per side): one probe, and seconds scale with padded pixels.
    (That a probe stops at its budget is tested in virtual and in real time above, not by timing this one.)"""
    secs = estimate_upscale_seconds("frgd-sr", 4, 192, 192, "cpu", tile=64)
    assert secs > 0
    n_rates = len(estimate._RATES)
    big = estimate_upscale_seconds("frgd-sr", 4, 320, 320, "cpu", tile=64)
    px = [sum((b - a) * (d - c) for a, b, c, d in _boxes("frgd-sr", n, n, 64)) for n in (192, 320)]
    assert len(estimate._RATES) == n_rates == 1 and big / secs == pytest.approx(px[1] / px[0], rel=1e-9)


# ------------------------------------------------------------------------------------------ speed advice


def _conv_macs_per_pixel(net: nn.Module, side: int = 24) -> float:
    """Conv2d multiply-accumulates per input pixel, counted on the meta device (no compute)."""
    total = [0]

    def count(m: nn.Conv2d, a: tuple, out: torch.Tensor) -> None:
        total[0] += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(count)
    net(torch.zeros(1, 3, side, side, device="meta"))
    return total[0] / side**2


def test_table_costs_match_the_architectures() -> None:
    from frgd.weights import load_config, weights_path

    cfg = load_config(weights_path("frgd-sr-x4"))
    with torch.device("meta"):
        nets = {
            "realesrgan-x4plus": RRDBNet(),
            "realesr-animevideov3": SRVGGNetCompact(),
            "frgd-sr": EDSRLite(scale=4, num_feat=cfg["num_feat"], num_block=cfg["num_block"]),
        }
    for name, net in nets.items():
        assert SR_METHODS[name].macs_per_pixel == pytest.approx(_conv_macs_per_pixel(net), rel=1e-3), name
    assert [m.name for m in SR_METHODS.values() if not m.fast_on_cpu] == ["realesrgan-x4plus"]


def test_fast_alternative_picks_a_cheaper_ready_method_on_cpu_only() -> None:
    slow = SR_METHODS["realesrgan-x4plus"]
    for scale in slow.scales:
        alt = fast_alternative("realesrgan-x4plus", scale, "cpu")
        m = SR_METHODS[alt]
        assert m.load is not None and m.macs_per_pixel < slow.macs_per_pixel and scale in m.scales
        assert upscaler_status(alt) == "ready"  # the fresh test cache has no Real-ESRGAN: our bundled model
    assert fast_alternative("realesrgan-x4plus", 4, torch.device("cpu")) == alt
    assert fast_alternative("realesrgan-x4plus", 4, torch.device("meta")) is None
    assert fast_alternative("realesrgan-x4plus", 4, types.SimpleNamespace(type="cuda")) is None
    assert fast_alternative("realesrgan-x4plus", 4, "cuda:0") is None
    assert fast_alternative(alt, 4, "cpu") is None  # already fast
    assert fast_alternative("bicubic", 4, "cpu") is None  # interpolation


def test_fast_alternative_reads_the_table(monkeypatch) -> None:
    """Make frgd-sr slow in the table: at x3 nothing fast is left; at x4 the other fast network (an anime/video model)
    is proposed only once the table says it is made for photos; when it is installed and ours is not, it comes first."""
    import dataclasses

    import frgd.sr.registry as registry

    monkeypatch.setitem(SR_METHODS, "frgd-sr", dataclasses.replace(SR_METHODS["frgd-sr"], macs_per_pixel=5e7))
    assert fast_alternative("frgd-sr", 3, "cpu") is None
    assert fast_alternative("frgd-sr", 4, "cpu") is None  # the only fast one is not for photos
    anime = SR_METHODS["realesr-animevideov3"]
    monkeypatch.setitem(SR_METHODS, anime.name, dataclasses.replace(anime, for_photos=True))
    assert fast_alternative("frgd-sr", 4, "cpu") == anime.name  # not ready, but now the only fast one for photos
    monkeypatch.setitem(SR_METHODS, "frgd-sr", dataclasses.replace(SR_METHODS["frgd-sr"], macs_per_pixel=1e5))
    monkeypatch.setattr(registry, "upscaler_status", lambda n: "ready" if n == anime.name else "missing")
    assert fast_alternative("realesrgan-x4plus", 4, "cpu") == anime.name  # the ready one first
