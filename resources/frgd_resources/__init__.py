"""Shipped resources: our own trained weights, the public-domain demo photo, icons and presets.

Access files with :func:`resource_path`, which works from a source tree and from an installed wheel.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("weights", "frgd128")``."""
    return Path(str(files(__name__).joinpath(*parts)))
