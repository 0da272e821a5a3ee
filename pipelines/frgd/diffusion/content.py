"""FRGD's content target: what a whole face is pulled back to at the input's scale, and the prior's share of it.

The content guidance and the back-projection (:mod:`frgd.diffusion.sampling.guidance`) compare the sample, downscaled
to the *content scale* (:func:`content_hw`), with a target there. The input itself is the right target when it is a
clean downscale: it is then the truth at that scale. A noisy, blurred or JPEG-compressed input is not: pulling the
sample onto it puts its noise and blocks back (measured on the tuning faces, mild x4: 1.06 dB and 0.056 judge below
the prior's estimate alone). The FRGD prior (:mod:`frgd.diffusion.prior`) has removed those, so the target is

    T = (1 - a) y + a p,        y = the input at the content scale, p = the prior's estimate downscaled there,

with ``a`` in ``[0, 1]`` the **prior's share**, per face. It is estimated by :class:`frgd.archs.prior_share_arch.
PriorShareNet` from ``y`` and ``y - p``, or set by the user. It is trained on the CPU
(:mod:`frgd.diffusion.training.train_prior_share`) towards the share that brings the target closest to ``g``, what the
input would be as a clean downscale of the true face (its kernel and size, no blur, noise or JPEG), at the content
scale: ``|T - g|^2`` is a quadratic in ``a`` with its minimum at ``a* = <y - p, y - g> /
|y - p|^2`` (:func:`optimal_share`), and the loss is ``(a - clip(a*, 0, 1))^2`` (:func:`share_loss`).

Weights: manifest entry ``frgd-prior-share`` (kind ``resource``): ``config.json`` (architecture, training record and
the fingerprint of the prior it was trained with, :func:`prior_fingerprint`) and ``model.safetensors`` (float16). The
estimate is used only with that prior: with another one the share is 0 (the input, as before) and a log line says why.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from ..archs.prior_share_arch import PriorShareNet
from ..errors import InputError
from .sampling.guidance import BACK_PROJECT_KERNEL

logger = logging.getLogger(__name__)

ARCH = "PriorShareNet"
PRIOR_SHARE_WEIGHTS = "frgd-prior-share"
"""Manifest name of the shipped prior-share estimator."""
_ARCH_KEYS = ("width", "depth", "residual_gain")


def content_hw(h: int, w: int, size: int) -> tuple[int, int]:
    """The content scale of an input ``h x w`` for a model of ``size`` px: the input's own size below ``size``, else
    half of ``size`` (a large face is compared at ``size // 2``)."""
    return (int(h), int(w)) if max(h, w) < size else (size // 2, size // 2)


def to_content_scale(face: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A face at the model's size ``(B, 3, S, S)`` (the prior's estimate) at the content scale ``hw``, by the
    back-projection's own downscale (:data:`.sampling.guidance.BACK_PROJECT_KERNEL`). The input itself gets there by
    the content guidance's area downscale (:func:`.sampling.guidance.downscale_to`)."""
    from ..degrade import resize_tensor

    return resize_tensor(face, hw, BACK_PROJECT_KERNEL)


def blend_target(
    y: torch.Tensor, p: torch.Tensor, share: torch.Tensor, region: torch.Tensor | None = None
) -> torch.Tensor:
    """``(1 - a) y + a p`` with ``share`` ``a`` ``(B,)`` in ``[0, 1]``; ``y``, ``p`` ``(B, 3, h, w)``. ``region``
    ``(B or 1, 1, h, w)`` in ``[0, 1]``: where the share applies (a mask at the content scale; ``None``: everywhere),
    ``y`` elsewhere. A share of 0 gives ``y`` exactly."""
    a = share.to(y.dtype).view(-1, 1, 1, 1)
    if region is not None:
        a = a * region.to(y)
    return y + a * (p - y)


def optimal_share(y: torch.Tensor, p: torch.Tensor, g: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The unconstrained minimiser ``a*`` ``(B,)`` of ``|(1 - a) y + a p - g|^2`` (0 where ``y == p``)."""
    d = (y - p).flatten(1)
    return (d * (y - g).flatten(1)).sum(1) / (d * d).sum(1).clamp_min(eps)


def share_loss(share: torch.Tensor, y: torch.Tensor, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-face ``(a - clip(a*, 0, 1))^2`` ``(B,)``: the squared distance of ``share`` ``a`` to the best share in
    ``[0, 1]`` (:func:`optimal_share`). For one face it orders shares in ``[0, 1]`` exactly as the target's error
    ``|T - g|^2`` does (a quadratic in ``a`` with its minimum at ``a*``), and every face weighs the same, whether its
    residual is large or tiny (``a*`` of a nearly clean input can be far outside ``[0, 1]``)."""
    return (share - optimal_share(y, p, g).clamp(0, 1)) ** 2


@torch.no_grad()
def prior_fingerprint(prior: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) of a prior's weights as float16: the estimator records the prior it learnt."""
    h = hashlib.sha256()
    for name, t in sorted(prior.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().to(torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def estimate_share(net: PriorShareNet, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The prior's share ``(B,)`` in ``[0, 1]`` for inputs ``y`` and prior estimates ``p`` at the content scale."""
    q = next(net.parameters())
    with torch.no_grad():
        logits = net(y.to(q.device, q.dtype), (y - p).to(q.device, q.dtype))
    return torch.sigmoid(logits.float()).to(y.device)


def check_share(share: float | None) -> None:
    """``None`` (estimated) or a number in ``[0, 1]``; :class:`InputError` otherwise."""
    if share is not None and not (isinstance(share, (int, float)) and 0.0 <= float(share) <= 1.0):
        raise InputError(f"prior_share must be None (estimated) or in [0, 1], got {share!r}")


def build_share_net(config: dict[str, Any]) -> PriorShareNet:
    """Rebuild the estimator from a ``config.json`` dict (training metadata ignored)."""
    from ..weights import build_from_config

    return build_from_config(config, PriorShareNet, ARCH, _ARCH_KEYS, "prior-share")


def load_share_net(directory: str | Path | None = None, device: torch.device | str = "cpu") -> PriorShareNet:
    """The estimator (eval, float32, no gradients) with ``prior_fingerprint`` set from its config; ``directory``
    overrides the installed folder. :class:`frgd.errors.MissingWeightsError` when it is not installed."""
    from .. import weights

    d = Path(directory) if directory is not None else weights.weights_path(PRIOR_SHARE_WEIGHTS)
    net = weights.load_pretrained(d, build_share_net, device=device).float()
    net.requires_grad_(False)
    net.prior_fingerprint = weights.load_config(d).get("prior_fingerprint")
    return net


def installed_share_net(prior: torch.nn.Module | None, device: torch.device | str = "cpu") -> PriorShareNet | None:
    """The installed estimator when it was trained with ``prior`` (same :func:`prior_fingerprint`), else ``None``
    (logged: the content target is then the input)."""
    from ..errors import MissingWeightsError

    if prior is None:
        return None
    try:
        net = load_share_net(device=device)
    except MissingWeightsError as err:
        logger.info("no prior-share estimator: %s", err)
        return None
    have = prior_fingerprint(prior)
    if net.prior_fingerprint != have:
        logger.info("the prior-share estimator was trained with prior %s, not this one (%s): not used",
                    net.prior_fingerprint, have)  # fmt: skip
        return None
    return net


def save_share_net(net: PriorShareNet, directory: str | Path, prior: torch.nn.Module, extra: dict[str, Any]) -> Path:
    """Write ``config.json`` (architecture, ``prior``'s fingerprint, ``extra``) and ``model.safetensors`` (float16)."""
    from .. import weights

    config = {"arch": ARCH, **net.config(), "prior_fingerprint": prior_fingerprint(prior), **extra}
    return weights.save_pretrained(directory, net, config, dtype=torch.float16)


__all__ = [
    "ARCH",
    "PRIOR_SHARE_WEIGHTS",
    "blend_target",
    "build_share_net",
    "check_share",
    "content_hw",
    "estimate_share",
    "installed_share_net",
    "load_share_net",
    "optimal_share",
    "prior_fingerprint",
    "save_share_net",
    "share_loss",
    "to_content_scale",
]
