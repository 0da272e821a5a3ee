"""FRGD diffusion: the identity-conditioned denoiser, its model bundle, sampling and training.

Spaces: the diffusion runs on faces in ``[-1, 1]`` (``x0 = 2 * face - 1``) at 128x128 (the aligned crop size).
Conditioning channel layout (``cond`` ``(B, 7, H, W)``): see :mod:`frgd.archs.frgd_unet_arch`.

Rooms:

- :mod:`.model`: the model bundle: ``build_cond`` (the conditioning layout), the DDPM training scheduler and the model
  directory (``save_model_dir``/``load_model_dir``).
- :mod:`.sampling`: the sampler (``FRGDPipeline``) and its guidance callbacks.
- :mod:`.training`: data (``FacesDataset``), fusion masks, the ``frgd train`` loop (imported lazily: it needs
  ``accelerate``) and the GPU training round.

Evaluation of FRGD lives in :mod:`frgd.eval.faces`.
"""

from ..archs.frgd_unet_arch import COND_CHANNELS, FRGDUNet, tiny_config
from .model import (
    FRGDModelBundle,
    IdentityInfo,
    build_cond,
    load_model_dir,
    load_scheduler,
    make_train_scheduler,
    save_model_dir,
    save_scheduler,
)
from .sampling import FRGDOutput, FRGDPipeline, GuidanceWeights, slider_to_weights
from .training import (
    FacesDataConfig,
    FacesDataset,
    FusionConfig,
    SyntheticFaces,
    sample_fusion_mask,
    sample_fusion_masks,
)

__all__ = [
    "COND_CHANNELS",
    "FRGDModelBundle",
    "FRGDOutput",
    "FRGDPipeline",
    "FRGDUNet",
    "FacesDataConfig",
    "FacesDataset",
    "FusionConfig",
    "GuidanceWeights",
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
    "slider_to_weights",
    "tiny_config",
]
