"""Conversion: manifest entries of kind ``convert`` are produced once from their ``source`` entry by a registered
converter and cached.

Converters are registered by the package that knows the source format, under the name the manifest's ``converter``
field gives (e.g. :mod:`frgd.sr.registry` registers ``realesrgan-ncnn`` when :mod:`frgd.sr` is imported)::

    @register_converter("realesrgan-ncnn")
    def convert(entry: ModelEntry, source: Path, out_dir: Path) -> None: ...  # writes every ``entry.files``
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import FRGDError, InputError, MissingWeightsError
from ..io.files import normal_mode
from .catalog import ModelEntry, get_entry
from .paths import entry_cache_dir, find_files, missing_message, path_of, source_path

logger = logging.getLogger(__name__)

Converter = Callable[[ModelEntry, Path, Path], None]
"""``converter(entry, source_path, out_dir)``: writes every ``entry.files`` into ``out_dir``."""

_CONVERTERS: dict[str, Converter] = {}


def register_converter(name: str, fn: Converter | None = None) -> Converter | Callable[[Converter], Converter]:
    """Register ``fn`` as the converter ``name`` (the manifest's ``converter`` field); without ``fn``, a decorator."""

    def add(f: Converter) -> Converter:
        _CONVERTERS[name] = f
        return f

    return add if fn is None else add(fn)


def resolve_converter(name: str) -> Converter:
    """The converter registered as ``name``; :class:`FRGDError` when none is."""
    try:
        return _CONVERTERS[name]
    except KeyError:
        known = ", ".join(sorted(_CONVERTERS)) or "none"
        raise FRGDError(
            f"weights converter {name!r} is not registered (registered: {known}); it registers when the package that "
            "provides it is imported (`realesrgan-ncnn`: frgd.sr)"
        ) from None


def convert_model(name: str, *, force: bool = False) -> Path:
    """Run ``name``'s converter once on its source and cache the result; return :func:`weights_path`.

    The converter is called as ``converter(entry, source_path, out_dir)`` and must write every ``entry.files``
    into ``out_dir`` (a fresh temp folder moved into ``cache_dir()/NAME`` when complete).
    """
    entry = get_entry(name)
    if entry.kind != "convert" or not entry.source or not entry.converter:
        raise InputError(f"{name!r} is not a convert entry")
    if not force:
        files = find_files(name)
        if files is not None:
            return path_of(entry, files)
    src = source_path(entry.source)
    if src is None:
        raise MissingWeightsError(missing_message(entry))
    fn = resolve_converter(entry.converter)
    final = entry_cache_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    try:
        logger.info("converting %s from %s", name, src)
        fn(entry, src, tmp)
        missing = [f for f in entry.files if not (tmp / f).is_file()]
        if missing:
            raise FRGDError(f"converter {entry.converter} did not write {', '.join(missing)} for {name}")
        normal_mode(tmp, directory=True)
        for f in tmp.iterdir():
            normal_mode(f, directory=f.is_dir())
        if final.exists():
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError as err:  # another process finished the same conversion first
            if not all((final / f).is_file() for f in entry.files):
                raise FRGDError(f"cannot store the converted {name} in {final}: {err.strerror or err}") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    files = [final / f for f in entry.files]
    return path_of(entry, files)
