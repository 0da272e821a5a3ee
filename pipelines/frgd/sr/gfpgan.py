"""GFPGAN: the GFPGANv1Clean network (official v1.3 / v1.4 weights) as a face restorer of :mod:`frgd.restore`.

Weights are the official TencentARC checkpoints (manifest entries ``gfpgan-v1.4`` / ``gfpgan-v1.3``; their
``params_ema`` state dict) or a local file. :class:`GFPGANRestorer` restores one aligned face (512 x 512 for the
official models): RGB in ``[-1, 1]`` through the network (like the official ``GFPGANer``), the decoder noise drawn
from a seeded generator so results are reproducible. Detection, alignment, the background (the one "auto" rule of
:func:`frgd.restore.background_model`) and the paste-back are :class:`frgd.restore.FacePipeline`'s, which runs this
restorer for ``frgd restore --method gfpgan`` and the editor's GFPGAN pane.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..archs.gfpganv1_clean_arch import OFFICIAL_CONFIG, GFPGANv1Clean
from ..devices import resolve_device
from ..errors import FRGDError, InputError
from ..io import to_float, to_uint8
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from ..restore.methods import FaceRequest, FaceSample, Restorer

logger = logging.getLogger(__name__)

VERSIONS = {"1.4": "gfpgan-v1.4", "1.3": "gfpgan-v1.3"}

_MODEL_CACHE: dict[tuple[str, str], GFPGANv1Clean] = {}
_MODEL_LOCK = threading.Lock()


def gfpgan_weights_path(version: str = "1.4", weights: str | Path | None = None) -> Path:
    """The checkpoint to load: ``weights`` if given (must exist), else the manifest entry of ``version``.

    Raises :class:`frgd.errors.MissingWeightsError` with the download URL and the ``frgd weights import`` command.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise InputError(f"GFPGAN weights file not found: {p}")
        return p
    if version not in VERSIONS:
        raise InputError(f"unknown GFPGAN version {version!r}; choose {' or '.join(VERSIONS)}")
    from ..weights import weights_path

    return weights_path(VERSIONS[version])


def load_gfpgan(
    version: str = "1.4", weights: str | Path | None = None, device: torch.device | str = "cpu"
) -> GFPGANv1Clean:
    """Official-config :class:`GFPGANv1Clean` with ``params_ema`` loaded (strict), eval mode, cached per file/device."""
    path = gfpgan_weights_path(version, weights)
    dev = resolve_device(device)
    key = (str(path.resolve()), str(dev))
    with _MODEL_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        from ..weights import load_state_dict

        sd = load_state_dict(path)  # picks params_ema (EMA generator) first in official checkpoints
        model = GFPGANv1Clean.from_config(OFFICIAL_CONFIG)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise FRGDError(f"{path} is not a GFPGANv1Clean (v1.3/v1.4) checkpoint: {first}") from err
        model = model.to(dev).eval().requires_grad_(False)
        _MODEL_CACHE.clear()  # keep one model in memory (330 MB)
        _MODEL_CACHE[key] = model
        logger.info("loaded GFPGAN from %s on %s", path, dev)
        return model


class GFPGANRestorer(Restorer):
    """GFPGAN as a :class:`frgd.restore.Restorer`: one aligned ``S x S`` face (``S`` = the model's ``out_size``) ->
    one sample per seed (the seed drives the decoder noise).

    Args:
        model: an already built :class:`GFPGANv1Clean` (tests, a cache); else ``version`` / ``weights`` are loaded.
        version: ``"1.4"`` or ``"1.3"`` (manifest weights); weights: a local checkpoint instead.
        device: ``auto|cpu|cuda|mps``.
        weight: blend of the restored and the aligned input face (1 = GFPGAN only).
    """

    method: ClassVar[str] = "gfpgan"

    def __init__(
        self,
        model: GFPGANv1Clean | None = None,
        *,
        version: str = "1.4",
        weights: str | Path | None = None,
        device: torch.device | str = "cpu",
        weight: float = 1.0,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval() if model is not None else load_gfpgan(version, weights, self.device)
        self.name = f"gfpgan-v{version}" if model is None and weights is None else "gfpgan"
        if weights is not None:
            self.name = f"gfpgan ({Path(weights).name})"
        self.crop_size = int(self.model.out_size)
        self.weight = float(weight)

    def params(self) -> dict[str, Any]:
        return {"weight": self.weight}

    @torch.inference_mode()
    def run(self, crop: np.ndarray, seed: int | None = 0) -> np.ndarray:
        """The network on one aligned face ``(S, S, 3)`` float in ``[0, 1]`` -> ``(S, S, 3)`` float32 ``[0, 1]``."""
        x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32))[None].to(self.device)
        x = x * 2.0 - 1.0
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            out, _ = self.model(x, return_rgb=False, randomize_noise=True)
        out = (out.float().clamp(-1, 1) + 1.0) / 2.0
        return out[0].permute(1, 2, 0).cpu().numpy()

    def restore_crop(
        self,
        content: np.ndarray,
        request: FaceRequest,
        seeds: Sequence[int],
        *,
        crop: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[FaceSample]:
        face = to_float(np.asarray(content))
        if face.shape != (self.crop_size, self.crop_size, 3):
            raise InputError(f"GFPGAN restores {self.crop_size} px aligned faces, got shape {face.shape}")
        samples = []
        for i, seed in enumerate(seeds):
            check_cancel(cancel)
            out = self.run(face, seed=int(seed))
            if self.weight < 1.0:
                out = self.weight * out + (1.0 - self.weight) * face
            samples.append(
                FaceSample(
                    image=to_uint8(out.astype(np.float32)),
                    seed=int(seed),
                    method=self.method,
                    paste_mask=request.paste_mask(),
                    params={"model": self.name, "weight": self.weight},
                )
            )
            report(progress, i + 1, len(seeds), f"GFPGAN sample {i + 1}/{len(seeds)}")
        return samples


__all__ = [
    "GFPGANRestorer",
    "VERSIONS",
    "gfpgan_weights_path",
    "load_gfpgan",
]
