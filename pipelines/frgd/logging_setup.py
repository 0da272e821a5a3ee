"""Logging configuration for the CLI and the editor (libraries only use ``logging.getLogger(__name__)``)."""

from __future__ import annotations

import logging


def setup_logging(verbose: int = 0) -> None:
    """Configure the root logger: WARNING by default, INFO with ``-v``, DEBUG with ``-vv``."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Pillow logs decoder trouble ("More samples per pixel than can be decoded") that frgd.io reports itself as one
    # line; shown with -vv only
    logging.getLogger("PIL").setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
