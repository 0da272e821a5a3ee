"""FRGD's content target: the prior's share (oracles for the algebra, the estimator, the sampler, training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_path
from test_frgd_prior import ConstantPrior, _fake_faces, _with_prior, tiny_pipe  # noqa: F401 - fixture
from torch import nn

from frgd.archs.face_prior_arch import FacePriorNet
from frgd.archs.prior_share_arch import PriorShareNet
from frgd.diffusion import content
from frgd.diffusion.content import (
    blend_target,
    content_hw,
    installed_share_net,
    load_share_net,
    optimal_share,
    prior_fingerprint,
    save_share_net,
    share_loss,
    to_content_scale,
)
from frgd.diffusion.prior import installed_prior, save_prior
from frgd.diffusion.sampling import pipeline as pipeline_mod
from frgd.diffusion.sampling.guidance import downscale_to
from frgd.diffusion.sampling.pipeline import FRGDPipeline
from frgd.diffusion.training import train_prior_share
from frgd.errors import InputError, MissingWeightsError


class ConstantShare(nn.Module):
    """A stand-in estimator whose logit is fixed: an oracle for where its share goes."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(logit)), requires_grad=False)

    def forward(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.logit.expand(y.shape[0])


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------- the algebra
def test_content_scale_rule():
    assert content_hw(16, 16, 128) == (16, 16) and content_hw(127, 90, 128) == (127, 90)
    assert content_hw(128, 128, 128) == (64, 64) and content_hw(300, 200, 128) == (64, 64)
    x = _rand(2, 3, 20, 20)
    assert downscale_to(x, (20, 20)) is x  # the input at its content scale (the content guidance's downscale)
    torch.testing.assert_close(downscale_to(x, (10, 10)), x.view(2, 3, 10, 2, 10, 2).mean((3, 5)))


def test_blend_endpoints_and_the_optimal_share():
    """Oracle: ``g`` made as ``(1 - a0) y + a0 p`` has ``a* = a0`` exactly, and ``a*`` is the minimiser of the target's
    error over a fine grid; the blend is ``y`` at 0 and ``p`` at 1 bit for bit."""
    y, p = _rand(3, 3, 8, 8, seed=1), _rand(3, 3, 8, 8, seed=2)
    a0 = torch.tensor([0.0, 0.3, 1.7])
    g = blend_target(y, p, a0)
    torch.testing.assert_close(optimal_share(y, p, g), a0, atol=1e-5, rtol=0)
    assert torch.equal(blend_target(y, p, torch.zeros(3)), y) and torch.equal(blend_target(y, p, torch.ones(3)), p)
    g2 = g + 0.05 * _rand(3, 3, 8, 8, seed=3)  # not on the line: the best share is the projection
    grid = torch.linspace(-1, 3, 4001)
    err = torch.stack([((blend_target(y, p, a.expand(3)) - g2) ** 2).flatten(1).sum(1) for a in grid])
    torch.testing.assert_close(optimal_share(y, p, g2), grid[err.argmin(0)], atol=1e-3, rtol=0)
    assert torch.equal(optimal_share(y, y, g2), torch.zeros(3))  # no residual: no share


def test_share_loss_orders_shares_as_the_target_error():
    y, p = _rand(4, 3, 6, 6, seed=4), _rand(4, 3, 6, 6, seed=5)
    g = blend_target(y, p, torch.tensor([0.2, 0.9, -0.5, 1.4])) + 0.02 * _rand(4, 3, 6, 6, seed=6)
    grid = torch.linspace(0, 1, 101)
    loss = torch.stack([share_loss(a.expand(4), y, p, g) for a in grid])
    err = torch.stack([((blend_target(y, p, a.expand(4)) - g) ** 2).flatten(1).sum(1) for a in grid])
    assert torch.equal(loss.argmin(0), err.argmin(0))  # the same best share in [0, 1] for every face
    assert loss.argmin(0)[2] == 0 and loss.argmin(0)[3] == 100  # clipped ends


# ----------------------------------------------------------------------------------------------------- estimator
def test_estimator_shapes_and_batch_independence():
    torch.manual_seed(0)
    net = PriorShareNet(width=8, depth=2)
    y, r = _rand(3, 3, 16, 12, seed=7), 0.05 * _rand(3, 3, 16, 12, seed=8)
    out = net(y, r)
    assert out.shape == (3,)
    torch.testing.assert_close(net(y[1:2], r[1:2]), out[1:2])
    assert net(_rand(1, 3, 4, 4), _rand(1, 3, 4, 4)).shape == (1,)
    with pytest.raises(ValueError, match="one shape"):
        net(y, r[:, :, :8])
    with pytest.raises(ValueError, match="at least 4"):
        net(_rand(1, 3, 3, 8), _rand(1, 3, 3, 8))


def test_fingerprint_save_load_and_which_prior(tmp_path, without_shipped_weights):
    torch.manual_seed(1)
    prior = FacePriorNet(channels=(8, 12), blocks=1, mid_blocks=1)
    other = FacePriorNet(channels=(8, 12), blocks=1, mid_blocks=1)
    other.load_state_dict(prior.state_dict())
    assert prior_fingerprint(prior) == prior_fingerprint(other)
    with torch.no_grad():
        other.head.weight[0, 0, 0, 0] += 0.01
    assert prior_fingerprint(prior) != prior_fingerprint(other)
    net = PriorShareNet(width=8, depth=2)
    d = save_share_net(net, tmp_path / "s", prior, {"training": {"step": 1}})
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["arch"] == "PriorShareNet" and cfg["prior_fingerprint"] == prior_fingerprint(prior)
    loaded = load_share_net(d)
    y, r = _rand(2, 3, 10, 10), 0.1 * _rand(2, 3, 10, 10, seed=1)
    torch.testing.assert_close(loaded(y, r), net.half().float()(y, r))  # stored as float16
    with pytest.raises(MissingWeightsError, match=content.PRIOR_SHARE_WEIGHTS):
        load_share_net()
    assert installed_share_net(prior) is None and installed_share_net(None) is None


def test_the_installed_estimator_belongs_to_the_installed_prior():
    prior = installed_prior(size=128)
    if prior is None:
        pytest.skip("no FRGD prior installed in this checkout")
    assert installed_share_net(prior) is not None
    changed = FacePriorNet(**prior.config())
    changed.load_state_dict(prior.state_dict())
    with torch.no_grad():
        changed.tail.bias += 0.01
    assert installed_share_net(changed) is None  # another prior: the input is the target, as before


def test_the_installed_estimator_tells_clean_from_degraded_faces():
    """Shipped weights on faces128 val pairs the estimator never saw: a clean x4 or x8 downscale gets a small share,
    blur + noise + JPEG a large one (the input's own pixels are then worse than the prior's)."""
    root = shared_path("data", "faces128")
    prior = installed_prior(size=128)
    if prior is None:
        pytest.skip("no FRGD prior installed in this checkout")
    net = installed_share_net(prior)
    from frgd.diffusion.training.data import read_image
    from frgd.eval.faces import degrade_faces, select_pairs
    from frgd.tensor import image_to_tensor

    first = train_prior_share.VAL_FIRST + 32  # beyond the estimator's own validation pairs
    gts = [read_image(root / t) for t, _, _ in select_pairs(root, first + 12)[first:]]
    shares = {}
    for scale, preset in ((4.0, "clean"), (8.0, "clean"), (4.0, "medium"), (8.0, "medium")):
        deg = torch.cat([image_to_tensor(x) for x in degrade_faces(gts, scale, preset, 0, first)])
        y, p, _ = train_prior_share.content_batch(prior, deg, deg, 128)  # (the clean version is not used here)
        shares[(scale, preset)] = float(content.estimate_share(net, y, p).mean())
    assert max(shares[(4.0, "clean")], shares[(8.0, "clean")]) < 0.35, shares
    assert min(shares[(4.0, "medium")], shares[(8.0, "medium")]) > 0.6, shares


# ----------------------------------------------------------------------------------------------------- the sampler
def _pipe(tiny_pipe, prior: nn.Module | None, share_net: nn.Module | None) -> FRGDPipeline:  # noqa: F811
    return FRGDPipeline(
        tiny_pipe.model, tiny_pipe.scheduler, tiny_pipe._identity_encoder, device="cpu", name=tiny_pipe.name,
        prior=prior, prior_name="p", prior_share_net=share_net,
    )  # fmt: skip


@pytest.fixture
def captured_targets(monkeypatch):
    """The targets the sampler back-projects onto, in call order."""
    seen: list[torch.Tensor] = []
    original = pipeline_mod.back_project

    def spy(x, target):
        seen.append(target.clone())
        return original(x, target)

    monkeypatch.setattr(pipeline_mod, "back_project", spy)
    return seen


def test_the_sampler_blends_its_target_by_the_share(tiny_pipe, captured_targets):  # noqa: F811
    """Oracle: a constant prior ``C``. The target is the input at share 0, ``C`` at the content scale at share 1,
    exactly the blend in between (the estimator's share when none is given), and share 0 gives the old samples
    bit for bit (no estimator)."""
    S = tiny_pipe.size
    c = _rand(1, 3, S, S, seed=9)
    deg = _rand(2, 3, 8, 8, seed=10)
    kw = dict(num_samples=2, seeds=[3, 4], steps=3, identity_strength=0.0)
    old = _pipe(tiny_pipe, ConstantPrior(c), None)(deg, **kw)
    assert old.params["prior_share"] is None
    y = deg
    pc = to_content_scale(c.expand(2, -1, -1, -1), (8, 8))
    est = _pipe(tiny_pipe, ConstantPrior(c), ConstantShare(0.4))
    for share in (0.0, 0.25, 1.0, None):
        captured_targets.clear()
        out = est(deg, prior_share=share, **kw)
        a = torch.sigmoid(torch.tensor(0.4)).item() if share is None else share
        torch.testing.assert_close(captured_targets[0], y + a * (pc - y), rtol=0, atol=1e-6)
        assert out.params["prior_share"]["source"] == ("estimated" if share is None else "given")
        assert out.params["prior_share"]["values"] == [round(a, 4)] * 2
        if share == 0.0:
            assert torch.equal(out.images, old.images)
        else:
            assert not torch.equal(out.images, old.images)

    # closer to the prior's estimate at the content scale with a larger share
    def dist(share):
        img = est(deg, prior_share=share, **kw).images
        return float((to_content_scale(img, (8, 8)) - pc).abs().mean())

    assert dist(1.0) < dist(0.0)


@pytest.fixture
def guided_targets(monkeypatch):
    """The content targets (``[0, 1]``) the sampler's content guidance is built with, in call order."""
    seen: list[torch.Tensor] = []
    original = pipeline_mod.build_guides

    def spy(*args, **kwargs):
        seen.append((kwargs["content_target"].clone() + 1) / 2)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline_mod, "build_guides", spy)
    return seen


def test_a_masked_sample_holds_its_region_by_the_share(tiny_pipe, guided_targets):  # noqa: F811
    """Oracle: a constant prior ``C``. Under a mask the target is exactly the input outside the mask (at the content
    scale) and the share's blend with ``C`` inside it, given or estimated, with or without a given base; share 0
    gives the samples of a pipeline without an estimator bit for bit; the output still equals the base outside the
    mask."""
    S = tiny_pipe.size
    c = _rand(1, 3, S, S, seed=11)
    deg = _rand(1, 3, 8, 8, seed=12)
    mask = torch.zeros(1, 1, S, S)
    mask[..., 8:24, 4:20] = 1  # the content scale is the input's 8 px: rows 2-5, columns 1-4 there
    region = torch.zeros(1, 1, 8, 8)
    region[..., 2:6, 1:5] = 1
    pc = to_content_scale(c, (8, 8))
    base = _rand(1, 3, S, S, seed=13)
    plain, est = _pipe(tiny_pipe, ConstantPrior(c), None), _pipe(tiny_pipe, ConstantPrior(c), ConstantShare(3.0))
    kw = dict(num_samples=1, seeds=[5], steps=10, identity_strength=0.0, mask=mask)  # content guidance: late steps
    for extra in (dict(), dict(base=base)):
        old = plain(deg, **kw, **extra)
        assert old.params["prior_share"] is None
        for share in (0.0, 0.5, None):
            guided_targets.clear()
            out = est(deg, prior_share=share, **kw, **extra)
            a = torch.sigmoid(torch.tensor(3.0)).item() if share is None else share
            torch.testing.assert_close(guided_targets[0], deg + region * a * (pc - deg), rtol=0, atol=1e-6)
            assert torch.equal(guided_targets[0] * (1 - region), deg * (1 - region)), "the input outside the mask"
            assert out.params["prior_share"] == {"source": "estimated" if share is None else "given",
                                                 "values": [round(a, 4)]}  # fmt: skip
            assert torch.equal(out.images, old.images) == (share == 0.0)
            if "base" in extra:
                assert torch.equal(out.images * (1 - mask), base * (1 - mask)), "the base outside the mask"


def test_the_share_needs_the_prior(tiny_pipe, captured_targets):  # noqa: F811
    """For a whole face from a given base, without a prior or with ``use_prior=False`` (a mask too) the target stays
    the input and the samples are those of a pipeline without an estimator, whatever share is asked for."""
    S = tiny_pipe.size
    c = _rand(1, 3, S, S, seed=11)
    deg = _rand(1, 3, 8, 8, seed=12)
    mask = torch.zeros(1, 1, S, S)
    mask[..., 8:24, 8:24] = 1
    plain, est = _pipe(tiny_pipe, ConstantPrior(c), None), _pipe(tiny_pipe, ConstantPrior(c), ConstantShare(3.0))
    kw = dict(num_samples=1, seeds=[5], steps=3, identity_strength=0.2)
    for extra in (dict(base=torch.full((1, 3, S, S), 0.3)), dict(use_prior=False), dict(use_prior=False, mask=mask)):
        for share in (None, 1.0):
            out = est(deg, prior_share=share, **kw, **extra)
            assert out.params["prior_share"] is None
            assert torch.equal(out.images, plain(deg, **kw, **extra).images)
    assert _pipe(tiny_pipe, None, ConstantShare(3.0)).prior_share_net is None  # no prior: nothing to share
    captured_targets.clear()
    _pipe(tiny_pipe, None, None)(deg, prior_share=1.0, **kw)
    assert torch.equal(captured_targets[0], deg)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", float("nan")])
def test_check_inputs_refuses_a_bad_share(tiny_pipe, bad):  # noqa: F811
    with pytest.raises(InputError, match="prior_share"):
        tiny_pipe(_rand(1, 3, 8, 8), prior_share=bad, steps=2)


# ----------------------------------------------------------------------------------------------------- training
def test_training_round_trip_on_cpu(tmp_path):
    """``train`` (a few steps), ``export``: the exported folder loads, records its training and validation, and is
    used only with the prior it was trained with."""
    root = _fake_faces(tmp_path / "faces")
    torch.manual_seed(0)
    prior = FacePriorNet(channels=(8, 12), blocks=1, mid_blocks=1)
    nn.init.normal_(prior.tail.weight, std=0.05)
    pdir = save_prior(prior, tmp_path / "prior", sample_size=128)
    run = tmp_path / "run"
    argv = ["train", "--faces", str(root), "--run", str(run), "--prior", str(pdir), "--width", "8", "--depth", "2",
            "--batch", "4", "--steps", "5", "--time-budget-min", "5", "--val-faces", "2", "--val-first", "1",
            "--log-every", "2", "--threads", "1"]  # fmt: skip
    assert train_prior_share.main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 5 and state["images"] == 20
    names = {f"x{s:g}" + ("" if p == "clean" else f"-{p}") for s, p in train_prior_share.VAL_SETS}
    assert set(state["val"]) == names
    for v in state["val"].values():
        assert 0 <= v["share"] <= 1 and 0 <= v["best_share"] <= 1 and np.isfinite(v["rms_target"])
    for clean in ("x1.5", "x4", "x8", "x16"):  # a clean input is its own clean downscale: nothing to take from a prior
        assert state["val"][clean]["rms_input"] < 0.05 and state["val"][clean]["best_share"] == 0.0
    out = tmp_path / "exported"
    assert train_prior_share.main(["export", "--run", str(run), "--out", str(out), "--prior", str(pdir)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["step"] == 5 and cfg["training"]["val"] == state["val"]
    from frgd.diffusion.prior import load_prior

    loaded_prior = load_prior(pdir)
    assert load_share_net(out).prior_fingerprint == prior_fingerprint(loaded_prior) == cfg["prior_fingerprint"]
    with pytest.raises(InputError, match="clean-share"):
        train_prior_share.main([*argv, "--clean-share", "2"])
