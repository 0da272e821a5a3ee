"""FRGD Studio pipelines: PyTorch models and pipelines for face restoration and super-resolution (no Qt).

Public tensors are float32 RGB ``(B, C, H, W)`` in ``[0, 1]`` unless named otherwise; numpy images are
``(H, W, C)`` uint8 or float32 RGB.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("frgd-studio")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
