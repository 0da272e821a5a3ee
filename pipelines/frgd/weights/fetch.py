"""Downloading: :func:`download` streams an entry's file into the cache (temp file, sha256 check, atomic rename);
``convert`` entries download their source and convert it. ``FRGD_OFFLINE=1`` refuses network access."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from ..errors import FRGDError, MissingWeightsError
from ..io.files import normal_mode, remove_stale_temps
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from .catalog import get_entry
from .convert import convert_model
from .integrity import record_hash, status
from .paths import entry_cache_dir, find_files, missing_message, source_path
from .resolve import weights_path

logger = logging.getLogger(__name__)

USER_AGENT = "frgd-studio-weights/1 (+https://github.com/frgd-studio/frgd-studio)"


def _offline() -> bool:
    """``FRGD_OFFLINE`` is set to anything but empty, 0, false or no."""
    return os.environ.get("FRGD_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def download(
    name: str,
    progress: bool = True,
    *,
    force: bool = False,
    timeout: float = 60.0,
    on_progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Download ``name`` into the cache (temp file, sha256 check, atomic rename); return :func:`weights_path`.

    ``progress``: a tqdm bar on stderr; ``on_progress(bytes_done, bytes_total, message)`` (total 0 = unknown) and
    ``cancel`` (:class:`frgd.errors.Cancelled` at the next chunk, no partial file left) serve the editor's jobs.

    ``convert`` entries download their source and convert. Network errors and sha256 mismatches raise a one-line
    :class:`FRGDError` naming the URL and the ``frgd weights import`` alternative. Set ``FRGD_OFFLINE=1`` to refuse.
    """
    entry = get_entry(name)
    if entry.kind == "convert":
        if entry.source and source_path(entry.source) is None:
            download(entry.source, progress=progress, timeout=timeout, on_progress=on_progress, cancel=cancel)
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
    sha = _fetch(entry.url, target, entry.expected_sha256(), progress=progress, timeout=timeout, name=name, hint=imp,
                 on_progress=on_progress, cancel=cancel)  # fmt: skip
    record_hash(target, sha)
    if entry.expected_sha256() is None:
        logger.warning("%s: downloaded file is unverified (no sha256 in the manifest); sha256=%s", name, sha)
    return target


def _fetch(url: str, target: Path, expected: str | None, *, progress: bool, timeout: float, name: str,
           hint: str, on_progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> str:  # fmt: skip
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
                report(on_progress, 0, total_n or 0, f"downloading {name}")
                while chunk := resp.read(1 << 20):
                    check_cancel(cancel)
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
                    report(on_progress, out.tell(), total_n or 0, f"downloading {name}")
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
    normal_mode(tmp)
    os.replace(tmp, target)
    return actual
