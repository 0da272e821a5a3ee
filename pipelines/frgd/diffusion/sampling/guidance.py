"""Sampling guidance for FRGD: identity guidance, content guidance and the one-slider mapping.

The sampler (:class:`frgd.diffusion.sampling.pipeline.FRGDPipeline`) predicts the clean face ``x0_hat`` (``(N, 3, S,
S)`` in ``[-1, 1]``) at every step, lets the scheduler step with it, and adds the sum of the guidance callbacks'
**displacements of the next state** ``x_{t-1}`` (:func:`guidance_delta`). Each guidance's strength is therefore defined
on the ``x_t`` update, whatever the scheduler (the scheduler never re-derives ``eps`` from a guided ``x0``, so nothing
cancels or amplifies it):

* Identity guidance (:class:`IdentityGuidance`): ascend ``cos(E(x0_hat), r)`` (guidance encoder ``E``, reference
  ``r``). The gradient is normalised per sample to unit RMS (a direction; its size carries no meaning, so a blurry early
  ``x0_hat`` cannot make a push bigger) and the step's push is ``weight * [G(sigma_t) - G(sigma_next)]``, where
  ``sigma = sqrt(1 - abar)`` and ``G`` (:func:`identity_schedule`) rises from 0 at ``sigma = IDENTITY_SIGMA_OFF`` to 1
  at ``sigma = 1`` as a half cosine: the pushes are weak at pure noise (the mean face), strongest mid-trajectory
  (``sigma ~ 0.6``) and **zero below ``IDENTITY_SIGMA_OFF`` and on the last step** (which lands on output pixels: the
  regime where a recogniser is fooled without the face changing). The pushes telescope, so ``weight`` is the total RMS
  displacement in ``[-1, 1]`` units over a whole trajectory, independent of the step count. The objective is the mean
  similarity over :data:`IDENTITY_VIEWS` of ``x0_hat`` (the face and its mirror image): a push must raise both, so it
  follows facial features rather than a pixel pattern that fools the encoder in one view. The gradient is taken with
  respect to ``x_t`` through the denoiser by default (:data:`IDENTITY_GRADIENT`: the model's Jacobian filters the
  encoder's gradient down to changes the model can draw as a face), or at ``x0_hat`` alone.
* Content guidance (:class:`ContentGuidance`): DDNM+-style noise-aware projection onto the degraded input ``y`` at its
  own resolution: ``x_{t-1} += sqrt(abar_next) * weight * lambda_t * A^+(y - A x0_hat)`` with ``A`` an antialiased
  (area) downscale and ``A^+`` its pseudo-inverse (nearest upsample for integer factors), and
  ``lambda_t = min(1, rho_next / content_noise)``, ``rho_next = sqrt((1 - abar_next) / abar_next)`` the noise-to-signal
  ratio of the next state. While the sampler's own noise exceeds the input's assumed noise ``content_noise`` the low
  frequencies are projected fully (weight 1); below it the projection fades and is 0 on the last step, so the result
  is faithful to the input's content without copying its noise or JPEG blocks.

The ``weights`` of both callbacks and the classifier-free guidance scale all come from one slider ``s`` in ``[0, 1]``
through :func:`slider_to_weights` (documented in ``docs/frgd_sampling.md``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ...degrade import resize_tensor
from .schedulers import IDENTITY_GRADIENT, IDENTITY_GRADIENTS, RESAMPLE, RESAMPLE_MAX, check_identity_gradient

logger = logging.getLogger(__name__)

IDENTITY_MAX = 0.0625
"""Identity guidance weight at ``s = 1``: total RMS displacement of ``x_t`` (``[-1, 1]`` units) over a trajectory.
The slider's top is where the judge's identity peaked on the tuning faces with the round-7 weights, at x8 and x4
alike (docs/frgd_sampling.md, "The slider's top (round-7 weights)"); twice the push, with half the content weight and
a longer trajectory (the top until then), read no more identity and cracked more faces."""
IDENTITY_SIGMA_OFF = 0.25
"""Identity guidance is off once ``sigma = sqrt(1 - abar_t)`` is below this (the last ~15 % of the trajectory)."""
IDENTITY_VIEWS: tuple[str, ...] = ("identity", "hflip")
"""Views of ``x0_hat`` whose mean similarity identity guidance ascends (:data:`VIEWS`). Aligned faces are left-right
symmetric in the template (eye centres at x = 48.2 and 79.7 of 128), so the mirror image is an aligned face of the same
person. Measured on the tuning faces (docs/frgd_sampling.md, "Identity views"): judge +0.017 on average at s = 0.5 and
s = 1 over ``("identity",)``, PSNR unchanged, twice the encoder work per guided step."""
VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),
}
"""The views identity guidance knows: name -> ``(N,3,H,W) -> (N,3,H,W)``."""
CONTENT_MAX = 1.0
"""Content guidance weight at ``s = 0``: a full (noise-aware) projection onto the degraded input at its own scale."""
CONTENT_MIN = 0.75
"""Content guidance weight at ``s = 1``: the face keeps the input's pose, light and colours."""
CONTENT_NOISE = 0.2
"""Assumed noise std of the degraded input at its own scale (``[-1, 1]`` units): the projection fades below it."""
CFG_MAX = 0.5
"""Classifier-free guidance scale on the identity embedding at ``s = 1`` (0 = null embedding only, 1 = conditional).
Up to round 7 the model ignored the embedding; with round 8's weights CFG 2 adds identity without identity guidance
but not at the top, where identity guidance sets it (docs/frgd_sampling.md, "Classifier-free guidance")."""

IDENTITY_FULL_PX = 16
"""Inputs of at most this many pixels (shorter side) get the full ``IDENTITY_MAX``; larger ones, which already carry
more of the identity, get ``IDENTITY_MAX * IDENTITY_FULL_PX / px`` (measured with the round-7 weights: 16 px inputs
peak near 0.0625, 32 px inputs near 0.03125), never less than ``IDENTITY_MIN_SHARE`` of it."""
IDENTITY_MIN_SHARE = 0.25
"""Floor of the input-size factor of the identity weight (an extrapolation beyond the measured 16 and 32 px)."""
RESAMPLE_SIGMA_MIN = IDENTITY_SIGMA_OFF
"""Steps below this noise level are not repeated (identity guidance is off there and the content projection fades)."""
STRENGTH_MIN = 0.3
"""Share of the trajectory sampled at ``s = 0`` (img2img from the noised base): the content end stays close to the
input (measured above bicubic in PSNR) and runs 30 % of the steps."""
STRENGTH_MAX = 0.65
"""Share of the trajectory sampled at ``s = 1`` from the bicubic upscale (no prior, ``--no-prior``), under a mask
and from a given base: half way from :data:`STRENGTH_MIN` to pure noise, like the prior's top below."""
STRENGTH_MAX_PRIOR = 0.5
"""Share of the trajectory sampled at ``s = 1`` when a whole face starts from the FRGD prior's estimate (its coarse
layout is already right: docs/frgd_sampling.md, "Strength with the prior"; the top itself, "The slider's top
(round-7 weights)")."""

GRAD_EPS = 1e-12


@dataclass(frozen=True)
class GuidanceWeights:
    """Weights used by one sampling run.

    ``identity``: identity-guidance weight (0 = off; total RMS push on ``x_t`` over the trajectory); ``content``:
    content-guidance weight (0 = off, 1 = full projection while the sampler's noise exceeds ``content_noise``);
    ``cfg``: classifier-free guidance scale on the identity embedding
    (``out = out_null + cfg * (out_id - out_null)``; 0 = null embedding only, 1 = plain conditional);
    ``content_noise``: assumed noise std of the input (``[-1, 1]`` units) below which the projection fades;
    ``strength``: share of the trajectory that is sampled (diffusers' img2img ``strength``): 1 starts from pure noise,
    ``0 < strength < 1`` starts from the base noised to the level of step ``(1 - strength) * steps``;
    ``resample``: harmonising passes before each step at ``sigma >= RESAMPLE_SIGMA_MIN`` (:data:`RESAMPLE`; 0 = none;
    a step's guidance pushes are shared equally by its passes, so the weights keep their meaning);
    ``identity_views``: the views of ``x0_hat`` whose mean similarity identity guidance ascends (:data:`VIEWS`);
    ``identity_gradient``: where the identity gradient is taken (:data:`IDENTITY_GRADIENTS`).
    """

    identity: float
    content: float
    cfg: float
    content_noise: float = CONTENT_NOISE
    strength: float = 1.0
    resample: int = RESAMPLE
    identity_views: tuple[str, ...] = IDENTITY_VIEWS
    identity_gradient: str = IDENTITY_GRADIENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity_views", check_views(self.identity_views))
        check_identity_gradient(self.identity_gradient)

    def as_dict(self) -> dict[str, float | list[str]]:
        """JSON-native values (``identity_views`` as a list), so a saved and reloaded record compares equal."""
        d = asdict(self)
        d["identity_views"] = list(self.identity_views)
        return d


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """``views`` as a tuple; :class:`ValueError` if it is empty or names a view :data:`VIEWS` does not know."""
    views = tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown:
        raise ValueError(f"identity views must be a non-empty subset of {', '.join(VIEWS)}, got {views}")
    return views


def identity_size_factor(input_px: int | None) -> float:
    """Share of ``IDENTITY_MAX`` allowed for an input whose shorter side is ``input_px`` (``None``: 1)."""
    if input_px is None or input_px <= IDENTITY_FULL_PX:
        return 1.0
    return max(IDENTITY_FULL_PX / float(input_px), IDENTITY_MIN_SHARE)


def slider_to_weights(
    s: float, has_reference: bool = True, input_px: int | None = None, from_prior: bool = False
) -> GuidanceWeights:
    """Map the one identity slider ``s`` in ``[0, 1]`` to the guidance weights (linear in ``s``).

    * ``identity = IDENTITY_MAX * identity_size_factor(input_px) * s`` (0 at ``s = 0``; at ``s = 1`` 0.0625 for an
      input of 16 px or less, 0.03125 for 32 px: a sharper input already carries the identity and a strong push
      over-optimises the guidance encoder),
    * ``content = CONTENT_MAX - (CONTENT_MAX - CONTENT_MIN) * s`` (1.0 at ``s = 0`` down to 0.75 at ``s = 1``),
    * ``cfg = CFG_MAX * s`` (``s = 0``: the reference is ignored and the result equals the no-reference result for the
      same seed; 0.5 at ``s = 1``),
    * ``strength = STRENGTH_MIN + (top - STRENGTH_MIN) * s`` (``s = 0``: the last 30 % of the trajectory, from the
      noised base); ``top`` is :data:`STRENGTH_MAX` (0.65), or :data:`STRENGTH_MAX_PRIOR` (0.5) when ``from_prior``
      (a whole face whose base is the FRGD prior's estimate, whose coarse layout is already right).

    Without a reference, identity guidance and CFG are off (the model gets its learned null embedding) and the slider
    sets the content weight and the strength (how freely the model may depart from the input). The constants were
    chosen on validation faces outside ``frgd eval faces``' set (docs/frgd_sampling.md, "Tuning" and "The slider's
    top (round-7 weights)").
    """
    if not 0.0 <= float(s) <= 1.0:
        raise ValueError(f"identity strength must be in [0, 1], got {s}")
    s = float(s)
    content = round(CONTENT_MAX - (CONTENT_MAX - CONTENT_MIN) * s, 6)
    top = STRENGTH_MAX_PRIOR if from_prior else STRENGTH_MAX
    strength = round(STRENGTH_MIN + (top - STRENGTH_MIN) * s, 6)
    if not has_reference:
        return GuidanceWeights(identity=0.0, content=content, cfg=0.0, strength=strength)
    return GuidanceWeights(
        identity=round(IDENTITY_MAX * identity_size_factor(input_px) * s, 6),
        content=content,
        cfg=round(CFG_MAX * s, 6),
        strength=strength,
    )


def identity_schedule(sigma: float, sigma_off: float = IDENTITY_SIGMA_OFF) -> float:
    """``G(sigma)``: cumulative share of the identity push above noise level ``sigma`` (0 below ``sigma_off``, 1 at 1).

    ``G = (1 - cos(pi u)) / 2`` with ``u = clip((sigma - sigma_off) / (1 - sigma_off), 0, 1)``; its derivative (the
    push density) is 0 at both ends and largest at ``u = 1/2``.
    """
    u = min(max((float(sigma) - sigma_off) / (1.0 - sigma_off), 0.0), 1.0)
    return 0.5 * (1.0 - math.cos(math.pi * u))


def _rms_normalise(g: torch.Tensor) -> torch.Tensor:
    """Scale each sample of ``g`` ``(N, ...)`` to unit RMS (per sample, so samples never influence each other)."""
    rms = g.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(GRAD_EPS)
    return g / rms.view(-1, *([1] * (g.ndim - 1)))


@dataclass
class GuidanceContext:
    """What a guidance callback gets besides ``x0_hat``.

    ``alpha_bar``: noise level ``abar`` of the current state ``x_t``; ``alpha_bar_next``: that of the state the step
    produces (1.0 after the last step); ``step``: 0-based index of ``num_steps``.
    """

    alpha_bar: float
    alpha_bar_next: float
    step: int
    num_steps: int

    @property
    def is_last(self) -> bool:
        return self.step + 1 >= self.num_steps or self.alpha_bar_next >= 1.0


GuidanceFn = Callable[[torch.Tensor, GuidanceContext], torch.Tensor]
"""``fn(x0_hat (N,3,H,W) in [-1,1], ctx) -> delta (N,3,H,W)``: the displacement to add to the next state ``x_{t-1}``."""


class IdentityGuidance:
    """Push ``x_{t-1}`` along the gradient of ``cos(E(x0_hat), r)`` with the guidance encoder ``E`` (never the judge).

    ``encoder.embed(images (N,3,H,W) in [0,1]) -> (N,D)`` unit embeddings, differentiable; ``reference`` ``(D,)`` or
    ``(N,D)`` unit embedding(s). The push of one step is ``weight * share(ctx) * unit_rms(grad)`` (:meth:`share`),
    with ``grad`` taken with respect to ``x0_hat`` (``gradient="x0"``: :meth:`__call__`) or to ``x_t`` through the
    denoiser (``"denoiser"``: :meth:`push_through`, which the sampler calls with its differentiable ``x0_hat`` when
    :meth:`through_denoiser` says so).
    After each evaluated step ``last_similarity`` holds the ``(N,)`` similarities of ``x0_hat``; ``evaluations``
    counts encoder forward+backward passes (steps with a zero share are skipped).
    """

    def __init__(
        self,
        encoder,
        reference: torch.Tensor,
        weight: float,
        sigma_off: float = IDENTITY_SIGMA_OFF,
        views: Sequence[str] = IDENTITY_VIEWS,
        gradient: str = IDENTITY_GRADIENT,
    ) -> None:
        self.encoder = encoder
        self.reference = F.normalize(reference.float().reshape(-1, reference.shape[-1]), dim=1)
        self.weight = float(weight)
        self.sigma_off = float(sigma_off)
        self.views = check_views(views)
        self.gradient = check_identity_gradient(gradient)
        self.last_similarity: torch.Tensor | None = None
        self.evaluations = 0

    def objective(self, x0: torch.Tensor) -> torch.Tensor:
        """Per-sample cosine similarity ``(N,)`` of ``x0`` (``[-1, 1]``) to the reference, averaged over the views."""
        n, k = x0.shape[0], len(self.views)
        x = torch.cat([VIEWS[v](x0) for v in self.views])
        emb = F.normalize(self.encoder.embed(((x + 1.0) * 0.5).clamp(0.0, 1.0)).float(), dim=1)
        ref = self.reference.to(emb.device)
        return (emb.view(k, n, -1) * ref).sum(dim=2).mean(dim=0)

    def share(self, ctx: GuidanceContext) -> float:
        """Share of the total push in this step: ``G(sigma_t) - G(sigma_next)``; 0 on the last step."""
        if ctx.is_last:
            return 0.0
        sig = math.sqrt(max(1.0 - ctx.alpha_bar, 0.0))
        sig_next = math.sqrt(max(1.0 - ctx.alpha_bar_next, 0.0))
        return max(identity_schedule(sig, self.sigma_off) - identity_schedule(sig_next, self.sigma_off), 0.0)

    def through_denoiser(self, ctx: GuidanceContext) -> bool:
        """True when this step's push must come from :meth:`push_through` (denoiser gradient, non-zero push)."""
        return self.gradient == "denoiser" and self.weight != 0.0 and self.share(ctx) > 0.0

    def _push(self, wrt: torch.Tensor, sim: torch.Tensor, share: float) -> torch.Tensor:
        (grad,) = torch.autograd.grad(sim.sum(), wrt)
        self.evaluations += 1
        self.last_similarity = sim.detach()
        return (self.weight * share) * _rms_normalise(grad)

    def __call__(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        """The push from the gradient with respect to ``x0_hat`` ``(N,3,H,W)``; zero on a step that
        :meth:`push_through` serves or where the share is 0."""
        share = self.share(ctx)
        if self.weight == 0.0 or share == 0.0 or self.through_denoiser(ctx):
            return torch.zeros_like(x0)
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            return self._push(x, self.objective(x), share)

    def push_through(self, x_t: torch.Tensor, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        """The push ``(N,3,H,W)`` from the similarity's gradient with respect to ``x_t``: ``x_t`` a leaf that requires
        grad, ``x0`` the denoiser's ``x0_hat`` computed from it with autograd (backpropagated through here)."""
        with torch.enable_grad():
            return self._push(x_t, self.objective(x0), self.share(ctx))


def downscale_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased (area / box) downscale of ``x`` ``(N,C,H,W)`` to ``size`` ``(h, w)``; identity if equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="area")


BACK_PROJECT_KERNEL = "bicubic"
"""The downscale (:func:`frgd.degrade.resize_tensor` kernel, the degradations' own) by which :func:`back_project`
compares a sample with its target; :func:`frgd.diffusion.content.to_content_scale` brings the prior's estimate there by
the same one."""


def back_project(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One back-projection of a finished sample onto its content target (the input, or for a degraded input its mix
    with the prior's estimate, :mod:`frgd.diffusion.content`): ``x + up(target - down(x))``, clamped to ``[0, 1]``.

    ``x`` ``(N,3,H,W)`` and ``target`` ``(N or 1,3,h,w)`` in ``[0, 1]``; ``down`` is the antialiased bicubic resize
    to ``(h, w)`` (:func:`frgd.degrade.resize_tensor`, the degradations' own downscale), ``up`` the bicubic resize
    back. The correction is smooth (the input's band only), so the sample keeps everything above the input's
    resolution and its downscale comes (close) to the input: the noise-aware content guidance fades out on the last
    steps, where the model may drift from what the input does show (docs/frgd_sampling.md, "Back-projection onto the
    input"). ``target`` of the same size as ``x`` returns ``target`` itself.
    """
    hw = tuple(target.shape[-2:])
    residual = target.to(x) - resize_tensor(x, hw, BACK_PROJECT_KERNEL)
    if hw != tuple(x.shape[-2:]):
        residual = F.interpolate(residual, size=x.shape[-2:], mode="bicubic", align_corners=False)
    return (x + residual).clamp(0, 1)


def content_lambda(alpha_bar_next: float, noise: float) -> float:
    """Noise-aware projection strength ``min(1, rho_next / noise)``, ``rho = sqrt((1 - abar) / abar)``; 0 if clean."""
    if alpha_bar_next >= 1.0:
        return 0.0
    rho = math.sqrt((1.0 - alpha_bar_next) / max(alpha_bar_next, 1e-12))
    return 1.0 if noise <= 0 else min(1.0, rho / noise)


class ContentGuidance:
    """Noise-aware projection of ``x0_hat`` onto the degraded input ``target`` ``(N or 1, 3, h, w)`` in ``[-1, 1]``.

    ``A^+(y - A x0)`` is computed as ``-(H*W)/(h*w) * grad_x0 0.5||A x0 - y||^2``, which for the area downscale and an
    integer factor equals ``upsample_nearest(y - A x0)``: ``A(x0 + A^+(y - A x0)) = y`` exactly. The displacement of
    ``x_{t-1}`` is ``sqrt(abar_next) * weight * content_lambda(abar_next, noise) * A^+(y - A x0)`` (DDNM+ with the
    step's own ``eps`` kept, so ``x_{t-1}``'s implied clean image is projected).
    """

    def __init__(self, target: torch.Tensor, weight: float, noise: float = CONTENT_NOISE) -> None:
        self.target = target.float()
        self.weight = float(weight)
        self.noise = float(noise)
        self.last_error: torch.Tensor | None = None

    def correction(self, x0: torch.Tensor) -> torch.Tensor:
        """``A^+(y - A x0)`` ``(N,3,H,W)``; also sets ``last_error`` (per-sample MSE at the input scale)."""
        size = tuple(self.target.shape[-2:])
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            diff = downscale_to(x, size) - self.target.to(x.device)
            loss = 0.5 * diff.pow(2).sum()
            (grad,) = torch.autograd.grad(loss, x)
        self.last_error = diff.detach().pow(2).flatten(1).mean(dim=1)
        gain = (x0.shape[-2] * x0.shape[-1]) / (size[0] * size[1])
        return -gain * grad

    def __call__(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        lam = content_lambda(ctx.alpha_bar_next, self.noise)
        if self.weight == 0.0 or lam == 0.0:
            return torch.zeros_like(x0)
        return (math.sqrt(ctx.alpha_bar_next) * self.weight * lam) * self.correction(x0)


def guidance_delta(x0: torch.Tensor, guides: Sequence[GuidanceFn], ctx: GuidanceContext) -> torch.Tensor | None:
    """Sum of the callbacks' displacements of ``x_{t-1}`` for ``x0_hat`` ``(N,3,H,W)``; ``None`` without guides.

    All callbacks see the same ``x0_hat`` (their displacements are summed, not chained).
    """
    if not guides:
        return None
    delta = torch.zeros_like(x0)
    for g in guides:
        delta = delta + g(x0, ctx)
    return delta


def build_guides(
    weights: GuidanceWeights,
    *,
    encoder=None,
    reference: torch.Tensor | None = None,
    content_target: torch.Tensor | None = None,
) -> tuple[IdentityGuidance | None, ContentGuidance | None]:
    """The identity and content callbacks for ``weights`` (``None`` where the weight is 0 or the input is missing)."""
    ident = None
    if weights.identity > 0 and reference is not None:
        if encoder is None:
            raise ValueError("identity guidance needs an identity encoder")
        ident = IdentityGuidance(
            encoder, reference, weights.identity, views=weights.identity_views, gradient=weights.identity_gradient
        )
    content = None
    if weights.content > 0 and content_target is not None:
        content = ContentGuidance(content_target, weights.content, weights.content_noise)
    return ident, content


__all__ = [
    "CFG_MAX",
    "CONTENT_MAX",
    "CONTENT_MIN",
    "CONTENT_NOISE",
    "IDENTITY_MAX",
    "IDENTITY_FULL_PX",
    "IDENTITY_GRADIENT",
    "IDENTITY_GRADIENTS",
    "IDENTITY_MIN_SHARE",
    "IDENTITY_SIGMA_OFF",
    "IDENTITY_VIEWS",
    "RESAMPLE",
    "RESAMPLE_MAX",
    "RESAMPLE_SIGMA_MIN",
    "STRENGTH_MAX",
    "STRENGTH_MAX_PRIOR",
    "STRENGTH_MIN",
    "VIEWS",
    "BACK_PROJECT_KERNEL",
    "ContentGuidance",
    "GuidanceContext",
    "back_project",
    "GuidanceFn",
    "GuidanceWeights",
    "IdentityGuidance",
    "build_guides",
    "check_views",
    "content_lambda",
    "downscale_to",
    "guidance_delta",
    "identity_schedule",
    "identity_size_factor",
    "slider_to_weights",
]
