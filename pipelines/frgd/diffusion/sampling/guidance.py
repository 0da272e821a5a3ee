"""Sampling guidance for FRGD: identity guidance, content guidance and the one-slider mapping.

The sampler (:class:`frgd.diffusion.sampling.pipeline.FRGDPipeline`) predicts the clean face ``x0_hat`` (``(N, 3, 128,
128)`` in ``[-1, 1]``) at every step and hands it to :func:`apply_guidance`, which calls each guidance callback
(guided-diffusion ``cond_fn`` style) and returns a corrected ``x0``. The sampler then re-derives the noise prediction
from the corrected ``x0`` and the current ``x_t`` (``eps' = (x_t - sqrt(a) x0') / sqrt(1 - a)``), which is exactly
guided-diffusion's score shift ``eps' = eps - sqrt(1 - a) * grad`` written in ``x0`` units, so it works with DDIM and
DPM-Solver++ alike.

* Identity guidance (:class:`IdentityGuidance`): ascend the cosine similarity between the identity encoder's
  embedding of ``x0_hat`` and the reference embedding. The gradient is normalised per sample to unit RMS and scaled by
  ``weight * sqrt(1 - alpha_bar_t)`` (strong while the face is still forming, fading to zero at the last steps so it
  cannot paint adversarial high-frequency patterns).
* Content guidance (:class:`ContentGuidance`): descend ``0.5 * || D(x0_hat) - y ||^2`` where ``y`` is the degraded input
  at its *own* resolution and ``D`` is an antialiased (area) downscale to that resolution. The step is scaled by the
  area ratio, so ``weight = 1`` is a full projection (``D(x0') = y`` for integer factors) and only the frequencies the
  input actually has are constrained: it never pulls the 128 px result towards a blurry upscale.

The ``weights`` of both callbacks and the classifier-free guidance scale all come from one slider ``s`` in ``[0, 1]``
through :func:`slider_to_weights` (documented in ``docs/frgd_sampling.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

IDENTITY_MAX = 0.3
"""Identity guidance weight at ``s = 1``: RMS of the per-step ``x0`` correction (``[-1, 1]`` units) at high noise."""
CONTENT_MAX = 1.0
"""Content guidance weight at ``s = 0``: a full projection onto the degraded input at its own scale."""
CONTENT_MIN = 0.1
"""Content guidance weight at ``s = 1``: small but non-zero, so the face keeps the input's pose, light and colours."""
CFG_MAX = 3.0
"""Classifier-free guidance scale on the identity embedding at ``s = 1`` (0 = null embedding only, 1 = conditional)."""

GRAD_EPS = 1e-12


@dataclass(frozen=True)
class GuidanceWeights:
    """Weights used by one sampling run.

    ``identity``: identity-guidance weight (0 = off); ``content``: content-guidance weight (0 = off, 1 = projection);
    ``cfg``: classifier-free guidance scale on the identity embedding
    (``out = out_null + cfg * (out_id - out_null)``; 0 = null embedding only, 1 = plain conditional).
    """

    identity: float
    content: float
    cfg: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def slider_to_weights(s: float, has_reference: bool = True) -> GuidanceWeights:
    """Map the one identity slider ``s`` in ``[0, 1]`` to the three guidance weights.

    * ``identity = IDENTITY_MAX * s`` (0 at ``s = 0``),
    * ``content = CONTENT_MAX - (CONTENT_MAX - CONTENT_MIN) * s`` (1.0 at ``s = 0`` down to 0.1 at ``s = 1``),
    * ``cfg = CFG_MAX * s`` (``s = 0``: the reference is ignored and the result equals the no-reference result for the
      same seed; ``s = 1/3``: plain conditional model; ``s = 1``: scale 3).

    Without a reference, identity guidance and CFG are off (the model gets its learned null embedding) and the slider
    only sets the content weight (how freely the model may depart from the input).
    """
    if not 0.0 <= float(s) <= 1.0:
        raise ValueError(f"identity strength must be in [0, 1], got {s}")
    s = float(s)
    content = round(CONTENT_MAX - (CONTENT_MAX - CONTENT_MIN) * s, 6)
    if not has_reference:
        return GuidanceWeights(identity=0.0, content=content, cfg=0.0)
    return GuidanceWeights(identity=round(IDENTITY_MAX * s, 6), content=content, cfg=round(CFG_MAX * s, 6))


def _rms_normalise(g: torch.Tensor) -> torch.Tensor:
    """Scale each sample of ``g`` ``(N, ...)`` to unit RMS (per sample, so samples never influence each other)."""
    rms = g.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(GRAD_EPS)
    return g / rms.view(-1, *([1] * (g.ndim - 1)))


@dataclass
class GuidanceContext:
    """What a guidance callback gets besides ``x0_hat``.

    ``alpha_bar``: ``(N, 1, 1, 1)`` cumulative alpha at the current timestep; ``step``: 0-based index of
    ``num_steps``.
    """

    alpha_bar: torch.Tensor
    step: int
    num_steps: int


GuidanceFn = Callable[[torch.Tensor, GuidanceContext], torch.Tensor]
"""``fn(x0_hat (N,3,H,W) in [-1,1] requiring grad, ctx) -> delta_x0 (N,3,H,W)``: the correction to add to ``x0_hat``."""


class IdentityGuidance:
    """Gradient ascent on ``cos(E(x0_hat), r)`` with the guidance identity encoder ``E`` (never the judge).

    ``encoder.embed(images (N,3,H,W) in [0,1]) -> (N,D)`` unit embeddings, differentiable; ``reference`` ``(D,)`` or
    ``(N,D)`` unit embedding(s). After each call ``last_similarity`` holds the ``(N,)`` similarities of ``x0_hat``.
    """

    def __init__(self, encoder, reference: torch.Tensor, weight: float) -> None:
        self.encoder = encoder
        self.reference = F.normalize(reference.float().reshape(-1, reference.shape[-1]), dim=1)
        self.weight = float(weight)
        self.last_similarity: torch.Tensor | None = None

    def objective(self, x0: torch.Tensor) -> torch.Tensor:
        """Per-sample cosine similarity ``(N,)`` of ``x0`` (``[-1, 1]``) to the reference."""
        emb = self.encoder.embed(((x0 + 1.0) * 0.5).clamp(0.0, 1.0))
        emb = F.normalize(emb.float(), dim=1)
        return (emb * self.reference.to(emb.device)).sum(dim=1)

    def __call__(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        if self.weight == 0.0:
            return torch.zeros_like(x0)
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            sim = self.objective(x)
            (grad,) = torch.autograd.grad(sim.sum(), x)
        self.last_similarity = sim.detach()
        scale = self.weight * (1.0 - ctx.alpha_bar).clamp_min(0.0).sqrt()
        return scale * _rms_normalise(grad)


def downscale_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased (area / box) downscale of ``x`` ``(N,C,H,W)`` to ``size`` ``(h, w)``; identity if equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="area")


class ContentGuidance:
    """Keep ``D(x0_hat)`` close to the degraded input ``target`` ``(N or 1, 3, h, w)`` in ``[-1, 1]`` at its own scale.

    The correction is ``-weight * (H*W)/(h*w) * grad_x0 0.5||D(x0) - y||^2``; with the area downscale and an integer
    factor this equals ``-weight * upsample_nearest(D(x0) - y)``, i.e. ``weight = 1`` makes ``D(x0') = y`` exactly.
    """

    def __init__(self, target: torch.Tensor, weight: float) -> None:
        self.target = target.float()
        self.weight = float(weight)
        self.last_error: torch.Tensor | None = None

    def __call__(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        if self.weight == 0.0:
            return torch.zeros_like(x0)
        size = tuple(self.target.shape[-2:])
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            diff = downscale_to(x, size) - self.target.to(x.device)
            loss = 0.5 * diff.pow(2).sum()
            (grad,) = torch.autograd.grad(loss, x)
        self.last_error = diff.detach().pow(2).flatten(1).mean(dim=1)
        gain = (x0.shape[-2] * x0.shape[-1]) / (size[0] * size[1])
        return -self.weight * gain * grad


def apply_guidance(x0: torch.Tensor, guides: Sequence[GuidanceFn], ctx: GuidanceContext) -> torch.Tensor:
    """Call each guidance callback on ``x0`` ``(N,3,H,W)`` in ``[-1,1]`` and return the corrected, clamped ``x0``.

    All callbacks see the same ``x0_hat`` (their corrections are summed, not chained).
    """
    if not guides:
        return x0
    delta = torch.zeros_like(x0)
    for g in guides:
        delta = delta + g(x0, ctx)
    return (x0 + delta).clamp(-1.0, 1.0)


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
        ident = IdentityGuidance(encoder, reference, weights.identity)
    content = None
    if weights.content > 0 and content_target is not None:
        content = ContentGuidance(content_target, weights.content)
    return ident, content


__all__ = [
    "CFG_MAX",
    "CONTENT_MAX",
    "CONTENT_MIN",
    "IDENTITY_MAX",
    "ContentGuidance",
    "GuidanceContext",
    "GuidanceFn",
    "GuidanceWeights",
    "IdentityGuidance",
    "apply_guidance",
    "build_guides",
    "downscale_to",
    "slider_to_weights",
]
