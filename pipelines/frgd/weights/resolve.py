"""A model's local path: :func:`weights_path` finds the files, converts ``convert`` entries on first use, or raises
:class:`MissingWeightsError` with the one-line message of :func:`frgd.weights.paths.missing_message`."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, MissingWeightsError
from .catalog import get_entry, manifest
from .convert import convert_model
from .paths import find_files, missing_message, path_of, source_path


def weights_path(name: str, *, convert: bool = True) -> Path:
    """Local path of ``name``: its main file (single-file entries) or folder (multi-file entries).

    ``convert`` entries are converted on first use when their source is available locally (no network).
    Raises :class:`MissingWeightsError` (expected path, URL, ``frgd weights download/import`` commands).
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is not None:
        return path_of(entry, files)
    if entry.kind == "convert" and convert and entry.source and source_path(entry.source) is not None:
        return convert_model(name)
    raise MissingWeightsError(missing_message(entry))


def weights_files(name: str) -> list[Path]:
    """All files of ``name`` (see :func:`weights_path`); raises :class:`MissingWeightsError`."""
    entry = get_entry(name)
    path = weights_path(name)
    return [path] if entry.single_file else [path / f for f in entry.files]


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """A model folder given as an existing path or as a manifest name (resource/convert entries)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    if str(name_or_path) in manifest():
        path = weights_path(str(name_or_path))
        return path if path.is_dir() else path.parent
    raise InputError(f"{name_or_path} is neither a model folder nor a known model name (see `frgd weights list`)")
