"""FRGD sampling: the sampler (:mod:`.pipeline`) and its guidance callbacks and slider mapping (:mod:`.guidance`)."""

from .guidance import GuidanceWeights, slider_to_weights
from .pipeline import FRGDOutput, FRGDPipeline

__all__ = ["FRGDOutput", "FRGDPipeline", "GuidanceWeights", "slider_to_weights"]
