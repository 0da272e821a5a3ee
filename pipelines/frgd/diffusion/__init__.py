"""FRGD diffusion: the identity-conditioned denoiser, training data, fusion supervision, training, sampling.

Spaces: the diffusion runs on faces in ``[-1, 1]`` (``x0 = 2 * face - 1``) at 128x128 (the aligned crop size).
Conditioning channel layout (``cond`` ``(B, 7, H, W)``): see :mod:`frgd.archs.frgd_unet_arch`.

- :mod:`.schedule`: DDPM training scheduler, model directory save/load (``save_model_dir``/``load_model_dir``).
- :mod:`.fusion`: fusion masks (masked / noisy / checkerboard) and ``build_cond``.
- :mod:`.data`: ``FacesDataset`` (faces128 folder or shards; on-the-fly degradation; reference identity).
- :mod:`.train`: the training loop (``frgd train``), imported lazily because it needs ``accelerate``.
"""

from ..archs.frgd_unet_arch import COND_CHANNELS, FRGDUNet, tiny_config
from .data import FacesDataConfig, FacesDataset, SyntheticFaces
from .fusion import FusionConfig, build_cond, sample_fusion_mask, sample_fusion_masks
from .schedule import (
    FRGDModelBundle,
    IdentityInfo,
    load_model_dir,
    load_scheduler,
    make_train_scheduler,
    save_model_dir,
    save_scheduler,
)

__all__ = [
    "COND_CHANNELS",
    "FRGDModelBundle",
    "FRGDUNet",
    "FacesDataConfig",
    "FacesDataset",
    "FusionConfig",
    "IdentityInfo",
    "SyntheticFaces",
    "build_cond",
    "load_model_dir",
    "load_scheduler",
    "make_train_scheduler",
    "sample_fusion_mask",
    "sample_fusion_masks",
    "save_model_dir",
    "save_scheduler",
    "tiny_config",
]

# Sampling (helper G2): the FRGD sampler, guidance callbacks and the one-slider mapping (docs/frgd_sampling.md).
from .guidance import GuidanceWeights, slider_to_weights  # noqa: E402
from .pipeline import FRGDOutput, FRGDPipeline  # noqa: E402

__all__ += ["FRGDOutput", "FRGDPipeline", "GuidanceWeights", "slider_to_weights"]
