"""FRGD sampling: the sampler (:mod:`.pipeline`), its guidance callbacks and slider mapping (:mod:`.guidance`) and
the scheduler registry (:mod:`.schedulers`, torch-free to import). Names are imported on first access (PEP 562)."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "GuidanceWeights": ".guidance",
    "slider_to_weights": ".guidance",
    "FRGDOutput": ".pipeline",
    "FRGDPipeline": ".pipeline",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["FRGDOutput", "FRGDPipeline", "GuidanceWeights", "slider_to_weights"]
