"""FRGD sampling: the sampler (:mod:`.pipeline`), its guidance callbacks and slider mapping (:mod:`.guidance`) and
the scheduler registry (:mod:`.schedulers`, torch-free to import). Names are imported on first access (PEP 562)."""

from .. import lazy_exports

_EXPORTS = {
    "GuidanceWeights": ".guidance",
    "slider_to_weights": ".guidance",
    "FRGDOutput": ".pipeline",
    "FRGDPipeline": ".pipeline",
}


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = ["FRGDOutput", "FRGDPipeline", "GuidanceWeights", "slider_to_weights"]
