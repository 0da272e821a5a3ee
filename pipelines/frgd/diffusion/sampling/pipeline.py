"""FRGD sampler: ``FRGDPipeline`` turns a low-quality aligned face into ``N`` restored 128x128 faces.

``__call__`` in numbered steps (like diffusers pipelines):

1. check the inputs; seeds; encode the references (mean unit embedding, or one per sample);
2. the slider -> :class:`.guidance.GuidanceWeights`; the conditioning (:func:`frgd.diffusion.model.build_cond`), the
   content target (the input at the content scale; for a whole face from the prior, blended with the prior's estimate
   by the prior's share, :mod:`frgd.diffusion.content`) and the guidance callbacks (identity + content);
3. the scheduler's stepper from the registry (:mod:`.schedulers`: it owns the timesteps *and* the update, and its last
   step lands on a clean sample); the initial noise (with a mask: the known region noised to the first level);
4. per step ``i``: (a) with ``fusion="noisy"`` the known-content channels ``cond[:, 4:7]`` are this step's ``x_t``
   outside the mask (``q(x_t | base)``, exactly training's noisy fusion); (b) the model predicts ``v``/``eps`` with
   classifier-free guidance on the identity (one batched forward of ``2N`` when ``0 < cfg != 1``); (c) ``x0_hat``
   (clamped to ``[-1, 1]``); (d) the stepper steps with ``x0_hat``; (e) the guidance displacements of the next state
   are added (inside the mask; with identity guidance's ``"denoiser"`` gradient, (b), (c) and the identity push are
   one differentiable model call and one backward pass); (f) with a mask the known region is re-injected at the
   stepper's own next noise level;
5. a whole face (no mask) is back-projected onto the content target (:func:`.guidance.back_project`: the sample's
   downscale is brought to the target, its finer detail kept); with a mask, the composite
   ``M' * x0 + (1 - M') * base`` with the hard (or inward-feathered) mask, so outside the mask the output *equals* the
   base; identity scores for the meter.

With ``candidates = K > 1`` (:meth:`FRGDPipeline._best_of`) every requested sample is sampled ``K`` times (its seed and
``K - 1`` seeds derived from it, :func:`candidate_seeds`) in one batch, and the candidate whose guidance-encoder
similarity to the reference is highest is kept (reranking by the guidance encoder; never the judge or the meter's
independent encoder, so the meter stays independent).

Seeds are per sample: each sample owns a CPU ``torch.Generator`` seeded with its seed that draws its initial noise,
its fusion noise and (DDIM ``eta > 0``) its step noise, so a seed gives the same face whatever the batch holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...devices import resolve_device
from ...errors import InputError
from ...faces.align import FACE_SIZE
from ...identity.meter import MeterReading, choose_meter_backend, load_calibrations, read_meter
from ...jobs import CancelToken, ProgressFn, check_cancel, report
from ..content import blend_target, check_share, content_hw, estimate_share, to_content_scale
from ..damage import damage_at, damage_target, fill_damage
from ..model import build_cond
from ..prior import PRIOR_WEIGHTS, apply_prior
from .guidance import (
    RESAMPLE_MAX,
    RESAMPLE_SIGMA_MIN,
    ContentGuidance,
    GuidanceContext,
    GuidanceWeights,
    IdentityGuidance,
    back_project,
    build_guides,
    downscale_to,
    guidance_delta,
    slider_to_weights,
)
from .schedulers import (
    CANDIDATES_MAX,
    DEFAULT_IDENTITY_STRENGTH,
    DEFAULT_SCHEDULER,
    DEFAULT_STEPS,
    SCHEDULER_NAMES,
    SCHEDULERS,
    check_identity_gradient,
    ddim_update,
    first_step,
    make_stepper,
    renoise,
)

logger = logging.getLogger(__name__)

BACK_PROJECTION = True
"""Whole faces are back-projected onto the input by default (docs/frgd_sampling.md, "Back-projection onto the input":
with the round-7 weights at the default slider, clean inputs gain from +0.1 dB at x8 to +5.5 dB and +0.026 judge at
x1.5; blurred, noisy, JPEG inputs change within the noise)."""
FUSION_MODES = ("clean", "noisy")
"""Known-content channels of ``cond`` with a mask: the clean base, or each step's ``x_t`` outside the mask."""
MAX_SEED = 2**63 - 1


@dataclass
class FRGDOutput:
    """Result of one :class:`FRGDPipeline` call.

    ``images``: ``(N, 3, 128, 128)`` float32 in ``[0, 1]`` (CPU); ``seeds``: the ``N`` seeds (sample ``i`` used
    ``seeds[i]``); ``identity_scores``: ``(N,)`` the identity meter's cosine similarity of each result to the
    reference (``identity_meter.backend``'s embeddings), or ``None`` without a reference; ``weights``: the guidance
    weights used; ``timings``: seconds (``references``, ``sampling``, ``model``, ``guidance``, ``total``,
    ``per_sample``); ``params``: the sampling parameters (for provenance, including ``identity_meter``);
    ``identity_meter``: verdicts ("same person: likely / unsure / unlikely"), the encoder and whether it is independent
    of the guidance (:class:`frgd.identity.meter.MeterReading`), or ``None`` without a reference;
    ``reference_embedding``: the guidance encoder's unit reference embedding the samples were guided towards, ``(D,)``
    (or ``(N, D)`` with ``reference_per_sample``), or ``None`` without a reference.
    """

    images: torch.Tensor
    seeds: list[int]
    identity_scores: torch.Tensor | None
    weights: GuidanceWeights
    timings: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    identity_meter: MeterReading | None = None
    reference_embedding: torch.Tensor | None = None


def normalize_seeds(seeds: Sequence[int] | int | None, num_samples: int) -> list[int]:
    """``None`` -> fresh random seeds; ``int k`` -> ``[k, k+1, ..., k+N-1]``; a list -> itself (length must be N)."""
    if seeds is None:
        return [secrets.randbelow(2**31) for _ in range(num_samples)]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return [int(seeds) + i for i in range(num_samples)]
    out = [int(s) for s in seeds]
    if len(out) != num_samples:
        raise InputError(f"got {len(out)} seeds for {num_samples} samples; give one seed per sample or a single int")
    return out


def candidate_seeds(seed: int, k: int) -> list[int]:
    """The ``k`` seeds of sample ``seed``'s candidates: ``seed`` itself (so ``k = 1`` is the plain sample), then
    ``k - 1`` seeds derived from ``(seed, c)`` by SHA-256 in ``0..MAX_SEED`` (stable across runs and machines)."""
    derived = (
        int.from_bytes(hashlib.sha256(f"frgd-candidate:{int(seed)}:{c}".encode()).digest()[:8], "big") >> 1
        for c in range(1, int(k))
    )
    return [int(seed), *derived]


def check_candidates(k: int, has_reference: bool | None = None, *, name: str = "candidates",
                     reference: str = "a reference") -> None:  # fmt: skip
    """The one rule for ``candidates`` (the pipeline, ``frgd enhance --candidates``, ``frgd eval faces``): an integer in
    ``1..CANDIDATES_MAX``, and above 1 only with a reference (``has_reference`` ``None``: not checked here). ``name``
    and ``reference`` word the :class:`InputError` for the caller (a flag name, ``--reference``)."""
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= CANDIDATES_MAX):
        raise InputError(f"{name} must be an integer in 1..{CANDIDATES_MAX}, got {k!r}")
    if k > 1 and has_reference is False:
        raise InputError(f"{name} > 1 needs {reference}: the candidate most like the reference is kept")


def similarity(encoder, images: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(N,)`` (CPU) of ``encoder``'s embeddings of ``images`` ``(N,3,S,S)`` in ``[0,1]`` to the unit
    reference ``ref`` ``(D,)`` (shared) or ``(N,D)`` (one per image), on ``ref``'s device."""
    with torch.inference_mode():
        e = F.normalize(encoder.embed(images.to(ref.device)).float(), dim=1)
        return (e * (ref[None] if ref.ndim == 1 else ref)).sum(dim=1).cpu().clone()


def resample_passes(w: GuidanceWeights, alpha_bar: float, alpha_bar_next: float) -> int:
    """Harmonising passes before a step from ``alpha_bar`` to ``alpha_bar_next``: ``w.resample`` while the noise level
    ``sqrt(1 - alpha_bar)`` is at least :data:`.guidance.RESAMPLE_SIGMA_MIN`, never before the last step."""
    if w.resample <= 0 or alpha_bar_next >= 1.0 or (1.0 - alpha_bar) ** 0.5 < RESAMPLE_SIGMA_MIN:
        return 0
    return int(w.resample)


def planned_model_calls(train_scheduler, scheduler: str, steps: int, w: GuidanceWeights) -> int:
    """UNet calls of one sampling run (classifier-free guidance batches its two branches into one call): one per step
    sampled at ``w.strength``, plus the harmonising passes (:func:`resample_passes`)."""
    stepper = make_stepper(scheduler, train_scheduler, steps)
    n = len(stepper.timesteps)
    first = first_step(n, w.strength)
    return sum(1 + resample_passes(w, stepper.alpha_bar(i), stepper.alpha_bar_next(i)) for i in range(first, n))


def noised(x0: torch.Tensor, alpha_bar: float, noise: torch.Tensor) -> torch.Tensor:
    """``q(x_t | x0)``: ``sqrt(abar) x0 + sqrt(1 - abar) noise`` (``(N,3,H,W)``, ``[-1, 1]`` units)."""
    return alpha_bar**0.5 * x0 + (1.0 - alpha_bar) ** 0.5 * noise


def prefers_channels_last(device: torch.device | str) -> bool:
    """Whether a pipeline that owns its model should run it NHWC on ``device``: on CPU (0.32 s instead of 0.40 s per
    round-sized UNet forward, measured); elsewhere the default layout."""
    return torch.device(device).type == "cpu"


def feather_inside(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Soft version of a hard mask ``(B,1,H,W)`` that ramps from 0 at the mask border to 1 ``radius`` px inside.

    It is 0 wherever ``mask`` is 0, so a composite with it still equals the base outside the mask.
    """
    if radius <= 0:
        return mask
    hard = (mask > 0.5).float()
    # distance-like ramp: repeated 3x3 erosion (min-pool) averaged over radius levels
    level = hard
    acc = torch.zeros_like(hard)
    for _ in range(radius):
        level = -F.max_pool2d(-level, kernel_size=3, stride=1, padding=1)
        acc = acc + level
    ramp = (hard + acc) / (radius + 1)
    return ramp * hard


class FRGDPipeline:
    """Identity-guided diffusion face restoration sampler (diffusers-style).

    Holds the :class:`frgd.archs.frgd_unet_arch.FRGDUNet` ``model``, its training ``scheduler`` (the sampling scheduler
    is built from its config per call) and an identity encoder (``embed(images (B,3,H,W) [0,1]) -> (B,D)`` unit, loaded
    lazily with ``frgd.identity.get_identity_encoder(backend)`` when a reference image is first given).
    """

    def __init__(
        self,
        model,
        scheduler,
        identity_encoder=None,
        *,
        identity_backend: str = "dlib",
        device: torch.device | str = "cpu",
        name: str = "frgd",
        channels_last: bool = False,
        prior=None,
        prior_name: str | None = None,
        prior_share_net=None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.channels_last = bool(channels_last)
        """NHWC weights and activations (converts ``model`` in place, so off for a model someone else trains; pipelines
        that own their model pass :func:`prefers_channels_last`)."""
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scheduler = scheduler
        if identity_encoder is not None and hasattr(identity_encoder, "to"):
            identity_encoder = identity_encoder.to(self.device)
        self._identity_encoder = identity_encoder
        self.identity_backend = identity_backend
        self.name = name
        self.size = int(getattr(model.config, "sample_size", FACE_SIZE) or FACE_SIZE)
        """Face crop size ``S`` the model works at (128 for released models; tiny test models may use less)."""
        self.model_calls = 0
        """Number of model forward calls so far (each CFG-batched call counts once)."""
        self.prior = None if prior is None else prior.to(self.device).eval()
        """The FRGD prior (:mod:`frgd.diffusion.prior`): the default base and the preview; ``None``: bicubic."""
        self.prior_name = (prior_name or "prior") if prior is not None else None
        self.prior_share_net = None if prior is None or prior_share_net is None else prior_share_net.to(self.device)
        """The prior-share estimator (:mod:`frgd.diffusion.content`) that sets how far a whole face's content target
        follows the prior's estimate instead of the input; ``None``: the input (share 0) unless a share is given."""

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: torch.device | str = "auto",
        dtype: torch.dtype = torch.float32,
        identity_encoder=None,
        prior: str | Path | None = "auto",
    ) -> FRGDPipeline:
        """Load a model directory (``config.json`` + safetensors + ``scheduler/`` + ``identity.json``).

        ``prior``: ``"auto"`` the installed FRGD prior (:data:`frgd.diffusion.prior.PRIOR_WEIGHTS`) when it is
        installed and trained at the model's size (else none), a prior folder, or ``None`` (bicubic base). With a
        prior, the installed prior-share estimator (:data:`frgd.diffusion.content.PRIOR_SHARE_WEIGHTS`) comes too when
        it was trained with that prior.
        Raises :class:`frgd.errors.MissingWeightsError` when the directory (or an explicit prior folder) is incomplete.
        """
        from ..content import installed_share_net
        from ..model import load_model_dir
        from ..prior import installed_prior, load_prior

        dev = resolve_device(device)
        bundle = load_model_dir(model_dir, device=dev, dtype=dtype)
        size = int(getattr(bundle.model.config, "sample_size", FACE_SIZE) or FACE_SIZE)
        prior_net, prior_name = None, None
        if prior == "auto":
            prior_net = installed_prior(dev, size=size)
            prior_name = None if prior_net is None else PRIOR_WEIGHTS
        elif prior is not None:
            prior_net, prior_name = load_prior(prior, dev), Path(prior).name
        return cls(
            bundle.model,
            bundle.scheduler,
            identity_encoder,
            identity_backend=bundle.identity.backend,
            device=dev,
            name=Path(model_dir).name,
            channels_last=prefers_channels_last(dev),
            prior=prior_net,
            prior_name=prior_name,
            prior_share_net=installed_share_net(prior_net, dev),
        )

    @property
    def identity_encoder(self):
        """The guidance identity encoder (loaded on first use)."""
        if self._identity_encoder is None:
            from ...identity import get_identity_encoder

            self._identity_encoder = get_identity_encoder(self.identity_backend, self.device)
        return self._identity_encoder

    @property
    def identity_dim(self) -> int:
        return int(self.model.config.identity_dim)

    @property
    def prediction_type(self) -> str:
        return str(self.model.config.prediction_type)

    # ------------------------------------------------------------------ inputs
    def check_inputs(
        self,
        degraded: torch.Tensor,
        references: Sequence[torch.Tensor] | torch.Tensor | None,
        identity_strength: float,
        num_samples: int,
        seeds: Sequence[int] | int | None,
        steps: int,
        scheduler: str,
        mask: torch.Tensor | None,
        base: torch.Tensor | None,
        eta: float,
        content_size: int | None,
        feather: int,
        fusion: str = "clean",
        harmonise: int | None = None,
        candidates: int = 1,
        identity_gradient: str | None = None,
        prior_share: float | None = None,
        damage: torch.Tensor | None = None,
    ) -> None:
        """Validate every argument of :meth:`__call__`; raises :class:`InputError` with a one-line message."""
        if not torch.is_tensor(degraded) or degraded.ndim != 4 or degraded.shape[1] != 3:
            raise InputError(f"degraded must be a (B,3,H,W) tensor, got {getattr(degraded, 'shape', type(degraded))}")
        if degraded.shape[-1] < 4 or degraded.shape[-2] < 4:
            raise InputError(f"degraded face is too small: {tuple(degraded.shape[-2:])}")
        if not torch.isfinite(degraded).all():
            raise InputError("degraded face contains NaN or infinite values")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"num_samples must be a positive integer, got {num_samples!r}")
        if degraded.shape[0] not in (1, num_samples):
            raise InputError(f"degraded batch must be 1 or num_samples={num_samples}, got {degraded.shape[0]}")
        if not 0.0 <= float(identity_strength) <= 1.0:
            raise InputError(f"identity strength must be in [0, 1], got {identity_strength}")
        if not isinstance(steps, int) or not 1 <= steps <= self.scheduler.config.num_train_timesteps:
            raise InputError(f"steps must be in 1..{self.scheduler.config.num_train_timesteps}, got {steps!r}")
        if scheduler not in SCHEDULERS:
            raise InputError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
        if eta < 0 or eta > 1:
            raise InputError(f"eta must be in [0, 1], got {eta}")
        if eta > 0 and not SCHEDULERS[scheduler].supports_eta:
            supported = ", ".join(n for n, sp in SCHEDULERS.items() if sp.supports_eta)
            raise InputError(f"eta > 0 (stochastic sampling) is not supported by {scheduler}; use {supported}")
        if content_size is not None and not 4 <= int(content_size) <= self.size:
            raise InputError(f"content_size must be in 4..{self.size}, got {content_size}")
        if feather < 0:
            raise InputError(f"feather must be >= 0, got {feather}")
        if fusion not in FUSION_MODES:
            raise InputError(f"fusion must be one of {', '.join(FUSION_MODES)}, got {fusion!r}")
        if harmonise is not None and not (isinstance(harmonise, int) and 0 <= harmonise <= RESAMPLE_MAX):
            raise InputError(f"harmonise must be an integer in 0..{RESAMPLE_MAX}, got {harmonise!r}")
        if identity_gradient is not None:
            try:
                check_identity_gradient(identity_gradient)
            except ValueError as err:
                raise InputError(str(err)) from None
        check_share(prior_share)
        check_candidates(candidates, references is not None)
        if candidates > 1 and self.identity_backend == "none":
            raise InputError("candidates > 1 needs an identity encoder (this model has none)")
        normalize_seeds(seeds, num_samples)  # raises on a length mismatch
        if seeds is not None and not isinstance(seeds, int):
            for s in seeds:
                if not 0 <= int(s) <= MAX_SEED:
                    raise InputError(f"seed {s} out of range 0..{MAX_SEED}")
        elif isinstance(seeds, int) and not 0 <= seeds <= MAX_SEED - num_samples:
            raise InputError(f"seed {seeds} out of range")
        refs = [references] if torch.is_tensor(references) else list(references or [])
        for i, r in enumerate(refs):
            if not torch.is_tensor(r):
                raise InputError(f"reference {i} must be a tensor, got {type(r).__name__}")
            if r.ndim == 2:
                if r.shape[1] != self.identity_dim:
                    raise InputError(
                        f"reference embedding {i} has dim {r.shape[1]}, the model expects {self.identity_dim}"
                    )
            elif r.ndim == 4:
                if r.shape[1] != 3:
                    raise InputError(f"reference image {i} must be (N,3,H,W), got {tuple(r.shape)}")
            else:
                raise InputError(f"reference {i} must be (N,3,H,W) images or (N,D) embeddings, got {tuple(r.shape)}")
            if r.shape[0] < 1 or not torch.isfinite(r).all():
                raise InputError(f"reference {i} is empty or contains NaN/inf")
        for name, t, ch in (("mask", mask, 1), ("base", base, 3), ("damage", damage, 1)):
            if t is None:
                continue
            if not torch.is_tensor(t) or t.ndim != 4 or t.shape[1] != ch or tuple(t.shape[-2:]) != (self.size,) * 2:
                raise InputError(f"{name} must be (1,{ch},{self.size},{self.size}), got {getattr(t, 'shape', t)}")
            if t.shape[0] not in (1, num_samples):
                raise InputError(f"{name} batch must be 1 or num_samples={num_samples}, got {t.shape[0]}")
            if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
                raise InputError(f"{name} values must be in [0, 1]")

    # ------------------------------------------------------------------ helpers
    @torch.no_grad()
    def preview(self, degraded: torch.Tensor, use_prior: bool = True) -> torch.Tensor:
        """The instant preview and default base of ``degraded`` ``(B,3,h,w)`` in [0,1]: the prior's estimate
        ``(B,3,S,S)`` in [0,1] (one cheap forward pass), or the bicubic upscale without a prior."""
        if not torch.is_tensor(degraded) or degraded.ndim != 4 or degraded.shape[1] != 3:
            raise InputError(f"degraded must be a (B,3,H,W) tensor, got {getattr(degraded, 'shape', type(degraded))}")
        S = self.size
        deg = degraded.float().clamp(0, 1).to(self.device)
        if use_prior and self.prior is not None:
            return apply_prior(self.prior, deg, S).cpu()
        return F.interpolate(deg, size=(S, S), mode="bicubic", align_corners=False).clamp(0, 1).cpu()

    def encode_references(
        self, references: Sequence[torch.Tensor] | torch.Tensor | None, per_sample: bool = False
    ) -> torch.Tensor | None:
        """Mean of all reference embeddings, renormalised: ``(D,)`` unit, or ``None`` without references.

        ``per_sample``: no averaging; the rows (one per sample) are returned as ``(N, D)`` unit embeddings.
        """
        if references is None:
            return None
        refs = [references] if torch.is_tensor(references) else list(references)
        if not refs:
            return None
        embs = []
        for r in refs:
            if r.ndim == 2:
                embs.append(F.normalize(r.float().to(self.device), dim=1))
            else:
                with torch.no_grad():
                    e = self.identity_encoder.embed(r.float().clamp(0, 1).to(self.device))
                embs.append(F.normalize(e.float(), dim=1))
        allemb = torch.cat(embs, 0)
        if allemb.shape[1] != self.identity_dim:
            raise InputError(f"reference embeddings have dim {allemb.shape[1]}, the model expects {self.identity_dim}")
        if per_sample:
            return allemb
        return F.normalize(allemb.mean(0), dim=0)

    def starts_from_prior(self, mask: torch.Tensor | None, base: torch.Tensor | None, use_prior: bool = True) -> bool:
        """Whether a sample starts from the prior's estimate: a whole face (no mask, no given base) with a prior; with
        a mask the kept region stays the input's upscale."""
        return base is None and mask is None and use_prior and self.prior is not None

    def slider_weights(
        self,
        identity_strength: float,
        degraded: torch.Tensor,
        *,
        has_reference: bool,
        mask: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
        use_prior: bool = True,
    ) -> GuidanceWeights:
        """The weights :meth:`__call__` derives from the slider for ``degraded`` ``(B,3,h,w)`` and these inputs
        (:func:`.guidance.slider_to_weights` with the input's size and whether the sample starts from the prior)."""
        return slider_to_weights(
            identity_strength,
            has_reference=has_reference,
            input_px=int(min(degraded.shape[-2:])),
            from_prior=self.starts_from_prior(mask, base, use_prior),
        )

    def _model_out(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        emb: torch.Tensor | None,
        cfg: float,
        grad: bool = False,
    ) -> torch.Tensor:
        """Model prediction ``(N,3,H,W)`` float32 with classifier-free guidance on the identity (no autograd unless
        ``grad``: then differentiable with respect to ``x``)."""
        n = x.shape[0]
        mdtype = self.model.dtype
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        tt = torch.full((n,), int(t), device=self.device, dtype=torch.long)
        self.model_calls += 1
        with torch.enable_grad() if grad else torch.inference_mode():
            if emb is None or cfg == 0.0:
                xin, cin, ident, drop = x, cond, None, None
            else:
                ident = (emb[None].expand(n, -1) if emb.ndim == 1 else emb).to(mdtype)
                xin, cin, drop = x, cond, None
                if cfg != 1.0:  # one batched call: conditional rows, then null rows
                    xin, cin, tt = torch.cat([x, x]), torch.cat([cond, cond]), torch.cat([tt, tt])
                    ident = torch.cat([ident, ident])
                    drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
                    drop = drop.to(self.device)
            xin = xin.to(mdtype).contiguous(memory_format=fmt)
            cin = cin.to(mdtype).contiguous(memory_format=fmt)
            out = self.model(xin, tt, cin, identity=ident, drop_identity=drop).float()
            if drop is not None:
                out = out[n:] + cfg * (out[:n] - out[n:])
        return out if grad else out.contiguous().clone()  # a normal (not inference-mode) tensor

    def _x0(self, out: torch.Tensor, x: torch.Tensor, a: float) -> torch.Tensor:
        """``x0_hat`` ``(N,3,H,W)`` from a model output at noise level ``a = abar_t``."""
        sa, s1 = a**0.5, (1.0 - a) ** 0.5
        if self.prediction_type == "v_prediction":
            return sa * x - s1 * out
        if self.prediction_type == "epsilon":
            return (x - s1 * out) / sa
        raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")

    def _noise(self, gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
        """One noise tensor per sample from its own generator -> ``(N, *shape)`` on the device."""
        return torch.cat([torch.randn((1, *shape), generator=g) for g in gens]).to(self.device)

    def reference_similarity(
        self, faces: torch.Tensor, references: Sequence[torch.Tensor] | torch.Tensor
    ) -> torch.Tensor:
        """Guidance-encoder cosine similarity ``(N,)`` (CPU) of ``faces`` ``(N,3,S,S)`` in ``[0,1]`` (aligned inputs)
        to the references' mean embedding (:meth:`encode_references`): which face a reference is of."""
        ref = self.encode_references(references)
        if ref is None:
            raise InputError("reference_similarity needs at least one reference")
        return similarity(self.identity_encoder, faces.float().clamp(0, 1), ref)

    def identity_meter(
        self, images: torch.Tensor, references: Sequence[torch.Tensor] | torch.Tensor | None, ref: torch.Tensor
    ) -> tuple[torch.Tensor, MeterReading]:
        """Meter scores ``(N,)`` and verdicts of ``images`` ``(N,3,S,S)`` in ``[0,1]`` against the references.

        Uses an encoder the guidance did not optimise when one is installed and calibrated and the references are
        images (:func:`frgd.identity.meter.choose_meter_backend`); otherwise the guidance encoder with ``ref``
        (``(D,)`` or ``(N,D)`` unit), and the reading says it is not independent (optimistic for guided samples).
        """
        cals = load_calibrations()
        backend, independent = choose_meter_backend(self.identity_backend, cals)
        refs = [references] if torch.is_tensor(references) else list(references or [])
        ref_images = [r for r in refs if r.ndim == 4]
        with torch.inference_mode():
            if independent and ref_images and ref.ndim == 1:
                from ...identity import get_identity_encoder

                enc = get_identity_encoder(backend, self.device)
                r = torch.cat([F.normalize(enc.embed(x.float().clamp(0, 1).to(self.device)).float(), dim=1)
                               for x in ref_images])  # fmt: skip
                r = F.normalize(r.mean(0), dim=0)
            else:
                enc, r, backend, independent = self.identity_encoder, ref, self.identity_backend, False
        scores = similarity(enc, images, r)
        return scores, read_meter(scores.tolist(), backend, independent, cals)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        degraded: torch.Tensor,
        *,
        references: Sequence[torch.Tensor] | torch.Tensor | None = None,
        identity_strength: float = DEFAULT_IDENTITY_STRENGTH,
        num_samples: int = 1,
        seeds: Sequence[int] | int | None = None,
        steps: int = DEFAULT_STEPS,
        scheduler: str = DEFAULT_SCHEDULER,
        mask: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
        eta: float = 0.0,
        content_size: int | None = None,
        feather: int = 0,
        weights: GuidanceWeights | None = None,
        reference_per_sample: bool = False,
        fusion: str = "clean",
        harmonise: int | None = None,
        use_prior: bool = True,
        candidates: int = 1,
        identity_gradient: str | None = None,
        back_projection: bool = BACK_PROJECTION,
        prior_share: float | None = None,
        damage: torch.Tensor | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> FRGDOutput:
        """Restore ``degraded`` ``(B0,3,h,w)`` in ``[0,1]`` (``B0`` = 1 or ``num_samples``) into ``num_samples`` faces.

        Args:
            references: reference crops ``(N,3,H,W)`` in ``[0,1]`` aligned like the input and/or precomputed ``(N,D)``
                embeddings; all are averaged and renormalised. ``None``: no-reference mode (null embedding).
            identity_strength: the slider ``s`` in ``[0,1]`` (see :func:`.guidance.slider_to_weights`).
            seeds: per-sample seeds (list), a start seed (int: ``k, k+1, ...``) or ``None`` (random, reported).
            steps / scheduler / eta: sampling steps, a :data:`.schedulers.SCHEDULERS` name, stochasticity (DDIM).
            mask: ``(1,1,128,128)`` 1 = may change (``None``: the whole face); base: ``(1,3,128,128)`` content kept
                outside the mask and the img2img start (default: the bicubic upscale of ``degraded``; without a
                mask, :meth:`preview`, the prior's estimate, when the pipeline has a prior).
            content_size: resolution at which content guidance compares with the input (default: the input size when
                smaller than 128, else 64).
            feather: px of inward feathering of the final composite (0 = hard mask; outside the mask is exact anyway).
            weights: override the slider mapping (advanced / tests).
            reference_per_sample: ``references`` hold exactly one reference per sample (not averaged): sample ``i`` is
                guided towards reference ``i`` (evaluation batches of different people).
            fusion: with a mask, the known-content channels of ``cond``: ``"clean"`` (the base) or ``"noisy"`` (each
                step's ``x_t`` outside the mask, training's noisy fusion).
            harmonise: harmonising passes per step (overrides ``weights.resample``; ``None``: the weights' own,
                :data:`.guidance.RESAMPLE`); each costs one more model call per step above
                :data:`.guidance.RESAMPLE_SIGMA_MIN`.
            use_prior: ``False``: the default base is the bicubic upscale even without a mask and with a prior.
            candidates: sample each output ``K`` times and keep the candidate most like the reference (needs a
                reference; costs ``K`` samples per output; :meth:`_best_of`). Where the weights ignore the reference
                (``s = 0``) one sample is drawn, the same as without a reference.
            identity_gradient: how identity guidance takes its gradient (overrides ``weights.identity_gradient``;
                ``None``: the weights' own, :data:`.schedulers.IDENTITY_GRADIENT`): ``"denoiser"`` through the model
                (fewer cracks, one backward pass per guided step), ``"x0"`` at ``x0_hat`` alone (faster, less memory).
            back_projection: bring a whole face's finished sample back to the content target
                (:func:`.guidance.back_project`; no effect with a mask, whose kept region is the base).
            prior_share: the prior's share ``a`` of the content target ``(1 - a) input + a prior`` at the content
                scale (:mod:`frgd.diffusion.content`), for a whole face that starts from the prior, and inside the
                mask of a masked sample (the region that changes; the kept region is the base either way): ``None``
                estimated per face by the pipeline's estimator (0 without one), 0 = the input (a clean input), 1 =
                the prior's estimate (a noisy, blurred or compressed input). Ignored (0) without a prior
                (``use_prior=False`` included) and for a whole face from a given base.
            damage: ``(1,1,128,128)`` 1 = the input is damaged there (a scratch, a stain; ``None``: no damage): the
                input is filled there from the pixels around it, the content target there is the prior's estimate
                and a given ``base`` is filled there too where it may change (inside the mask), so an earlier result
                that copied the scratch does not start the sample with it (:mod:`frgd.diffusion.damage`). Independent
                of ``mask``: a whole face may be restored over damage; outside the mask the output still equals the
                base.
        """
        # 1. inputs, seeds, references
        t_start = time.perf_counter()
        self.check_inputs(
            degraded, references, identity_strength, num_samples, seeds, steps, scheduler, mask, base, eta,
            content_size, feather, fusion, harmonise, candidates, identity_gradient, prior_share, damage,
        )  # fmt: skip
        check_cancel(cancel)
        uses_reference = (weights.identity > 0 or weights.cfg > 0) if weights else float(identity_strength) > 0
        if candidates > 1 and uses_reference:  # at s = 0 the reference is ignored: nothing to choose by
            return self._best_of(
                candidates, degraded, references=references, identity_strength=identity_strength,
                num_samples=num_samples, seeds=seeds, steps=steps, scheduler=scheduler, mask=mask, base=base, eta=eta,
                content_size=content_size, feather=feather, weights=weights,
                reference_per_sample=reference_per_sample, fusion=fusion, harmonise=harmonise, use_prior=use_prior,
                identity_gradient=identity_gradient, back_projection=back_projection, prior_share=prior_share,
                damage=damage, progress=progress, cancel=cancel,
            )  # fmt: skip
        n = num_samples
        seed_list = normalize_seeds(seeds, n)
        dev = self.device

        t_ref = time.perf_counter()
        ref = self.encode_references(references, per_sample=reference_per_sample)
        if ref is not None and ref.ndim == 2 and ref.shape[0] != n:
            raise InputError(f"reference_per_sample needs {n} references (one per sample), got {ref.shape[0]}")
        t_ref = time.perf_counter() - t_ref

        # 2. weights, conditioning, guidance callbacks
        prior_used = self.starts_from_prior(mask, base, use_prior)
        w = weights or self.slider_weights(
            identity_strength, degraded, has_reference=ref is not None, mask=mask, base=base, use_prior=use_prior
        )
        if ref is None:
            w = dataclasses.replace(w, identity=0.0, cfg=0.0)
        if harmonise is not None:
            w = dataclasses.replace(w, resample=int(harmonise))
        if identity_gradient is not None:
            w = dataclasses.replace(w, identity_gradient=identity_gradient)
        S = self.size
        deg = degraded.float().clamp(0, 1).to(dev)
        deg = deg.expand(n, -1, -1, -1) if deg.shape[0] == 1 else deg
        h, wd = deg.shape[-2:]
        dmg = None if damage is None else damage.to(dev)
        if dmg is not None:  # the damaged pixels filled from their surroundings, at the input's size
            deg = fill_damage(deg, damage_at(dmg, (h, wd)))
        deg128 = F.interpolate(deg, size=(S, S), mode="bicubic", align_corners=False).clamp(0, 1)
        hw = content_hw(h, wd, S) if content_size is None else (int(content_size), int(content_size))
        content_target = downscale_to(deg, hw)  # the input at the content scale, [0, 1]
        if base is not None:
            base01 = base.float().to(dev).expand(n, -1, -1, -1)
        else:
            base01 = apply_prior(self.prior, deg128, S) if prior_used else deg128
        hard1 = None if mask is None else (mask.float().to(dev) > 0.5).float()  # (1 or n, 1, S, S)
        has_prior = use_prior and self.prior is not None  # (a whole face from the prior has one: prior_used)
        shares, share_source, prior_c = None, None, None
        # the share holds a whole face from the prior, or the region a mask changes (the kept region is the base)
        shared = (prior_used or (has_prior and hard1 is not None)) and (
            prior_share is not None or self.prior_share_net is not None
        )
        if shared or (has_prior and dmg is not None):  # the prior's estimate at the content scale
            prior_c = to_content_scale(base01 if prior_used else apply_prior(self.prior, deg128, S), hw)
        if shared:
            if prior_share is not None:
                shares, share_source = torch.full((n,), float(prior_share), device=dev), "given"
            else:
                shares, share_source = estimate_share(self.prior_share_net, content_target, prior_c), "estimated"
            region = None if prior_used else downscale_to(hard1, hw)
            content_target = blend_target(content_target, prior_c, shares, region)
        if has_prior and dmg is not None:  # the prior's estimate where it is damaged
            content_target = damage_target(content_target, prior_c, damage_at(dmg, hw))
        hard = None if hard1 is None else hard1.expand(n, -1, -1, -1)
        m = torch.ones(n, 1, S, S, device=dev) if hard is None else hard
        if dmg is not None and base is not None:  # a given base (an earlier result) is filled where it may change
            base01 = fill_damage(base01, damage_at(dmg, (S, S)) * m)
        base_pm = base01 * 2 - 1
        cond = build_cond(deg, m, base01 if hard is not None else None, size=(S, S), value_range="[0,1]")
        noisy_fusion = hard is not None and fusion == "noisy"

        ident_guide, content_guide = build_guides(
            w,
            encoder=self.identity_encoder if (w.identity > 0 and ref is not None) else None,
            reference=ref,
            content_target=content_target * 2 - 1,
        )
        guides = [g for g in (ident_guide, content_guide) if g is not None]

        # 3. the stepper (owns timesteps and update), initial state
        stepper = make_stepper(scheduler, self.scheduler, steps, eta)
        timesteps = stepper.timesteps
        first = first_step(len(timesteps), w.strength)
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seed_list]
        x = self._noise(gens, (3, S, S))
        a_first = stepper.alpha_bar(first)
        if first > 0:  # img2img: the base noised to the first step's level (inside the mask too)
            x = noised(base_pm, a_first, x)
        if hard is not None:
            x = m * x + (1 - m) * noised(base_pm, a_first, self._noise(gens, (3, S, S)))

        # 4. denoising loop
        t_loop = time.perf_counter()
        t_guide = t_model = 0.0
        for i in range(first, len(timesteps)):
            t = timesteps[i]
            a, a_next = stepper.alpha_bar(i), stepper.alpha_bar_next(i)
            passes = 1 + resample_passes(w, a, a_next)
            ctx = GuidanceContext(alpha_bar=a, alpha_bar_next=a_next, step=i, num_steps=len(timesteps))
            for r in range(passes):
                check_cancel(cancel)
                if noisy_fusion:
                    cond = torch.cat([cond[:, :4], x * (1 - m)], dim=1)  # (a) x_t outside the mask = q(x_t | base)
                tm = time.perf_counter()
                x_leaf = x0_graph = None
                if ident_guide is not None and ident_guide.through_denoiser(ctx):  # (b, c) with autograd
                    with torch.enable_grad():
                        x_leaf = x.detach().requires_grad_(True)
                        x0_graph = self._x0(self._model_out(x_leaf, t, cond, ref, w.cfg, grad=True), x_leaf, a)
                        x0_graph = x0_graph.clamp(-1, 1)
                    x0 = x0_graph.detach()
                else:
                    x0 = self._x0(self._model_out(x, t, cond, ref, w.cfg), x, a).clamp(-1, 1)  # (b, c)
                t_model += time.perf_counter() - tm
                tg = time.perf_counter()
                delta = guidance_delta(x0, guides, ctx)  # (e), shared equally by the passes
                if x0_graph is not None:  # the identity push, backpropagated through the encoder and the UNet
                    push = ident_guide.push_through(x_leaf, x0_graph, ctx)  # the backward frees the graph
                    delta = push if delta is None else delta + push
                t_guide += time.perf_counter() - tg
                if delta is not None:
                    delta = m * (delta / passes)
                if r + 1 < passes:  # (g) a harmonising pass: a guided trial DDIM step, then back to this level
                    x_trial = ddim_update(x0, x, a, a_next) + (0.0 if delta is None else delta)
                    x = renoise(x_trial, a, a_next, self._noise(gens, (3, S, S)))
                    if hard is not None:
                        x = m * x + (1 - m) * noised(base_pm, a, self._noise(gens, (3, S, S)))
            step_noise = self._noise(gens, (3, S, S)) if eta > 0 else None
            x_next = stepper.step(x0, x, i, step_noise)  # (d)
            if delta is not None:
                x_next = x_next + delta
            if hard is not None and i + 1 < len(timesteps):  # (f) at the stepper's own next level
                x_next = m * x_next + (1 - m) * noised(base_pm, a_next, self._noise(gens, (3, S, S)))
            x = x_next
            report(
                progress,
                i + 1 - first,
                len(timesteps) - first,
                f"sampling step {i + 1 - first}/{len(timesteps) - first}",
            )
        t_loop = time.perf_counter() - t_loop

        # 5. composite, identity scores
        img = ((x.float().clamp(-1, 1) + 1) * 0.5).clamp(0, 1)
        projected = hard is None and bool(back_projection)
        if projected:  # (content_target: the input at the content scale, or its blend with the prior's; [0, 1])
            img = back_project(img, content_target)
        if hard is not None:
            soft = feather_inside(hard, feather)
            img = soft * img + (1 - soft) * base01
        scores, reading = None, None
        if ref is not None and self.identity_backend != "none":  # "none": no encoder here (e.g. a training machine)
            scores, reading = self.identity_meter(img, references, ref)
        total = time.perf_counter() - t_start
        params = {
            "model": self.name,
            "identity_strength": float(identity_strength),
            "num_samples": n,
            "steps": steps,
            "scheduler": scheduler,
            "eta": eta,
            "content_size": list(hw),
            "masked": mask is not None,
            "damage": None if damage is None else round(float((damage > 0.5).float().mean()), 4),
            "feather": feather,
            "fusion": fusion if hard is not None else None,
            "back_projection": projected,
            "prior_share": None
            if shares is None
            else {"source": share_source, "values": [round(float(v), 4) for v in shares]},
            "base": "given" if base is not None else (self.prior_name if prior_used else "bicubic"),
            "has_reference": ref is not None,
            "weights": w.as_dict(),
            "prediction_type": self.prediction_type,
            "identity_meter": None if reading is None else reading.as_dict(),
            "candidates": None,
        }
        return FRGDOutput(
            images=img.cpu(),
            seeds=seed_list,
            identity_scores=scores,
            weights=w,
            timings={
                "references": t_ref,
                "sampling": t_loop,
                "model": t_model,
                "guidance": t_guide,
                "total": total,
                "per_sample": total / n,
            },
            params=params,
            identity_meter=reading,
            reference_embedding=None if ref is None else ref.cpu(),
        )

    def _best_of(
        self,
        k: int,
        degraded: torch.Tensor,
        *,
        references: Sequence[torch.Tensor] | torch.Tensor,
        num_samples: int,
        seeds: Sequence[int] | int | None,
        reference_per_sample: bool,
        mask: torch.Tensor | None,
        base: torch.Tensor | None,
        damage: torch.Tensor | None = None,
        **kw: Any,
    ) -> FRGDOutput:
        """``num_samples`` outputs, each the best of ``k`` candidates sampled in one batch of ``num_samples * k``.

        Candidate ``c`` of sample ``i`` uses ``candidate_seeds(seeds[i], k)[c]``; the kept one has the highest
        guidance-encoder cosine similarity to the reference (per sample with ``reference_per_sample``). The output
        keeps the requested seeds (seed and ``k`` give the same face); ``params["candidates"]`` records ``k``, each
        sample's candidate seeds, their similarities and the chosen index.
        """
        t0 = time.perf_counter()
        n = num_samples
        seed_list = normalize_seeds(seeds, n)
        cand = [candidate_seeds(s, k) for s in seed_list]

        def expand(t: torch.Tensor | None) -> torch.Tensor | None:  # (1 or n, ...) -> (1 or n*k, ...)
            return t if t is None or t.shape[0] == 1 else t.repeat_interleave(k, dim=0)

        if reference_per_sample:  # encoded once per sample, not once per candidate (the meter needs no images here)
            references = self.encode_references(references, per_sample=True).repeat_interleave(k, dim=0)
        out = self(
            expand(degraded), references=references, num_samples=n * k, seeds=[c for cs in cand for c in cs],
            mask=expand(mask), base=expand(base), damage=expand(damage), reference_per_sample=reference_per_sample,
            **kw,
        )  # fmt: skip
        scores, reading = out.identity_scores, out.identity_meter
        if reading is not None and not reading.independent:  # the meter already scored them with the guidance encoder
            sims = scores.view(n, k)
        else:
            sims = similarity(self.identity_encoder, out.images, out.reference_embedding.to(self.device)).view(n, k)
        best = sims.argmax(dim=1)
        idx = torch.arange(n) * k + best
        if scores is not None:
            scores = scores[idx]
        if reading is not None:
            keep = idx.tolist()
            reading = dataclasses.replace(
                reading, scores=[reading.scores[j] for j in keep], verdicts=[reading.verdicts[j] for j in keep]
            )
        params = {
            **out.params,
            "num_samples": n,
            "identity_meter": None if reading is None else reading.as_dict(),
            "candidates": {
                "count": k,
                "rule": "kept the candidate with the highest guidance-encoder similarity to the reference",
                "seeds": cand,
                "guidance_similarity": [[round(float(v), 4) for v in row] for row in sims],
                "chosen": best.tolist(),
            },
        }
        total = time.perf_counter() - t0
        timings = {**out.timings, "total": total, "per_sample": total / n}
        ref = out.reference_embedding
        ref = ref[idx] if ref is not None and ref.ndim == 2 else ref
        return FRGDOutput(out.images[idx], seed_list, scores, out.weights, timings, params, reading, ref)


__all__ = [
    "CANDIDATES_MAX",
    "DEFAULT_IDENTITY_STRENGTH",
    "DEFAULT_SCHEDULER",
    "DEFAULT_STEPS",
    "FACE_SIZE",
    "FUSION_MODES",
    "SCHEDULERS",
    "SCHEDULER_NAMES",
    "ContentGuidance",
    "FRGDOutput",
    "FRGDPipeline",
    "IdentityGuidance",
    "candidate_seeds",
    "check_candidates",
    "feather_inside",
    "normalize_seeds",
    "planned_model_calls",
    "prefers_channels_last",
    "resample_passes",
    "similarity",
]
