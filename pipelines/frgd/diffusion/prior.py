"""The FRGD prior (:class:`frgd.archs.face_prior_arch.FacePriorNet`): load, save and apply.

A small regression U-Net trained with L1 on the CPU (:mod:`frgd.diffusion.training.train_prior`, no GPU time): from the
degraded face resized to the model's size it predicts the clean face. FRGD uses it as the base of whole-face samples
(no mask, no base given: the sampler's img2img starts from it, so the content end is sharper) and the editor shows it
as the instant preview while the samples run.

Weights: manifest entry ``frgd-prior-128`` (kind ``resource``): ``frgd_resources/weights/frgd-prior-128/`` with
``config.json`` (constructor arguments plus training metadata) and ``model.safetensors`` (float16), loaded through
:mod:`frgd.weights`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..archs.face_prior_arch import FacePriorNet

logger = logging.getLogger(__name__)

ARCH = "FacePriorNet"
PRIOR_WEIGHTS = "frgd-prior-128"
"""Manifest name of the shipped prior."""
_ARCH_KEYS = ("channels", "blocks", "mid_blocks")


def build_prior(config: dict[str, Any]) -> FacePriorNet:
    """Rebuild the network from a ``config.json`` dict (extra keys such as training metadata are ignored)."""
    from ..weights import build_from_config

    return build_from_config(config, FacePriorNet, ARCH, _ARCH_KEYS, "FRGD prior")


def load_prior(directory: str | Path | None = None, device: torch.device | str = "cpu") -> FacePriorNet:
    """The prior in eval mode on ``device`` (float32, no gradients); ``directory`` overrides the installed folder.

    Raises :class:`frgd.errors.MissingWeightsError` (with the expected path and how to get it) when not installed.
    """
    from .. import weights

    d = Path(directory) if directory is not None else weights.weights_path(PRIOR_WEIGHTS)
    model = weights.load_pretrained(d, build_prior, device=device).float()
    model.requires_grad_(False)
    size = weights.load_config(d).get("sample_size")
    model.sample_size = None if size is None else int(size)  # the face size it was trained at (None: not recorded)
    return model


def installed_prior(device: torch.device | str = "cpu", size: int | None = None) -> FacePriorNet | None:
    """The installed prior, or ``None`` (logged) when its weights are not installed or (``size`` given) it was
    trained at another face size than ``size``."""
    from ..errors import MissingWeightsError

    try:
        model = load_prior(device=device)
    except MissingWeightsError as err:
        logger.info("no FRGD prior: %s", err)
        return None
    if size is not None and model.sample_size != int(size):
        logger.info("the installed FRGD prior works at %s px, not %d: not used", model.sample_size, size)
        return None
    return model


def save_prior(
    model: FacePriorNet, directory: str | Path, sample_size: int, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``config.json`` (architecture, the face size ``sample_size`` it was trained at, ``extra`` metadata) and
    ``model.safetensors`` (float16) there."""
    from .. import weights

    config = {"arch": ARCH, **model.config(), "sample_size": int(sample_size), **(extra or {})}
    return weights.save_pretrained(directory, model, config, dtype=torch.float16)


@torch.no_grad()
def apply_prior(prior: FacePriorNet, degraded: torch.Tensor, size: int, chunk: int = 16) -> torch.Tensor:
    """Prior estimate ``(B, 3, size, size)`` in [0, 1] of degraded faces ``(B, 3, h, w)`` in [0, 1] (any size: resized
    bicubically to ``size`` first, as the sampler's base)."""
    p = next(prior.parameters())
    x = degraded.float().clamp(0, 1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    x = x.to(device=p.device, dtype=p.dtype)
    outs = [prior(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    return torch.cat(outs).clamp(0, 1).to(degraded.device, torch.float32)


__all__ = [
    "ARCH",
    "PRIOR_WEIGHTS",
    "apply_prior",
    "build_prior",
    "installed_prior",
    "load_prior",
    "save_prior",
]
