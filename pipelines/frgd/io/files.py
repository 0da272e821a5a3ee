"""Files: the one way user files are read (regular files only, size-limited), hashed and written (atomically).

* :func:`read_file_bytes` / :func:`open_regular_file`: regular files only (no pipes, devices or folders), at most
  :data:`MAX_FILE_BYTES`, enforced while reading.
* :func:`save_bytes`: the protected atomic save (never over an input, never over an existing file without
  ``overwrite``) behind images, JSON reports and sessions; :func:`check_output` its up-front check, run before any
  work. Temp files of interrupted saves are removed on SIGTERM (:func:`remove_pending_temps`) and stale ones of
  crashed saves on the next save to that folder (:func:`remove_stale_temps`).
* :func:`atomic_write_bytes` / :func:`normal_mode`: atomic writes of our own files (caches, model folders).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import FRGDError, InputError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 30
"""Largest file :func:`read_file_bytes` reads (1 GiB): images, session files."""

STALE_TEMP_SECONDS = 600
"""Temp files of our own atomic saves older than this (seconds) are left-overs of a crashed save: removed on the next
save to the same folder."""


def open_regular_file(
    path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, fail: Callable[[str], Exception] | None = None
) -> io.BufferedReader:
    """Open ``path`` for binary reading if it is a regular file of at most ``limit`` bytes; pipes, devices, sockets
    and folders are refused without blocking. Errors are ``fail(reason)`` (default :class:`InputError`)."""
    p = Path(path)
    make = fail or (lambda reason: InputError(f"cannot read {p}: {reason}"))
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer (regular files ignore the flag)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise make("file not found") from None
    except IsADirectoryError:
        raise make("it is a folder, not a file") from None
    except OSError as err:
        raise make(f"cannot open the file ({err.strerror or err})") from err
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise make("it is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise make("not a regular file (a pipe, device or socket)")
        if st.st_size > limit:
            raise make(f"file is too large ({st.st_size} bytes > limit {limit})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file_bytes(
    path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, fail: Callable[[str], Exception] | None = None
) -> bytes:
    """The content of the regular file ``path`` (:func:`open_regular_file`), at most ``limit`` bytes, checked while
    reading too (a file that grows or lies about its size cannot exhaust memory)."""
    make = fail or (lambda reason: InputError(f"cannot read {path}: {reason}"))
    with open_regular_file(path, limit=limit, fail=make) as f:
        try:
            data = f.read(limit + 1)
        except OSError as err:
            raise make(f"cannot read the file ({err.strerror or err})") from err
    if len(data) > limit:
        raise make(f"file is too large (more than the limit of {limit} bytes)")
    return data


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def check_output(
    path: str | os.PathLike[str], *, overwrite: bool = False, protect: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Up-front check of an output path (run it before any work): :class:`InputError` when ``path`` is one of
    ``protect`` (the inputs: same path, symlink or hard link; even with ``overwrite``), a folder, or an existing file
    while ``overwrite`` is False. Returns ``path`` as a :class:`Path`."""
    out = Path(path)
    for p in protect:
        if _same_path(out, Path(p)):
            raise InputError(f"refusing to write {out}: it is an input image or file; choose another output file")
    if out.is_dir():
        raise InputError(f"cannot write {out}: it is a folder")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(f"{out} already exists; choose another name or allow overwriting (--overwrite)")
    return out


_PENDING_TEMPS: set[Path] = set()
_PENDING_LOCK = threading.Lock()


def remove_pending_temps() -> None:
    """Delete the temp files of saves in progress (called on SIGTERM; the saves' own clean-up covers SIGINT)."""
    with _PENDING_LOCK:
        pending = list(_PENDING_TEMPS)
    for tmp in pending:
        with contextlib.suppress(OSError):
            tmp.unlink()


def remove_stale_temps(
    folder: str | os.PathLike[str], *, max_age: float = STALE_TEMP_SECONDS, suffix: str = ".tmp"
) -> list[Path]:
    """Delete our own temp files (``.NAME.XXXXXXXX.tmp``, as ``tempfile.mkstemp(prefix=".NAME.", suffix=suffix)``
    names them; regular, ours, older than ``max_age`` seconds) that a crashed or killed save left in ``folder``;
    return them. Anything else is left alone."""
    pattern = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(suffix) + "$")
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not pattern.match(e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < max_age:
                continue
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            os.unlink(e.path)
        except OSError:
            continue
        removed.append(Path(e.path))
        logger.info("removed %s, left by an interrupted save", e.path)
    return removed


def save_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:  # fmt: skip
    """Write ``data`` to ``path`` atomically with the rules of :func:`check_output` (the protected save behind
    :func:`save_image`, JSON reports and session files). :class:`FRGDError` when writing fails."""
    out = check_output(path, overwrite=overwrite, protect=protect)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FRGDError(f"cannot write {out}: {err.strerror or err}") from err
    remove_stale_temps(out.parent)
    tmp: Path | None = None
    try:
        with _PENDING_LOCK:  # registered at once, so a SIGTERM handler finds it
            fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            tmp = Path(tmp_name)
            _PENDING_TEMPS.add(tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        normal_mode(tmp)  # mkstemp makes 0600 files; give the usual permissions
        if overwrite:
            os.replace(tmp, out)
        else:
            _publish_no_clobber(tmp, out)
    except FileExistsError as err:
        raise InputError(f"{out} already exists; choose another name or allow overwriting (--overwrite)") from err
    except OSError as err:
        raise FRGDError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with _PENDING_LOCK:
                _PENDING_TEMPS.discard(tmp)
    return out


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _publish_no_clobber(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out`` atomically, failing with FileExistsError if ``out`` appeared meanwhile."""
    try:
        os.link(tmp, out)  # atomic and fails if ``out`` exists
    except FileExistsError:
        raise
    except OSError:  # filesystems without hard links
        if out.exists():
            raise FileExistsError(str(out)) from None
        os.replace(tmp, out)


def normal_mode(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` result (0600/0700) the usual permissions (0666/0777 minus the umask)."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename); no protection rules."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        normal_mode(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
