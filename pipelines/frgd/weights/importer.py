"""Importing: copy a weights file (or a model folder) the user already has into the cache, recognised by its
sha256 or file name; files of known content must match the manifest's sha256."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import FRGDError, InputError
from ..io.files import file_sha256, normal_mode
from .catalog import VERIFIED_KINDS, ModelEntry, get_entry, manifest
from .integrity import record_hash
from .paths import entry_cache_dir
from .resolve import weights_path

logger = logging.getLogger(__name__)


def _guess_entry(path: Path, sha: str | None) -> ModelEntry:
    """The entry whose sha256 is ``sha``, else the one single-file entry named like ``path``."""
    entries = manifest().values()
    if sha:
        for e in entries:
            shas = e.sha256.values() if isinstance(e.sha256, dict) else [e.sha256]
            if any(s and s.lower() == sha for s in shas):
                return e
    by_name = [e for e in entries if path.name in e.files and e.single_file]
    if len(by_name) == 1:
        return by_name[0]
    raise InputError(
        f"cannot tell which model {path} is (unknown sha256 and file name); pass --name NAME (see `frgd weights list`)"
    )


def import_file(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Copy a weights file (or a model folder for multi-file entries) into the cache; return its :func:`weights_path`.

    The model is guessed from the sha256 or the file name when ``name`` is None. A known sha256 must match.
    """
    return import_model(path, name)[1]


def import_model(path: str | os.PathLike[str], name: str | None = None) -> tuple[str, Path]:
    """Like :func:`import_file` but returns ``(model name, weights_path)``."""
    src = Path(path)
    if not src.exists():
        raise InputError(f"cannot import {src}: no such file or folder")
    hashed: dict[Path, str] = {}  # a file hashed to guess its entry is not hashed again
    if src.is_dir():
        if name is None:
            raise InputError(f"importing the folder {src} needs --name NAME")
        entry = get_entry(name)
        pairs = [(src / f, f) for f in entry.files]
        missing = [str(p) for p, _ in pairs if not p.is_file()]
        if missing:
            raise InputError(f"cannot import {src} as {name}: missing {', '.join(missing)}")
    else:
        if not src.is_file():
            raise InputError(f"cannot import {src}: not a regular file")
        sha = hashed[src] = file_sha256(src)
        entry = get_entry(name) if name else _guess_entry(src, sha)
        if entry.single_file:
            pairs = [(src, entry.files[0])]
        elif src.name in entry.files:
            pairs = [(src, src.name)]
        else:
            raise InputError(
                f"{entry.name} has several files ({', '.join(entry.files)}); import the folder holding them"
            )
    dest_dir = entry_cache_dir(entry.name)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FRGDError(f"cannot create the weights cache {dest_dir}: {err.strerror or err}") from err
    unverifiable = [f for _, f in pairs if entry.kind in VERIFIED_KINDS and not entry.expected_sha256(f)]
    if unverifiable:
        how = f"`frgd weights download {entry.name}`" + (f" (from {entry.url})" if entry.url else "")
        raise InputError(
            f"cannot import {src} as {entry.name}: the manifest has no sha256 for {', '.join(unverifiable)}, so an "
            f"imported file cannot be verified; get it with {how} instead"
        )
    for p, fname in pairs:
        actual = hashed.get(p) or file_sha256(p)
        expected = entry.expected_sha256(fname)
        if expected and actual != expected.lower():
            raise FRGDError(
                f"{p} is not {entry.name}: sha256 {actual} does not match the manifest ({expected}); nothing imported"
            )
        dest = dest_dir / fname  # ``fname`` may name a sub-folder, e.g. ``scheduler/scheduler_config.json``
        if dest.exists() and dest.resolve() == p.resolve():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(p, tmp)
            normal_mode(tmp)
            os.replace(tmp, dest)
        except OSError as err:
            raise FRGDError(f"cannot copy {p} into {dest_dir}: {err.strerror or err}") from err
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        record_hash(dest, actual)
        if not expected:
            logger.warning("%s: imported %s without a known sha256 (unverified)", entry.name, fname)
    return entry.name, weights_path(entry.name, convert=False)
