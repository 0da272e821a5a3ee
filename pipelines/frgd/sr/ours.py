"""FRGD-SR, our own PSNR-oriented super-resolution model (x2, x3, x4), trained with :mod:`frgd.sr.train_sr`.

Weights: manifest entries ``frgd-sr-x{2,3,4}`` (kind ``resource``): ``frgd_resources/weights/frgd-sr-x{s}/`` with
``config.json`` (constructor arguments of :class:`frgd.archs.edsr_arch.EDSRLite` plus training metadata) and
``model.safetensors`` (float16: half the upload of a GPU training round, which carries the whole tree; Set5 x2 PSNR
37.318483 dB against 37.318467 dB with the float32 weights), loaded through :mod:`frgd.weights` into float32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..archs.edsr_arch import EDSRLite
from ..errors import InputError

logger = logging.getLogger(__name__)

ARCH = "EDSRLite"
SCALES = (2, 3, 4)
_ARCH_KEYS = ("scale", "num_feat", "num_block", "res_scale", "num_in_ch")


def weights_name(scale: int) -> str:
    """Manifest name of the weights for ``scale``: ``frgd-sr-x{scale}``."""
    if scale not in SCALES:
        raise InputError(f"frgd-sr supports scales {SCALES}, got {scale}")
    return f"frgd-sr-x{scale}"


def build_frgd_sr(config: dict[str, Any]) -> EDSRLite:
    """Rebuild the network from a ``config.json`` dict (extra keys such as training metadata are ignored)."""
    from ..weights import build_from_config

    return build_from_config(config, EDSRLite, ARCH, _ARCH_KEYS, "frgd-sr")


def load_frgd_sr(scale: int, device: torch.device | str = "cpu", directory: str | Path | None = None) -> EDSRLite:
    """Our x``scale`` model in eval mode on ``device``: ``(B, 3, h, w)`` [0, 1] -> ``(B, 3, s*h, s*w)`` (unclamped).

    ``directory`` overrides the installed weights folder. Raises :class:`frgd.errors.MissingWeightsError` (with the
    expected path and the ``frgd weights import`` hint) when the weights are not installed.
    """
    from .. import weights

    d = Path(directory) if directory is not None else weights.weights_path(weights_name(scale))
    model = weights.load_pretrained(d, build_frgd_sr, device=device)
    if model.scale != scale:
        raise InputError(f"weights in {d} are for x{model.scale}, not x{scale}")
    model.requires_grad_(False)
    return model


def save_frgd_sr(model: EDSRLite, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` (architecture + ``extra`` metadata) and ``model.safetensors`` (float16) there."""
    from .. import weights

    config = {"arch": ARCH, **model.config(), **(extra or {})}
    return weights.save_pretrained(directory, model, config, dtype=torch.float16)
