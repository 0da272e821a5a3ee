"""Guidance on analytic objectives: the content projection's fixed point and noise awareness, the identity push
schedule (mid-trajectory, off at the end, step-count independent) with a linear 'encoder', and noisy fusion."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from frgd.diffusion.model import make_train_scheduler
from frgd.diffusion.sampling.guidance import (
    IDENTITY_GRADIENT,
    IDENTITY_SIGMA_OFF,
    IDENTITY_VIEWS,
    ContentGuidance,
    GuidanceContext,
    GuidanceWeights,
    IdentityGuidance,
    back_project,
    build_guides,
    check_views,
    content_lambda,
    downscale_to,
    identity_schedule,
)
from frgd.diffusion.sampling.pipeline import FRGDPipeline
from frgd.diffusion.sampling.schedulers import SCHEDULERS, make_stepper

S = 16
D = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ctx(a: float, a_next: float, step: int = 0, num_steps: int = 10) -> GuidanceContext:
    return GuidanceContext(alpha_bar=a, alpha_bar_next=a_next, step=step, num_steps=num_steps)


# ------------------------------------------------------------------ content guidance
def test_content_projection_fixed_point_and_noise_awareness():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    guide = ContentGuidance(y, 1.0, noise=0.2)
    # high noise (rho_next >> noise): the next state's implied clean image is projected exactly, A x0' = y
    a_next = 0.3
    full = x0 + guide(x0, _ctx(0.2, a_next)) / math.sqrt(a_next)
    torch.testing.assert_close(downscale_to(full, (8, 8)), y, atol=1e-5, rtol=0)
    # the projection's fixed point: an x0 that already matches the input is not moved
    assert float(guide(full, _ctx(0.2, a_next)).abs().max()) < 1e-5
    # half weight halves the low-resolution error
    half = x0 + ContentGuidance(y, 0.5)(x0, _ctx(0.2, a_next)) / math.sqrt(a_next)
    err0 = (downscale_to(x0, (8, 8)) - y).abs().mean()
    assert (downscale_to(half, (8, 8)) - y).abs().mean() == pytest.approx(0.5 * float(err0), rel=1e-4)
    # only the input's frequencies are touched: the correction is constant on each 4x4 block
    hf = full - x0
    torch.testing.assert_close(hf, F.interpolate(downscale_to(hf, (8, 8)), scale_factor=4), atol=1e-6, rtol=0)
    # low noise: the projection fades (lambda = rho / noise) and is off on the last step (output pixels)
    a_low = 1 / (1 + 0.1**2)  # rho_next = 0.1 = noise / 2
    assert content_lambda(a_low, 0.2) == pytest.approx(0.5)
    lo = guide(x0, _ctx(0.9, a_low)) / math.sqrt(a_low)
    torch.testing.assert_close(lo, 0.5 * (full - x0), atol=1e-5, rtol=0)
    assert float(guide(x0, _ctx(0.99, 1.0, step=9)).abs().max()) == 0.0


def _bicubic_down(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=hw, mode="bicubic", antialias=True, align_corners=False)


@pytest.mark.parametrize(("size", "hw"), [(32, (8, 8)), (32, (21, 21)), (64, (43, 40)), (128, (16, 16))])
def test_back_projection_fixed_point_contraction_and_kept_detail(size, hw):
    g = torch.Generator().manual_seed(size + hw[0])
    x = torch.rand(2, 3, size, size, generator=g) * 0.6 + 0.2
    # a sample that already shows the input is not moved
    torch.testing.assert_close(back_project(x, _bicubic_down(x, hw)), x, atol=1e-6, rtol=0)
    err = lambda z, y: float((_bicubic_down(z, hw) - y).abs().mean())  # noqa: E731
    # any input: one back-projection removes about two thirds of the error at the input's scale (white residuals,
    # the hardest case), a smooth residual almost all of it
    y = torch.rand(2, 3, *hw, generator=g) * 0.6 + 0.2
    assert err(back_project(x, y), y) < 0.4 * err(x, y)
    smooth = _bicubic_down(x, hw) + 0.1 * torch.linspace(-1, 1, hw[1]).view(1, 1, 1, -1)
    assert err(back_project(x, smooth), smooth) < 0.05 * err(x, smooth)
    # the sample's detail above the input's resolution stays: the correction carries no pixel-scale checkerboard
    checker = (torch.arange(size).view(-1, 1) + torch.arange(size).view(1, -1)) % 2 * 2 - 1.0
    corr = back_project(x, smooth) - x
    assert abs(float((corr * checker).mean())) < 1e-3 * float(corr.abs().mean())
    # the input's own size: the input itself
    torch.testing.assert_close(back_project(x, x.flip(-1)), x.flip(-1))


def test_content_lambda_is_monotone_in_noise_level():
    vals = [content_lambda(a, 0.2) for a in (0.01, 0.5, 0.9, 0.96, 0.99, 0.999, 1.0)]
    assert vals == sorted(vals, reverse=True) and vals[0] == 1.0 and vals[-1] == 0.0


# ------------------------------------------------------------------ identity guidance: the schedule
def test_identity_schedule_shape():
    assert identity_schedule(1.0) == 1.0 and identity_schedule(IDENTITY_SIGMA_OFF) == 0.0
    assert identity_schedule(0.0) == 0.0
    # the push density dG/dsigma is largest mid-way, zero at both ends
    sig = torch.linspace(IDENTITY_SIGMA_OFF, 1.0, 201).tolist()
    dens = [identity_schedule(b) - identity_schedule(a) for a, b in zip(sig[:-1], sig[1:])]
    peak = sig[dens.index(max(dens))]
    assert abs(peak - (1 + IDENTITY_SIGMA_OFF) / 2) < 0.01
    assert dens[0] < 0.01 * max(dens) and dens[-1] < 0.01 * max(dens)


class LinearEncoder(torch.nn.Module):
    """An analytic 'identity encoder': ``E(x) = normalize(W vec(x))``; similarity to ``r`` is maximal where
    ``W vec(x)`` is parallel to ``r``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randn(D, 3 * S * S, generator=g) / (3 * S * S) ** 0.5)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.flatten(1) @ self.W.T, dim=1)


def _push(guide: IdentityGuidance, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
    """The guide's push for ``x0_hat``, as the sampler asks for it (the denoiser gradient with the identity denoiser
    ``x0_hat = x_t``, where the two gradients agree)."""
    if guide.through_denoiser(ctx):
        x_t = x0.detach().requires_grad_(True)
        return guide.push_through(x_t, x_t * 1.0, ctx)
    return guide(x0, ctx)


@pytest.mark.parametrize("gradient", ["x0", "denoiser"])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("steps", [3, 7, 20, 50, 200])
def test_identity_push_is_mid_trajectory_off_at_the_end_and_step_count_independent(scheduler, steps, gradient):
    stepper = make_stepper(scheduler, make_train_scheduler(), steps)
    enc = LinearEncoder()
    guide = IdentityGuidance(enc, F.normalize(torch.randn(1, D), dim=1), weight=0.5, gradient=gradient)
    x0 = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pushes, sigmas = [], []
    n = len(stepper.timesteps)
    for i in range(n):
        ctx = _ctx(stepper.alpha_bar(i), stepper.alpha_bar_next(i), i, n)
        d = _push(guide, x0, ctx)
        pushes.append(float(d.pow(2).mean().sqrt()))  # RMS of the displacement of x_{t-1}
        sigmas.append(math.sqrt(1 - stepper.alpha_bar(i)))
        torch.testing.assert_close(pushes[-1], 0.5 * guide.share(ctx), atol=1e-6, rtol=1e-5)
    assert pushes[-1] == 0.0  # never on the step that lands on the output
    assert all(p == 0.0 for p, s in zip(pushes, sigmas) if s <= IDENTITY_SIGMA_OFF)
    assert guide.evaluations == sum(p > 0 for p in pushes)  # the encoder only runs where the push is on
    if steps >= 20:
        assert sum(pushes) == pytest.approx(0.5, abs=0.02)  # the weight is the total push, whatever the step count
        peak = sigmas[pushes.index(max(pushes))]
        assert 0.4 < peak < 0.85
        assert pushes[0] < 0.5 * max(pushes)  # weak at pure noise (blurry mean-face x0_hat)


# ------------------------------------------------------------------ identity guidance: views
def test_identity_objective_is_the_mean_similarity_over_the_views():
    enc = LinearEncoder()
    ref = F.normalize(torch.randn(2, D, generator=torch.Generator().manual_seed(5)), dim=1)
    x0 = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(6)) * 2 - 1
    sim = lambda x: (enc.embed((x + 1) * 0.5) * ref).sum(1)  # noqa: E731
    plain = IdentityGuidance(enc, ref, 0.5, views=("identity",))
    both = IdentityGuidance(enc, ref, 0.5, views=("identity", "hflip"))
    torch.testing.assert_close(plain.objective(x0), sim(x0))
    torch.testing.assert_close(both.objective(x0), 0.5 * (sim(x0) + sim(x0.flip(-1))))
    assert not torch.allclose(both.objective(x0), plain.objective(x0))  # a random encoder is not mirror-invariant


@pytest.mark.parametrize("gradient", ["x0", "denoiser"])
def test_mirrored_views_give_mirrored_pushes(gradient):
    """With the face and its mirror image as views, mirroring ``x0_hat`` mirrors the push (it cannot favour one side);
    with one view it does not (a random linear encoder has no symmetry of its own)."""
    enc = LinearEncoder(seed=3)
    ref = F.normalize(torch.randn(1, D, generator=torch.Generator().manual_seed(7)), dim=1)
    x0 = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(8)) * 2 - 1
    ctx = _ctx(0.3, 0.4, step=3, num_steps=10)
    both = IdentityGuidance(enc, ref, 0.5, views=("identity", "hflip"), gradient=gradient)
    torch.testing.assert_close(_push(both, x0.flip(-1), ctx), _push(both, x0, ctx).flip(-1), atol=1e-6, rtol=1e-5)
    one = IdentityGuidance(enc, ref, 0.5, views=("identity",), gradient=gradient)
    assert (_push(one, x0.flip(-1), ctx) - _push(one, x0, ctx).flip(-1)).abs().max() > 1e-3
    assert both.evaluations == 2 and one.evaluations == 2  # one batched encoder pass per guided step


def test_identity_views_are_checked_and_reach_the_guide():
    assert IDENTITY_VIEWS == check_views(list(IDENTITY_VIEWS))
    w = GuidanceWeights(identity=0.1, content=0.0, cfg=1.0, identity_views=["hflip"])
    assert w.identity_views == ("hflip",) and w.as_dict()["identity_views"] == ["hflip"]
    assert GuidanceWeights(identity=0.1, content=0.0, cfg=1.0).identity_views == IDENTITY_VIEWS
    for bad in ((), ("identity", "rot90")):
        with pytest.raises(ValueError, match="identity views"):
            GuidanceWeights(identity=0.1, content=0.0, cfg=1.0, identity_views=bad)
    ident, _ = build_guides(w, encoder=LinearEncoder(), reference=torch.randn(1, D))
    assert ident.views == ("hflip",)


def test_denoiser_gradient_is_the_x0_gradient_through_the_jacobian_transpose():
    """Oracle: for a linear 'denoiser' ``x0_hat = c * roll(x_t, k)`` the gradient with respect to ``x_t`` is
    ``c * roll(grad_x0, -k)``, so the normalised push is the ``x0`` push rolled back (``c`` drops out)."""
    enc = LinearEncoder()
    ref = F.normalize(torch.randn(1, D, generator=torch.Generator().manual_seed(5)), dim=1)
    x_t = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(6)) * 1.6 - 0.8
    ctx = _ctx(0.3, 0.4, step=3, num_steps=10)
    denoise = lambda x: 0.5 * x.roll(3, dims=-1)  # noqa: E731
    through = IdentityGuidance(enc, ref, 0.5, gradient="denoiser")
    assert through.through_denoiser(ctx) and not through.through_denoiser(_ctx(0.3, 1.0, step=9, num_steps=10))
    leaf = x_t.clone().requires_grad_(True)
    push = through.push_through(leaf, denoise(leaf), ctx)
    assert not push.requires_grad
    x0 = denoise(x_t)
    on_x0 = IdentityGuidance(enc, ref, 0.5, gradient="x0")(x0, ctx)
    torch.testing.assert_close(push, on_x0.roll(-3, dims=-1), atol=1e-6, rtol=1e-5)
    assert (push - on_x0).abs().max() > 1e-2  # not the x0 push itself
    assert torch.equal(through(x0, ctx), torch.zeros_like(x0))  # the x0 callback leaves such a step to push_through
    assert through.evaluations == 1 and through.last_similarity.shape == (2,)


def test_identity_gradient_is_checked_and_reaches_the_guide():
    assert GuidanceWeights(identity=0.1, content=0.0, cfg=1.0).identity_gradient == IDENTITY_GRADIENT
    w = GuidanceWeights(identity=0.1, content=0.0, cfg=1.0, identity_gradient="denoiser")
    assert w.as_dict()["identity_gradient"] == "denoiser"
    ident, _ = build_guides(w, encoder=LinearEncoder(), reference=torch.randn(1, D))
    assert ident.gradient == "denoiser"
    with pytest.raises(ValueError, match="identity_gradient"):
        GuidanceWeights(identity=0.1, content=0.0, cfg=1.0, identity_gradient="pixels")
    with pytest.raises(ValueError, match="gradient"):
        IdentityGuidance(LinearEncoder(), torch.randn(1, D), 0.1, gradient="pixels")


class NoNoiseDenoiser(torch.nn.Module):
    """A denoiser whose ``x0_hat`` is ``x_t / sqrt(abar_t)`` (predicts no noise): guidance alone shapes the result."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.ac = alphas_cumprod.double()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(prediction_type="v_prediction", identity_dim=D, sample_size=S)
        self.conds: list[torch.Tensor] = []
        self.inputs: list[torch.Tensor] = []

    @property
    def dtype(self) -> torch.dtype:
        return self.dummy.dtype

    def forward(self, x, t, cond, identity=None, drop_identity=None):
        self.conds.append(cond.clone())
        self.inputs.append(x.clone())
        a = self.ac[int(t.flatten()[0])]
        sa, s1 = a.sqrt(), (1 - a).sqrt()
        x0 = (x.double() / sa).clamp(-1, 1)
        return ((sa * x.double() - x0) / s1).to(x.dtype)


def _analytic_pipe() -> FRGDPipeline:
    sched = make_train_scheduler()
    return FRGDPipeline(NoNoiseDenoiser(sched.alphas_cumprod), sched, LinearEncoder())


@pytest.mark.parametrize("gradient", ["x0", "denoiser"])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_identity_guidance_raises_similarity_monotonically_in_sampling(scheduler, gradient):
    pipe = _analytic_pipe()
    ref = F.normalize(torch.randn(1, D, generator=torch.Generator().manual_seed(4)), dim=1)
    deg = torch.full((1, 3, 4, 4), 0.5)
    sims, calls = [], []
    for wid in (0.0, 0.25, 0.5, 1.0):
        w = GuidanceWeights(identity=wid, content=0.0, cfg=0.0, identity_gradient=gradient)
        pipe.model_calls = 0
        out = pipe(deg, references=ref, num_samples=2, seeds=[1, 2], steps=20, scheduler=scheduler, weights=w)
        sims.append(float(out.identity_scores.mean()))
        calls.append(pipe.model_calls)
    # through this denoiser's clamp, saturated pixels (most of them at high noise) pass no gradient: a smaller rise
    assert sims == sorted(sims) and sims[-1] > sims[0] + (0.1 if gradient == "x0" else 0.05), sims
    assert len(set(calls)) == 1  # the denoiser gradient reuses the step's own model call


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_content_guidance_in_sampling_reaches_the_input_without_copying_it_on_the_last_step(scheduler):
    pipe = _analytic_pipe()
    y = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2)) * 0.6 + 0.2
    kw = dict(num_samples=2, seeds=[1, 2], steps=20, scheduler=scheduler, back_projection=False)
    free = pipe(y, weights=GuidanceWeights(identity=0.0, content=0.0, cfg=0.0), **kw).images
    tied = pipe(y, weights=GuidanceWeights(identity=0.0, content=1.0, cfg=0.0), **kw).images
    err = lambda x: float((downscale_to(x, (4, 4)) - y).abs().mean())  # noqa: E731
    assert err(tied) < 0.1 * err(free)


@pytest.mark.parametrize("scheduler", ["dpmpp", "ddim"])
def test_back_projection_in_sampling_brings_a_whole_face_to_its_input_and_leaves_masked_ones(scheduler):
    """The finished whole face is back-projected (recorded in ``params``); with a mask the kept region is the base
    and nothing is back-projected: the same pixels with the flag on or off."""
    pipe = _analytic_pipe()
    y = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(3)) * 0.6 + 0.2
    kw = dict(num_samples=2, seeds=[1, 2], steps=10, scheduler=scheduler,
              weights=GuidanceWeights(identity=0.0, content=0.0, cfg=0.0))  # fmt: skip
    off, on = pipe(y, back_projection=False, **kw), pipe(y, **kw)
    err = lambda x: float((_bicubic_down(x, (5, 5)) - y).abs().mean())  # noqa: E731
    assert on.params["back_projection"] is True and off.params["back_projection"] is False
    assert err(on.images) < 0.7 * err(off.images)  # less than alone: this denoiser's samples saturate at 0 and 1
    torch.testing.assert_close(on.images, back_project(off.images, y))  # the same sample, then projected
    mask = torch.zeros(1, 1, S, S)
    mask[..., 4:12, 3:10] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(4))
    a = pipe(y, mask=mask, base=base, **kw)
    b = pipe(y, mask=mask, base=base, back_projection=False, **kw)
    assert torch.equal(a.images, b.images) and a.params["back_projection"] is False


def test_noisy_fusion_feeds_x_t_outside_the_mask():
    pipe = _analytic_pipe()
    mask = torch.zeros(1, 1, S, S)
    mask[..., 4:12, 4:12] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(3))
    deg = torch.full((1, 3, 4, 4), 0.5)
    w = GuidanceWeights(identity=0.0, content=0.0, cfg=0.0)
    out = pipe(deg, mask=mask, base=base, steps=6, seeds=[1], weights=w, fusion="noisy")
    assert torch.equal(out.images[..., ~mask[0, 0].bool()], base[..., ~mask[0, 0].bool()])
    for x, cond in zip(pipe.model.inputs, pipe.model.conds):
        torch.testing.assert_close(cond[:, 4:7], x * (1 - mask), atol=0, rtol=0)
        torch.testing.assert_close(cond[:, 3:4], mask, atol=0, rtol=0)
    # clean fusion: the base (in [-1, 1]) outside the mask, the same at every step
    pipe.model.conds.clear()
    pipe(deg, mask=mask, base=base, steps=6, seeds=[1], weights=w, fusion="clean")
    for cond in pipe.model.conds:
        torch.testing.assert_close(cond[:, 4:7], (base * 2 - 1) * (1 - mask), atol=1e-6, rtol=0)
