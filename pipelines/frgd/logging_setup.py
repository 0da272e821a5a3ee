"""Logging configuration for the CLI and the editor (libraries only use ``logging.getLogger(__name__)``)."""

from __future__ import annotations

import logging


def setup_logging(verbose: int = 0) -> None:
    """Configure the root logger: WARNING by default, INFO with ``-v``, DEBUG with ``-vv``."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
