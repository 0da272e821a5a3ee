"""Sampling schedulers: one registry entry per scheduler; each stepper owns its timesteps *and* its update.

A stepper is built per sampling call from the model's training scheduler (``DDPMScheduler``: betas, 1000 steps) and
a step count. The sampler asks it, for step ``i`` of ``len(stepper.timesteps)``:

* ``timesteps[i]``: the integer timestep the model is called at;
* ``alpha_bar(i)``: the noise level ``abar`` of ``x_t`` at that step (to turn the model output into ``x0_hat``);
* ``alpha_bar_next(i)``: the noise level of the state the step produces; ``1.0`` after the last step, which therefore
  is a fully clean sample (also the level the sampler re-injects the known content at, with a mask);
* ``step(x0, x, i, noise)``: ``x_t (N,3,H,W)`` + the (guided) clean prediction ``x0 (N,3,H,W)`` -> the next state.

Adding a scheduler = one :class:`SchedulerSpec` in :data:`SCHEDULERS` (the pipeline, the CLI choices and the editor
read the registry; importing this module loads neither torch nor diffusers). Exactness (an oracle denoiser lands on
its clean image at every step count 1..1000, masks included) is tested for every entry in
``tests/test_frgd_sampling_exact.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # torch/diffusers stay lazy: the CLI parser reads this registry
    import torch
    from diffusers import DDPMScheduler

DEFAULT_SCHEDULER = "dpmpp"
"""The product default: DPM-Solver++ 2M (few steps)."""
DEFAULT_IDENTITY_STRENGTH = 0.5
"""The slider's default (``frgd enhance --identity``, the pipeline, ``FRGDRestorer``, the editor): the middle of
:func:`.guidance.slider_to_weights`' range."""
DEFAULT_STEPS = 15
"""Default sampling steps for :data:`DEFAULT_SCHEDULER` (the issue's 15-20; 15 keeps one guided sample of the
round-sized model within the 20 s goal on 2 CPU cores, see ``docs/results/bench_enhance_cpu.json``)."""

RESAMPLE = 0
"""Default harmonising passes per step (time travel; off). With ``n > 0``, before a step whose noise level
``sigma`` is at least :data:`.guidance.RESAMPLE_SIGMA_MIN` the sampler makes ``n`` trial steps, each a guided DDIM
step to the next level and back to this one with fresh noise (``q(x_t | x_{t-1})``); the step's guidance pushes are
shared equally by its passes. The model re-reads what the pushes did before the trajectory moves on: with the round-3
weights at x8 one pass removed most of the cracks and smears across noses and mouths at the identity end, at the price
of one more model call per step and a lower judge score at mid-slider (docs/frgd_sampling.md, "Harmonising passes"),
so it is opt-in (``frgd enhance --harmonise 1``, the editor's Harmonise box)."""
RESAMPLE_MAX = 4
"""Most harmonising passes accepted per step."""
IDENTITY_GRADIENTS: tuple[str, ...] = ("x0", "denoiser")
"""Where identity guidance takes its gradient: ``"x0"``, of the similarity with respect to ``x0_hat`` (the encoder's
gradient alone); ``"denoiser"``, with respect to ``x_t`` through the denoiser (``J^T grad``, ``J = d x0_hat / d x_t``:
the model's posterior covariance preconditions the push toward changes it can render as a face; one backward pass
through the model on each guided step)."""
IDENTITY_GRADIENT = "denoiser"
"""The default of :data:`IDENTITY_GRADIENTS` (:mod:`.guidance` uses both; they live here with the other light
sampling constants, so the CLI's parser reads them without loading torch). Measured on the tuning faces
(docs/frgd_sampling.md, "Gradient through the denoiser"): judge +0.010 at s = 0.5 and +0.011 at s = 1 on average over
three seeds, fewer cracked faces at s = 1, PSNR 0.03 / 0.10 dB lower; on the CPU 1.6-1.7x the time and 2.4x the
memory of ``"x0"``."""


def check_identity_gradient(gradient: str) -> str:
    """``gradient`` if it is one of :data:`IDENTITY_GRADIENTS`; :class:`ValueError` otherwise."""
    if gradient not in IDENTITY_GRADIENTS:
        raise ValueError(f"identity_gradient must be one of {', '.join(IDENTITY_GRADIENTS)}, got {gradient!r}")
    return gradient


IDENTITY_GRADIENT_FAST = "x0"
"""The cheaper of :data:`IDENTITY_GRADIENTS` (``frgd enhance --identity-gradient x0``, the editor's "Fast identity
guidance"): no backward pass through the model, for users whose CPU makes the default slow."""
INPUT_QUALITIES: dict[str, float | None] = {"auto": None, "clean": 0.0, "degraded": 1.0}
"""The editor's "Input" choice -> the sampler's ``prior_share`` (:mod:`frgd.diffusion.content`): ``auto`` estimated per
face, ``clean`` holds a face (or its masked region) to the input's pixels, ``degraded`` to the prior's cleaned
estimate."""
INPUT_QUALITY = "auto"
"""The default of :data:`INPUT_QUALITIES`."""
CANDIDATES_MAX = 8
"""Most candidates per sample (``FRGDPipeline.__call__``'s ``candidates``; each costs one more sample). Here with the
other light sampling constants, so the editor's settings read it without loading torch."""


class Stepper(Protocol):
    """One sampling run's schedule and update (see the module docstring)."""

    timesteps: list[int]

    def alpha_bar(self, i: int) -> float: ...

    def alpha_bar_next(self, i: int) -> float: ...

    def step(self, x0: torch.Tensor, x: torch.Tensor, i: int, noise: torch.Tensor | None = None) -> torch.Tensor: ...


def trailing_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """diffusers' ``"trailing"`` spacing: ``round(arange(T, 0, -T/steps)) - 1``; starts at ``T - 1`` (pure noise)."""
    ts = np.round(np.arange(num_train_timesteps, 0, -num_train_timesteps / steps)).astype(np.int64) - 1
    return [int(t) for t in ts]


class DDIMStepper:
    """DDIM (Song et al. 2021) with trailing timesteps; the step after ``timesteps[-1]`` goes to ``abar = 1``.

    ``x_prev = sqrt(a') x0 + sqrt(1 - a' - s^2) eps + s z`` with ``eps = (x - sqrt(a) x0) / sqrt(1 - a)`` and
    ``s = eta * sqrt((1 - a') / (1 - a)) * sqrt(1 - a / a')``; ``eta = 0`` is deterministic.
    """

    def __init__(self, train_scheduler: DDPMScheduler, steps: int, eta: float = 0.0) -> None:
        self.ac = train_scheduler.alphas_cumprod.double()
        self.timesteps = trailing_timesteps(int(train_scheduler.config.num_train_timesteps), steps)
        self.eta = float(eta)

    def alpha_bar(self, i: int) -> float:
        return float(self.ac[self.timesteps[i]])

    def alpha_bar_next(self, i: int) -> float:
        return 1.0 if i + 1 >= len(self.timesteps) else float(self.ac[self.timesteps[i + 1]])

    def step(self, x0: torch.Tensor, x: torch.Tensor, i: int, noise: torch.Tensor | None = None) -> torch.Tensor:
        a, ap = self.alpha_bar(i), self.alpha_bar_next(i)
        if ap >= 1.0:
            return x0.clone()  # the last step: the clean prediction itself
        sigma = self.eta * ((1 - ap) / (1 - a)) ** 0.5 * (1 - a / ap) ** 0.5 if self.eta > 0 else 0.0
        if sigma > 0 and noise is None:
            raise ValueError("DDIM with eta > 0 needs step noise")
        return ddim_update(x0, x, a, ap, sigma, noise)


def ddim_update(
    x0: torch.Tensor,
    x: torch.Tensor,
    a: float,
    a_next: float,
    sigma: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One DDIM update of ``x`` ``(N,3,H,W)`` at level ``abar = a`` with clean prediction ``x0`` to level ``a_next``:
    ``sqrt(a_next) x0 + sqrt(1 - a_next - sigma^2) eps + sigma z``, ``eps = (x - sqrt(a) x0) / sqrt(1 - a)``."""
    eps = (x - a**0.5 * x0) / (1.0 - a) ** 0.5
    out = a_next**0.5 * x0 + max(1.0 - a_next - sigma**2, 0.0) ** 0.5 * eps
    return out + sigma * noise if sigma > 0 and noise is not None else out


def renoise(x_next: torch.Tensor, a: float, a_next: float, noise: torch.Tensor) -> torch.Tensor:
    """Back from level ``a_next`` to the noisier level ``a`` (``a < a_next``): a draw of the forward process
    ``q(x_t | x_{t-1}) = N(sqrt(a / a_next) x_{t-1}, (1 - a / a_next) I)`` with ``noise`` ``(N,3,H,W)``."""
    r = a / a_next
    return r**0.5 * x_next + (1.0 - r) ** 0.5 * noise


class DPMSolverStepper:
    """diffusers' DPM-Solver++ 2M (``final_sigmas_type="zero"``: the last step lands on a clean sample).

    The diffusers scheduler owns timesteps, sigmas and the multistep update; it is built with
    ``prediction_type="sample"`` so it takes the sampler's (guided) ``x0`` directly.
    """

    def __init__(self, train_scheduler: DDPMScheduler, steps: int, eta: float = 0.0) -> None:
        from diffusers import DPMSolverMultistepScheduler

        if eta:
            raise ValueError("DPM-Solver++ is deterministic (eta must be 0)")
        cfg = dict(train_scheduler.config)
        self.sched = DPMSolverMultistepScheduler.from_config(
            cfg,
            algorithm_type="dpmsolver++",
            solver_order=2,
            timestep_spacing="trailing",
            final_sigmas_type="zero",
            prediction_type="sample",
            thresholding=False,
        )
        self.sched.set_timesteps(steps)
        self.timesteps = [int(t) for t in self.sched.timesteps]
        self.sigmas = [float(s) for s in self.sched.sigmas]

    def _abar(self, sigma: float) -> float:
        return 1.0 / (1.0 + sigma * sigma)  # VP: alpha_t = 1/sqrt(1+sigma^2), sigma_t = sigma * alpha_t

    def alpha_bar(self, i: int) -> float:
        return self._abar(self.sigmas[i])

    def alpha_bar_next(self, i: int) -> float:
        return self._abar(self.sigmas[i + 1])

    def step(self, x0: torch.Tensor, x: torch.Tensor, i: int, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.sched.step(x0, self.timesteps[i], x, return_dict=False)[0]


@dataclass(frozen=True)
class SchedulerSpec:
    """A registry entry: ``factory(train_scheduler, steps, eta) -> Stepper``; ``supports_eta``: stochastic steps."""

    name: str
    factory: Callable[[DDPMScheduler, int, float], Stepper]
    supports_eta: bool
    help: str


SCHEDULERS: dict[str, SchedulerSpec] = {
    s.name: s
    for s in (
        SchedulerSpec("dpmpp", DPMSolverStepper, False, "DPM-Solver++ 2M, deterministic, 15-20 steps"),
        SchedulerSpec("ddim", DDIMStepper, True, "DDIM, eta 0 (deterministic) to 1, about 50 steps"),
    )
}
SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)


def first_step(num_steps: int, strength: float) -> int:
    """Index of the first step sampled at ``strength`` in ``(0, 1]`` (img2img): the last ``max(1, round(strength *
    num_steps))`` of ``num_steps`` steps run, so ``strength = 1`` is the whole trajectory and any strength runs at
    least the last step (which lands on a clean image)."""
    if not 0.0 < float(strength) <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    return num_steps - max(1, min(num_steps, round(float(strength) * num_steps)))


def make_stepper(name: str, train_scheduler: DDPMScheduler, steps: int, eta: float = 0.0) -> Stepper:
    """The stepper of registry entry ``name`` for ``steps`` steps (``KeyError`` -> check ``SCHEDULER_NAMES``)."""
    return SCHEDULERS[name].factory(train_scheduler, int(steps), float(eta))


__all__ = [
    "CANDIDATES_MAX",
    "DEFAULT_IDENTITY_STRENGTH",
    "DEFAULT_SCHEDULER",
    "DEFAULT_STEPS",
    "RESAMPLE",
    "RESAMPLE_MAX",
    "SCHEDULERS",
    "SCHEDULER_NAMES",
    "DDIMStepper",
    "DPMSolverStepper",
    "SchedulerSpec",
    "Stepper",
    "ddim_update",
    "renoise",
    "first_step",
    "make_stepper",
    "trailing_timesteps",
]
