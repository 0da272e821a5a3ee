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

from collections.abc import Callable
from importlib import import_module
from typing import Any

_EXPORTS = {
    "COND_CHANNELS": "..archs.frgd_unet_arch",
    "FRGDUNet": "..archs.frgd_unet_arch",
    "tiny_config": "..archs.frgd_unet_arch",
    "FRGDModelBundle": ".model",
    "IdentityInfo": ".model",
    "build_cond": ".model",
    "load_model_dir": ".model",
    "load_scheduler": ".model",
    "make_train_scheduler": ".model",
    "save_model_dir": ".model",
    "save_scheduler": ".model",
    "FRGDOutput": ".sampling",
    "FRGDPipeline": ".sampling",
    "GuidanceWeights": ".sampling",
    "slider_to_weights": ".sampling",
    "FacesDataConfig": ".training",
    "FacesDataset": ".training",
    "FusionConfig": ".training",
    "SyntheticFaces": ".training",
    "sample_fusion_mask": ".training",
    "sample_fusion_masks": ".training",
}
"""Public names -> the module that defines them, imported on first access (PEP 562), so that torch-free modules
such as :mod:`.sampling.schedulers`'s registry can be imported by the CLI parser without loading torch."""


def lazy_exports(package: str, namespace: dict[str, Any], exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (relative to ``package``) on first access and caches
    the value in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name], package), name)
        namespace[name] = value
        return value

    return __getattr__


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)


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
