"""Oracle tests: with a denoiser that returns the exact ``v``/``eps`` of a known clean image, every offered scheduler
must land on that clean image at every step count, and a masked run must equal the base exactly outside the mask."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from frgd.diffusion.model import make_train_scheduler
from frgd.diffusion.sampling.guidance import RESAMPLE_SIGMA_MIN, GuidanceWeights
from frgd.diffusion.sampling.pipeline import FRGDPipeline
from frgd.diffusion.sampling.schedulers import SCHEDULERS, ddim_update, first_step, make_stepper, renoise

S = 16
# every step count 1..20, the DDIM-trailing failures named in the issue (6, 7, 11, 13, 60) and a spread up to 1000
STEP_COUNTS = sorted(
    {*range(1, 21), 23, 29, 33, 37, 41, 47, 50, 53, 60, 64, 71, 99, 100, 128, 250, 333, 500, 999, 1000}
)


class OracleDenoiser(torch.nn.Module):
    """Returns the exact ``v`` (or ``eps``) for ``x_t`` at ``t`` given the known clean image ``x0`` ``(1,3,S,S)``."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: str) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.ac = alphas_cumprod.double()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(prediction_type=prediction_type, identity_dim=8, sample_size=S)
        self.calls: list[int] = []

    @property
    def dtype(self) -> torch.dtype:
        return self.dummy.dtype

    def forward(self, x, t, cond, identity=None, drop_identity=None):
        tt = int(t.flatten()[0])
        self.calls.append(tt)
        a = self.ac[tt]
        sa, s1 = a.sqrt(), (1 - a).sqrt()
        x0 = self.x0.double().expand_as(x)
        eps = (x.double() - sa * x0) / s1
        out = sa * eps - s1 * x0 if self.config.prediction_type == "v_prediction" else eps
        return out.to(x.dtype)


def _clean() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.rand(1, 3, S, S, generator=g) * 1.6 - 0.8  # [-1, 1] units, away from the clamp


def _pipe(prediction_type: str = "v_prediction", beta_schedule: str = "squaredcos_cap_v2") -> FRGDPipeline:
    sched = make_train_scheduler(prediction_type=prediction_type, beta_schedule=beta_schedule)
    return FRGDPipeline(OracleDenoiser(_clean(), sched.alphas_cumprod, prediction_type), sched)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


OFF = GuidanceWeights(identity=0.0, content=0.0, cfg=0.0)
H1 = dataclasses.replace(OFF, resample=1)  # one harmonising pass per step


def expected_calls(pipe: FRGDPipeline, scheduler: str, steps: int, w: GuidanceWeights) -> int:
    """Model calls of a run: one per step, plus ``w.resample`` before every step but the last whose noise level
    ``sqrt(1 - abar)`` is at least ``RESAMPLE_SIGMA_MIN`` (counted here from the stepper's levels)."""
    st = make_stepper(scheduler, pipe.scheduler, steps)
    n = len(st.timesteps)
    extra = sum(
        w.resample
        for i in range(first_step(n, w.strength), n - 1)
        if (1 - st.alpha_bar(i)) ** 0.5 >= RESAMPLE_SIGMA_MIN
    )
    return n - first_step(n, w.strength) + extra


def _degraded() -> torch.Tensor:
    """The clean image's area downscale: content guidance's operator. Whole-face calls that test the sampler's exactness
    turn the final back-projection off (its operator is bicubic; it has a test of its own below)."""
    return F.interpolate((_clean() + 1) / 2, size=(S // 4, S // 4), mode="area")


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_oracle_lands_on_the_clean_image_at_every_step_count(scheduler):
    pipe = _pipe()
    clean01 = (_clean() + 1) / 2
    bad = {}
    for steps in STEP_COUNTS:
        out = pipe(
            _degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[steps], weights=OFF
        ).images
        err = float((out - clean01).abs().max())
        if err > 2e-5:
            bad[steps] = err
    assert not bad, f"{scheduler}: result differs from the clean image at step counts {bad}"


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("steps", [1, 6, 7, 11, 13, 20, 60, 1000])
def test_oracle_with_mask_exact_inside_and_outside(scheduler, steps):
    pipe = _pipe()
    clean01 = (_clean() + 1) / 2
    mask = torch.zeros(1, 1, S, S)
    mask[..., 3:11, 5:14] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(5))  # differs from the clean image
    pipe.model.calls.clear()
    out = pipe(_degraded(), steps=steps, scheduler=scheduler, seeds=[1, 2], num_samples=2, mask=mask, base=base,
               weights=OFF).images  # fmt: skip
    inside = mask.bool().expand_as(out)
    assert torch.equal(out[~inside], base.expand_as(out)[~inside])
    assert float((out - clean01).abs()[inside].max()) < 2e-5
    assert len(pipe.model.calls) == steps  # one model call per step
    pipe.model.calls.clear()
    out = pipe(_degraded(), steps=steps, scheduler=scheduler, seeds=[1, 2], num_samples=2, mask=mask, base=base,
               weights=H1).images  # fmt: skip
    assert torch.equal(out[~inside], base.expand_as(out)[~inside])
    assert float((out - clean01).abs()[inside].max()) < 2e-5
    assert len(pipe.model.calls) == expected_calls(pipe, scheduler, steps, H1)
    assert expected_calls(pipe, scheduler, steps, H1) > steps or steps == 1  # the harmonising passes ran


@pytest.mark.parametrize("scheduler", [n for n, s in SCHEDULERS.items() if s.supports_eta])
@pytest.mark.parametrize("steps", [1, 6, 13, 50])
def test_oracle_stochastic_eta(scheduler, steps):
    pipe = _pipe()
    out = pipe(
        _degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[3], eta=1.0, weights=OFF
    ).images
    assert float((out - (_clean() + 1) / 2).abs().max()) < 2e-5


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize(("prediction_type", "beta_schedule"), [("epsilon", "linear"), ("v_prediction", "linear")])
def test_oracle_other_parametrisations(scheduler, prediction_type, beta_schedule):
    pipe = _pipe(prediction_type, beta_schedule)
    for steps in (1, 7, 13, 20, 60):
        out = pipe(_degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[3], weights=OFF).images
        assert float((out - (_clean() + 1) / 2).abs().max()) < 1e-4, steps


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_oracle_with_consistent_content_guidance_stays_exact(scheduler):
    """Content guidance towards an input that *is* the clean image's downscale is a no-op on the oracle."""
    pipe = _pipe()
    w = GuidanceWeights(identity=0.0, content=1.0, cfg=0.0)
    for steps in (1, 7, 20):
        out = pipe(_degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[3], weights=w).images
        assert float((out - (_clean() + 1) / 2).abs().max()) < 5e-5, steps


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("strength", [0.05, 0.3, 0.5, 0.99])
def test_oracle_img2img_strength_is_exact_and_runs_the_last_steps(scheduler, strength):
    """Starting from the base noised to step ``first_step`` still lands on the clean image, with a mask too, and
    runs exactly the last ``max(1, round(strength * steps))`` steps."""
    pipe = _pipe()
    clean01 = (_clean() + 1) / 2
    mask = torch.zeros(1, 1, S, S)
    mask[..., 2:12, 4:15] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(7))
    for steps in (1, 6, 7, 13, 20, 50):
        w = GuidanceWeights(identity=0.0, content=0.0, cfg=0.0, strength=strength)
        pipe.model.calls.clear()
        out = pipe(_degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[4], weights=w).images
        assert float((out - clean01).abs().max()) < 2e-5, steps
        assert len(pipe.model.calls) == max(1, round(strength * steps)), steps
        pipe.model.calls.clear()
        out = pipe(
            _degraded(),
            back_projection=False,
            steps=steps,
            scheduler=scheduler,
            seeds=[4],
            weights=dataclasses.replace(w, resample=1),
        )
        assert float((out.images - clean01).abs().max()) < 2e-5, steps
        assert len(pipe.model.calls) == expected_calls(pipe, scheduler, steps, dataclasses.replace(w, resample=1))
        out = pipe(_degraded(), steps=steps, scheduler=scheduler, seeds=[4], mask=mask, base=base, weights=w).images
        inside = mask.bool().expand_as(out)
        assert torch.equal(out[~inside], base.expand_as(out)[~inside])
        assert float((out - clean01).abs()[inside].max()) < 2e-5, steps


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_oracle_stays_exact_with_more_harmonising_passes(scheduler):
    """Three harmonising passes per step (each a DDIM trial step and fresh forward noise back to the level) still land
    on the oracle's clean image, masked or not."""
    pipe = _pipe()
    clean01 = (_clean() + 1) / 2
    mask = torch.zeros(1, 1, S, S)
    mask[..., 2:12, 4:15] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(9))
    w = dataclasses.replace(OFF, resample=3)
    for steps in (1, 7, 15):
        out = pipe(_degraded(), back_projection=False, steps=steps, scheduler=scheduler, seeds=[6], weights=w).images
        assert float((out - clean01).abs().max()) < 2e-5, steps
        out = pipe(_degraded(), steps=steps, scheduler=scheduler, seeds=[6], mask=mask, base=base, weights=w).images
        inside = mask.bool().expand_as(out)
        assert torch.equal(out[~inside], base.expand_as(out)[~inside])
        assert float((out - clean01).abs()[inside].max()) < 2e-5, steps


def test_a_harmonising_pass_is_a_ddim_step_then_the_forward_process_back():
    """Analytic check of the pass on ``x_t = sqrt(a) x0 + sqrt(1 - a) e``: the exact ``x0`` steps to
    ``sqrt(a') x0 + sqrt(1 - a') e`` and :func:`renoise` returns a draw of ``q(x_t | x0)``: mean ``sqrt(a) x0``,
    variance ``1 - a`` (measured on 2 million seeded values)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 3, 256, 256, generator=g) * 2 - 1
    e = torch.randn(x0.shape, generator=g)
    a, a_next = 0.3, 0.6
    x_t = a**0.5 * x0 + (1 - a) ** 0.5 * e
    x_prev = ddim_update(x0, x_t, a, a_next)
    torch.testing.assert_close(x_prev, a_next**0.5 * x0 + (1 - a_next) ** 0.5 * e, rtol=0, atol=1e-5)
    back = renoise(x_prev, a, a_next, torch.randn(x0.shape, generator=g))
    resid = (back - a**0.5 * x0).double()
    assert abs(float(resid.mean())) < 3e-3
    assert abs(float(resid.var()) - (1 - a)) < 3e-3  # the std of this estimate is about 5e-4


def test_first_step_counts():
    assert [first_step(20, s) for s in (1.0, 0.5, 0.3, 0.01)] == [0, 10, 14, 19]
    assert first_step(1, 0.2) == 0
    with pytest.raises(ValueError):
        first_step(10, 0.0)


def test_registry_entries_are_complete():
    for name, spec in SCHEDULERS.items():
        assert spec.name == name and callable(spec.factory) and isinstance(spec.supports_eta, bool)
