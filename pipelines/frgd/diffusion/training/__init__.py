"""FRGD training: data (:mod:`.data`), fusion supervision (:mod:`.fusion`) and the ``frgd train`` loop
(:mod:`.train`, imported lazily because it needs ``accelerate``)."""

from .data import FacesDataConfig, FacesDataset, SyntheticFaces
from .fusion import FusionConfig, sample_fusion_mask, sample_fusion_masks

__all__ = [
    "FacesDataConfig",
    "FacesDataset",
    "FusionConfig",
    "SyntheticFaces",
    "sample_fusion_mask",
    "sample_fusion_masks",
]
